"""The state lock: one writer at a time, a clear message for the other, force-unlock.

To hold an `apply` inside its lock for as long as a test needs, the fake provider's
call log is made a named pipe: the process blocks on its first provider call (planning,
lock held) until the test opens the pipe's other end. No timing guesses.
"""

from __future__ import annotations

import os
import pty
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.state.backend import StateConflict
from reconciler.state.model import LockInfo, ResourceState, now
from reconciler.state.sqlite import SqliteBackend
from tests.engine.harness import (
    ADDRESSES,
    finish,
    live_objects,
    lock_holder,
    pipeform,
    recorded,
    started,
    state_db,
    state_list,
    store,
    write_tree,
)

APPLY = ("apply", "--auto-approve")


@contextmanager
def stalled_apply(
    root: Path,
) -> Iterator[tuple[subprocess.Popen[str], LockInfo, Callable[[], None]]]:
    """An `apply` that holds the lock and waits; call release() to let it go on.

    Yields (process, its lock, release).
    """
    log = store(root) / "calls.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(log)
    reader: list[int] = []

    def release() -> None:
        if not reader:  # read and write ends: the writer never blocks again (64 KiB buffer)
            reader.append(os.open(log, os.O_RDWR | os.O_NONBLOCK))

    t0 = time.monotonic()
    try:
        with started(*APPLY, cwd=root) as proc:
            holder = lock_holder(root)
            while holder is None:
                assert proc.poll() is None, finish(proc, APPLY, t0)
                assert time.monotonic() - t0 < 60, "the apply never took the lock"
                time.sleep(0.01)
                holder = lock_holder(root)
            assert holder.pid == proc.pid
            try:
                yield proc, holder, release
            finally:
                release()
    finally:
        for fd in reader:
            os.close(fd)
        log.unlink()


def has_open(pid: int, path: Path) -> bool:
    """Whether process `pid` has `path` open; its descriptors may close while we look."""
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == str(path):
                return True
        except FileNotFoundError:
            continue
    return False


def test_second_apply_fails_at_once_naming_the_holder(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "tree")
    with stalled_apply(root) as (first, holder, release):
        second = pipeform(*APPLY, cwd=root)
        assert first.poll() is None, "the second apply waited for the first to finish"
        assert second.returncode == 1, second
        message = " ".join(second.stderr.split())
        assert "the state is locked by another pipeform process" in message
        assert f"lock id {holder.id} held by {holder.who} (pid {first.pid}" in message
        assert "`pipeform apply --auto-approve`" in message
        assert f"pipeform force-unlock {holder.id}" in message
        assert "Traceback" not in second.output
        release()
        assert finish(first, APPLY, 0).returncode == 0
    assert set(live_objects(root)) == ADDRESSES
    listed = state_list(root)
    assert {r["address"] for r in listed["resources"]} == ADDRESSES
    # each create writes two versions (a pending record, then the result); one apply's worth
    assert listed["serial"] == 2 * len(ADDRESSES), "the second apply wrote to the state"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_lock_timeout_waits_for_the_holder_then_succeeds(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "tree")
    with stalled_apply(root) as (first, _, release):
        t0 = time.monotonic()
        with started(*APPLY, "--lock-timeout", "10s", cwd=root) as second:
            # it has opened the state; half a second later it must still be waiting
            while not has_open(second.pid, state_db(root)):
                assert second.poll() is None, finish(second, APPLY, t0)
                time.sleep(0.01)
            time.sleep(0.5)
            assert second.poll() is None, finish(second, APPLY, t0)
            release()
            assert finish(first, APPLY, 0).returncode == 0
            waited = finish(second, APPLY, t0)
    assert waited.returncode == 0, waited
    assert "No changes" in waited.stdout, "it planned before the first apply finished"
    live = live_objects(root)
    assert set(live) == ADDRESSES
    assert {body["version"] for body in live.values()} == {1}, "something was written twice"


def test_force_unlock_releases_a_lock_left_on_another_host(tmp_path: Path) -> None:
    """A cancelled CI job on another machine: pipeform cannot tell it died."""
    root = write_tree(tmp_path / "tree")
    backend = SqliteBackend(state_db(root))
    left = LockInfo(str(uuid.uuid4()), "ci@runner-7", "runner-7", 4242, "pipeform apply", now())
    backend.acquire_lock(left)
    backend.close()

    blocked = pipeform(*APPLY, cwd=root)
    assert blocked.returncode == 1, blocked
    assert f"lock id {left.id} held by ci@runner-7 (pid 4242" in blocked.stderr
    assert not live_objects(root)

    wrong = pipeform("force-unlock", "not-the-id", "-C", str(root), cwd=root)
    assert wrong.returncode == 1, wrong
    assert f"no lock with id not-the-id (the current lock is {left.id})" in wrong.stderr
    assert lock_holder(root) == left, "a wrong id released the lock"

    released = pipeform("force-unlock", left.id, "-C", str(root), cwd=root)
    assert released.returncode == 0, released
    assert f"Released lock id {left.id}" in released.stdout
    assert lock_holder(root) is None

    applied = pipeform(*APPLY, cwd=root)
    assert applied.returncode == 0, applied
    assert set(live_objects(root)) == ADDRESSES


def test_force_unlock_after_a_crash_then_apply_converges(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "tree")
    crashed = pipeform(*APPLY, cwd=root, extra_env={"PIPEFORM_FAULT": "after-state-write"})
    assert crashed.returncode == -signal.SIGKILL, crashed
    holder = lock_holder(root)
    assert holder is not None and holder.pid == crashed.pid
    released = pipeform("force-unlock", holder.id, "-C", str(root), cwd=root)
    assert released.returncode == 0, released
    recovered = pipeform(*APPLY, cwd=root)
    assert recovered.returncode == 0, recovered
    assert "stale lock" not in recovered.stderr
    assert set(live_objects(root)) == ADDRESSES


