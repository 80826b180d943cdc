"""Local training processes: launch, watch, time out, stop, and share the machine fairly.

A run's process starts in its own process group (so stopping it stops torchrun's workers
and data loaders too) with its output appended to the run's log file, through a relay
(``relay.py``) that redacts the run's secret values before they reach the disk. On Linux
the relay also asks the kernel for SIGTERM when pipeform dies (``PR_SET_PDEATHSIG``) and
passes it on, so a killed pipeform leaves no trainer running unwatched: the trainer
checkpoints and exits, and the next apply resumes it. Ctrl-C (SIGINT) in pipeform stops every running trainer the same
way (``install_interrupt_handler``). Stopping is SIGTERM to the group, a grace period for
the trainer's checkpoint, then SIGKILL.

Concurrency across pipeform processes is a counting semaphore of lock files
(``fcntl.flock`` on ``slot-<i>.lock``): a slot is held while its file descriptor is open,
so a crashed holder frees its slot by dying.

``PIPEFORM_TRAINER_COMMAND`` (a test and debug hook) replaces ``python -m trainer`` by
another command line; the executor appends ``run --config FILE`` to it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from providers.base import JSON, PermanentError, report_progress
from providers.leftovers import process_start as process_start  # shared with the cleanup
from providers.local import files

TRAINER_COMMAND_ENV = "PIPEFORM_TRAINER_COMMAND"
GRACE_SECONDS = 10.0
POLL_SECONDS = 0.1
SLOT_POLL_SECONDS = 0.5
LOG = logging.getLogger("pipeform.local.training")

#: (address, event) -> None: shows training progress; events are dicts with an "event" key
#: ("waiting", "started", "retrying", and each JSON line the trainer prints, as it printed it)
ProgressHook = Callable[[str, JSON], None]
_hook: ProgressHook | None = None
_running: dict[int, subprocess.Popen[bytes]] = {}
_running_lock = threading.Lock()
_interrupts = 0
_installed = False

#: Runs between pipeform and the trainer (by path: it loads nothing of pipeform): SIGTERM
#: when pipeform dies, and the trainer's output written to the log with secrets redacted.
RELAY = str(Path(__file__).with_name("relay.py"))


def set_progress_hook(hook: ProgressHook | None) -> None:
    """Show training progress somewhere (the CLI's apply output); None to stay quiet."""
    global _hook
    _hook = hook


def notify(address: str, event: JSON) -> None:
    LOG.info("%s: %s", address, event)
    report_progress(address, event)
    if _hook is not None:
        with contextlib.suppress(Exception):  # a display problem never fails a run
            _hook(address, event)


def interrupts() -> int:
    """How many Ctrl-Cs pipeform has had so far (a waiting loop compares it with the count
    it started with: the handler runs in the main thread, the wait in a worker)."""
    return _interrupts


def install_interrupt_handler() -> None:
    """On SIGINT, stop the running trainers (they checkpoint), then do what was done before.

    Only possible from the main thread, where signal handlers live; elsewhere a no-op.
    """
    global _installed
    if _installed or threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGINT)

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        global _interrupts
        _interrupts += 1
        with _running_lock:
            procs = list(_running.values())
        for proc in procs:
            _signal_group(proc.pid, signal.SIGTERM)
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_interrupt)
    _installed = True


def trainer_command(config: Path, workers: int) -> list[str]:
    """The command line that runs one training: the trainer, or torchrun for several workers."""
    override = os.environ.get(TRAINER_COMMAND_ENV)
    if override:
        return [*shlex.split(override), "run", "--config", str(config)]
    if workers > 1:
        launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={workers}"]
        return [sys.executable, *launcher, "-m", "trainer", "run", "--config", str(config)]
    return [sys.executable, "-m", "trainer", "run", "--config", str(config)]


def launch(
    command: list[str], env: dict[str, str], cwd: Path, log: Path
) -> subprocess.Popen[bytes]:
    """Start command in its own process group, through the relay (``relay.py``): its
    stdout and stderr appended to log (created 0600), the values of the variables named in
    env's PIPEFORM_REDACT_VARS redacted."""
    command = [sys.executable, RELAY, str(os.getpid()), "--", *command]
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "ab") as out:
        proc = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    with _running_lock:
        _running[proc.pid] = proc
    return proc


