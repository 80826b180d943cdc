"""One Workspace's Prometheus rules file: parse, render, lock, check with promtool, write.

``<rulesDir>/pipeform-<workspace>.rules.yml`` holds one group per resource, named after
its address (``Alert/expense-model-failed``). Which state owns a group is recorded in the
file's header comments (``# pipeform-owner: <address> lineage=<uuid>``), which Prometheus
ignores, so the file stays a plain rules file that ``rule_files`` may glob. Groups without
an owner line (written by hand) are kept as they are and never taken over.

Writers hold a per-directory ``threading.Lock`` and an ``fcntl.flock`` on the rules
directory itself (no lock file to trip a ``rule_files: [dir/*]`` glob), read the file,
change one group, and replace the file atomically: a temporary file in the directory,
fsync, ``promtool check rules`` on it, rename, fsync of the directory. Readers need no
lock: they only ever see a whole old file or a whole new one.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from providers import durable
from providers.base import JSON, PermanentError, RetryableError

OWNER_PREFIX = "# pipeform-owner: "
_OWNER_LINE = re.compile(r"^# pipeform-owner: (\S+) lineage=(\S*)\s*$")
LOCK_TIMEOUT = 30.0

_locks_guard = threading.Lock()
_thread_locks: dict[str, threading.Lock] = {}


@dataclass
class RulesFile:
    """The parsed file: groups in file order, owners by group name."""

    groups: list[JSON] = field(default_factory=list)
    owners: dict[str, str] = field(default_factory=dict)  # group name -> state lineage

    def group(self, name: str) -> JSON | None:
        return next((g for g in self.groups if g.get("name") == name), None)

    def put(self, group: JSON, lineage: str) -> None:
        """Add or replace the group of that name (keeping its place in the file)."""
        for i, existing in enumerate(self.groups):
            if existing.get("name") == group["name"]:
                self.groups[i] = group
                break
        else:
            self.groups.append(group)
        self.owners[str(group["name"])] = lineage

    def drop(self, name: str) -> None:
        self.groups = [g for g in self.groups if g.get("name") != name]
        self.owners.pop(name, None)


def parse(text: str, shown: str) -> RulesFile:
    """The rules file's groups and owners; a damaged file is a clear error."""
    owners = {}
    for line in text.splitlines():
        if not line.startswith("#"):
            continue
        match = _OWNER_LINE.match(line)
        if match:
            owners[match.group(1)] = match.group(2)
    try:
        # libyaml's loader where PyYAML has it: the pure-Python one costs 50 ms a file
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        data: Any = yaml.load(text, Loader=loader) if text.strip() else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise PermanentError(
            f"{shown} is not valid YAML{where}; fix it, or delete it and apply again"
        ) from None
    data = data or {}
    groups = data.get("groups") if isinstance(data, dict) else None
    if groups is None:
        groups = []
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise PermanentError(
            f"{shown} is not a Prometheus rules file (groups must be a list of groups); "
            "fix it, or delete it and apply again"
        )
    return RulesFile(
        groups, {k: v for k, v in owners.items() if any(g.get("name") == k for g in groups)}
    )


def read(path: Path, shown: str) -> RulesFile | None:
    """The file at path, or None when there is none."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise PermanentError(f"{shown} is not UTF-8 text; delete it and apply again") from None
    return parse(text, shown)


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line PromQL, no anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render(rules: RulesFile, workspace: str) -> str:
    header = [
        f"# Prometheus rules written by pipeform for workspace {workspace}.",
        "# Change the Alert and SLO specs and run `pipeform apply` rather than editing this",
        "# file: a hand edit to a group shows as drift in `pipeform plan`.",
        *(
            f"{OWNER_PREFIX}{name} lineage={rules.owners[name]}"
            for name in (str(g.get("name")) for g in rules.groups)
            if name in rules.owners
        ),
    ]
    body = yaml.dump(
        {"groups": rules.groups}, Dumper=_Dumper, sort_keys=False, width=10**6, allow_unicode=True
    )
    return "\n".join(header) + "\n" + body


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Exclusive use of a rules directory: threads of this process, then other processes."""
    key = str(directory.resolve())
    with _locks_guard:
        thread_lock = _thread_locks.setdefault(key, threading.Lock())
    if not thread_lock.acquire(timeout=LOCK_TIMEOUT):
        raise RetryableError(f"the rules directory {directory} stayed busy for {LOCK_TIMEOUT:.0f}s")
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            _flock(fd, directory)
            yield
        finally:
            os.close(fd)  # closing releases the flock
    finally:
        thread_lock.release()


def _flock(fd: int, directory: Path) -> None:
    deadline = time.monotonic() + LOCK_TIMEOUT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
        if time.monotonic() > deadline:
            raise RetryableError(
                f"another pipeform process kept the rules directory {directory} locked "
                f"for {LOCK_TIMEOUT:.0f}s"
            )
        time.sleep(0.05)


def write(path: Path, text: str, check: Callable[[Path], None]) -> None:
    """Replace path with text atomically, after ``check`` accepted the temporary file."""
    durable.atomic_write(path, text.encode("utf-8"), 0o644, check)


def ensure_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)


remove = durable.remove