# -- compare-and-swap between writers that bypass the lock ----------------------------------


def resource(address: str, value: int) -> ResourceState:
    kind = address.split("/", 1)[0]
    spec = {"metadata": {"labels": {}, "annotations": {}}, "spec": {"gpus": value}}
    at = f"2026-01-01T00:00:{value % 60:02d}.000000Z"
    return ResourceState(
        address,
        kind,
        "fake",
        spec,
        f"sha256:{value}",
        outputs={"v": value},
        created_at=at,
        updated_at=at,
    )


def test_a_write_with_a_stale_serial_is_refused_and_loses_nothing(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    ours, theirs = SqliteBackend(db), SqliteBackend(db)
    start = ours.read()
    assert theirs.read().lineage == start.lineage

    first = ours.put(start.serial, resource("Quota/a", 1))
    with pytest.raises(StateConflict, match=rf"serial {start.serial} -> {first}"):
        theirs.put(start.serial, resource("Quota/b", 2))  # it read before our write
    with pytest.raises(StateConflict):
        theirs.remove(start.serial, "Quota/a")
    assert theirs.read() == ours.read()
    assert set(theirs.read().resources) == {"Quota/a"}

    second = theirs.put(first, resource("Quota/b", 2))  # re-read, then write
    with pytest.raises(StateConflict):
        ours.put(first, resource("Quota/a", 99))
    final = ours.read()
    assert final.serial == second == start.serial + 2
    assert final.resources == {"Quota/a": resource("Quota/a", 1), "Quota/b": resource("Quota/b", 2)}
    assert [v.address for v in ours.versions()] == ["Quota/a", "Quota/b"]
    ours.close()
    theirs.close()


def test_concurrent_writers_retrying_on_conflict_lose_no_update(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    SqliteBackend(db).close()
    writers, writes = 4, 15
    conflicts = [0] * writers
    errors: list[BaseException] = []
    go = threading.Barrier(writers)

    def write(n: int) -> None:
        backend = SqliteBackend(db)
        try:
            go.wait()
            for i in range(writes):
                while True:
                    serial = backend.read().serial
                    try:
                        backend.put(serial, resource(f"Quota/w{n}-{i}", n * 100 + i))
                        break
                    except StateConflict:
                        conflicts[n] += 1
        except BaseException as exc:
            errors.append(exc)
        finally:
            backend.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    state = SqliteBackend(db).read()
    assert state.serial == writers * writes
    assert state.resources == {
        f"Quota/w{n}-{i}": resource(f"Quota/w{n}-{i}", n * 100 + i)
        for n in range(writers)
        for i in range(writes)
    }
    history = SqliteBackend(db).versions(limit=1000)
    assert [v.serial for v in history] == list(range(1, writers * writes + 1))


# -- force-unlock and stale locks: a late apply never overwrites a newer one -------------


@contextmanager
def apply_at_prompt(root: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """An interactive `pipeform apply` that has planned and waits at "Do you want to perform
    these actions?" (its stdin a terminal). Yields (process, terminal); write b"yes\\n"."""
    terminal, their_end = pty.openpty()
    try:
        with started("apply", cwd=root, stdin=their_end) as proc:
            os.close(their_end)
            assert proc.stdout is not None
            seen, t0 = "", time.monotonic()
            while "Only 'yes' will be accepted" not in seen:
                assert time.monotonic() - t0 < 60 and proc.poll() is None, seen
                if select.select([proc.stdout], [], [], 1)[0]:
                    seen += os.read(proc.stdout.fileno(), 65536).decode()
            yield proc, terminal
    finally:
        os.close(terminal)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses a pseudo-terminal")
def test_a_stale_plan_never_overwrites_a_newer_apply_after_force_unlock(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "tree")
    with apply_at_prompt(root) as (waiting, terminal):
        holder = lock_holder(root)
        assert holder is not None and holder.pid == waiting.pid
        # a colleague takes the lock for stale (its process runs: --force), and applies a
        # newer commit
        unlock = ("force-unlock", "--force", holder.id, "-C", str(root))
        assert pipeform(*unlock, cwd=root).returncode == 0
        platform = root / "platform.yaml"
        platform.write_text(platform.read_text().replace("gpus: 4", "gpus: 8"))
        newer = pipeform(*APPLY, cwd=root)
        assert newer.returncode == 0, newer
        serial = recorded(root).serial
        os.write(terminal, b"yes\n")  # the first user comes back and confirms
        late = finish(waiting, ("apply",), 0)
    assert live_objects(root)["Quota/gpu-team"]["spec"]["spec"]["gpus"] == 8, (
        "the newer apply's change was overwritten by a plan made before it"
    )
    assert late.returncode == 1, late
    assert "the state changed" in late.stderr
    assert recorded(root).serial == serial


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_lock_whose_pid_was_reused_by_a_newer_process_is_broken(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "tree")
    hour_ago = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    newer = subprocess.Popen(  # alive, looks like pipeform, started long after the lock
        [sys.executable, "-c", "import sys; sys.stdin.read()", "pipeform"], stdin=subprocess.PIPE
    )
    try:
        backend = SqliteBackend(state_db(root))
        lock = LockInfo(
            str(uuid.uuid4()),
            "ci@runner",
            socket.gethostname(),
            newer.pid,
            "pipeform apply",
            hour_ago,
        )
        backend.acquire_lock(lock)
        backend.close()
        result = pipeform(*APPLY, cwd=root)
    finally:
        newer.kill()
        newer.communicate()
    assert result.returncode == 0, result
    assert f"broke a stale lock: lock id {lock.id}" in result.stderr