@dataclass(frozen=True)
class Exit:
    """How an attempt's process ended."""

    code: int | None  # the exit code; None when a signal ended it (see signal)
    signal: int | None
    timed_out: bool  # pipeform stopped it at maxDuration
    interrupted: bool  # pipeform was interrupted and stopped it
    seconds: float


def watch(proc: subprocess.Popen[bytes], deadline: float, log: Path, address: str) -> Exit:
    """Wait for the process, forwarding its progress; stop it at the deadline or on Ctrl-C."""
    started, seen_interrupts, offset = time.monotonic(), _interrupts, _size(log)
    timed_out = interrupted = False
    try:
        while proc.poll() is None:
            if _interrupts != seen_interrupts and not interrupted:
                interrupted = True
                stop(proc)
            elif time.monotonic() >= deadline and not timed_out:
                timed_out = True
                stop(proc)
            offset = _forward(log, offset, address)
            time.sleep(POLL_SECONDS)
    except BaseException:  # pipeform itself is going down: take the trainer with it
        stop(proc)
        raise
    finally:
        with _running_lock:
            _running.pop(proc.pid, None)
        _signal_group(proc.pid, signal.SIGKILL)  # whatever the leader left behind
    _forward(log, offset, address)
    code = proc.returncode
    return Exit(
        code if code >= 0 else None,
        -code if code < 0 else None,
        timed_out,
        interrupted,
        time.monotonic() - started,
    )


def stop(proc: subprocess.Popen[bytes], grace: float = GRACE_SECONDS) -> None:
    """SIGTERM to the process group, then SIGKILL after the grace period."""
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()


def stop_orphan(pid: int, started: str | None, grace: float = GRACE_SECONDS) -> bool:
    """Stop a trainer left running by a pipeform that died (not our child). True if one was."""
    if started is None or process_start(pid) != started:
        return False  # gone, or the pid now belongs to another process
    _signal_group(pid, signal.SIGTERM)
    end = time.monotonic() + grace
    while time.monotonic() < end and process_start(pid) == started:
        time.sleep(POLL_SECONDS)
    _signal_group(pid, signal.SIGKILL)
    end = time.monotonic() + grace
    while process_start(pid) == started:  # its new parent reaps it
        if time.monotonic() > end:
            raise PermanentError(
                f"the trainer left running by an earlier apply (pid {pid}) does not stop; "
                f"stop it (kill -9 -{pid}) and apply again"
            )
        time.sleep(POLL_SECONDS)
    return True


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _forward(log: Path, offset: int, address: str) -> int:
    """Pass the trainer's new JSON progress lines on (hook and watchers); the new offset."""
    try:
        with log.open("rb") as fh:
            fh.seek(offset)
            chunk = fh.read()
    except FileNotFoundError:
        return offset
    complete = chunk.rfind(b"\n") + 1
    for line in chunk[:complete].splitlines():
        event = _json_object(line)
        if event is not None:
            stage = event.pop("event", None)
            notify(address, {**event, "event": "progress", "stage": stage})
    return offset + complete


def _json_object(line: bytes) -> JSON | None:
    try:
        value: Any = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def log_tail(log: Path, lines: int = 15) -> list[str]:
    """The last lines of a log (up to 64 KiB read), without the executor's markers."""
    try:
        with log.open("rb") as fh:
            fh.seek(max(0, _size(log) - 65536))
            text = fh.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return []
    kept = [line for line in text.splitlines() if line.strip() and not line.startswith("=== ")]
    return kept[-lines:]


@contextlib.contextmanager
def slot(directory: Path, limit: int, what: str, address: str) -> Iterator[None]:
    """Hold one of ``limit`` slots under directory (shared by every pipeform process)."""
    files.ensure_dir(directory)
    seen_interrupts, waiting = _interrupts, False
    while True:
        for index in range(max(1, limit)):
            fd = os.open(directory / f"slot-{index}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                yield
            finally:
                os.close(fd)  # closing releases the lock
            return
        if not waiting:
            waiting = True
            notify(address, {"event": "waiting", "message": f"waiting for a free {what} slot"})
        if _interrupts != seen_interrupts:
            raise PermanentError(f"{address}: interrupted while waiting for a {what} slot")
        time.sleep(SLOT_POLL_SECONDS)
