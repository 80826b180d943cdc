"""What the integration tests' server helpers share: CI detection, ports, readiness, stopping.

``mlflow_server`` and ``prometheus_stack`` start real servers on 127.0.0.1, each in its
own process group (``start_new_session=True``), wait until an HTTP endpoint answers 200,
and stop the whole group afterwards, checking that no process of it is left.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import NoReturn

import pytest

HOST = "127.0.0.1"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def unavailable(message: str) -> NoReturn:
    """What a test needs is missing here: it fails in CI (CI must prove it ran), else skips."""
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def wait_answering(
    url: str,
    process: subprocess.Popen[bytes],
    deadline: float,
    *,
    timeout: float,
    interval: float,
) -> bool:
    """Poll url until it answers 200 (True); False once the process exits or time is up."""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(interval)
    return False


def stop_process_group(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM the process's whole group, SIGKILL what is left after ``grace`` seconds.

    Raises RuntimeError when a process of the group survives SIGKILL, so a leak shows up
    as a test error instead of a stray server.
    """
    group = process.pid  # started with start_new_session: its pid is the group id
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        if not _group_alive(group):
            break
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _group_alive(group):
            process.poll()  # reap the leader so it does not linger as a zombie
            time.sleep(0.1)
    if process.poll() is None:
        process.wait(timeout=5)
    if _group_alive(group):
        raise RuntimeError(f"processes of group {group} survived SIGKILL")


def _group_alive(group: int) -> bool:
    """Whether a live (not zombie) process is left in the group."""
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: ask the kernel, zombies included
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return False
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it just exited
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after ')'
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == group and fields[0] != "Z":
            return True
    return False
