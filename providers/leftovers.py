"""Temporary files and directories named after their writer, so that what a killed
process left behind can be proven abandoned and removed.

A temporary name is ``<stem>.<pid>-<start>.<random>`` (``.tmp`` may follow, as in the
durable writes' temporary files): the writer's pid and its start
time (clock ticks since boot, from /proc), which together name one process (a reused pid
has another start time). ``clean`` removes the entries of a directory whose writer no
longer runs; an entry of a live process, this one included, is left alone.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from pathlib import Path


def process_start(pid: int) -> str | None:
    """The process's start time (clock ticks since boot, from /proc), or None when it is gone.

    Together with the pid it names one process: a reused pid has another start time.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    if len(fields) < 20 or fields[0] == "Z":
        return None  # a zombie has finished
    return fields[19]


_tag: tuple[int, str] | None = None  # (pid, tag): a forked child computes its own


def owner_tag() -> str:
    """``<pid>-<start>`` of this process."""
    global _tag
    pid = os.getpid()
    if _tag is None or _tag[0] != pid:
        _tag = (pid, f"{pid}-{process_start(pid) or 0}")
    return _tag[1]


def temp_name(stem: str) -> str:
    """A fresh temporary name for ``stem`` carrying this process's tag."""
    return f"{stem}.{owner_tag()}.{secrets.token_hex(4)}"


def abandoned(name: str) -> bool:
    """Whether ``name`` (made by ``temp_name``) belongs to a process that no longer runs.
    A name without a tag is never judged abandoned: nothing proves it."""
    parts = name.removesuffix(".tmp").rsplit(".", 2)
    if len(parts) != 3:
        return False
    pid, _, start = parts[1].partition("-")
    if not pid.isdigit() or not start.isdigit():
        return False
    return process_start(int(pid)) != start


def clean(directory: Path, prefix: str) -> list[Path]:
    """Remove the entries of ``directory`` named ``prefix...`` whose writer is gone; the
    removed paths."""
    removed = []
    try:
        entries = list(directory.iterdir())
    except OSError:  # no directory: nothing left behind
        return []
    for entry in entries:
        if not entry.name.startswith(prefix) or not abandoned(entry.name):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
        removed.append(entry)
    return removed
