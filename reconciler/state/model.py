"""What pipeform last applied and observed: the state model, its journal and lock records.

State never holds a secret value: specs are stored redacted, and providers return only
fingerprints (keyed hashes) of sensitive things as outputs.
"""

from __future__ import annotations

import enum
import os
import sys
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Status(enum.StrEnum):
    READY = "ready"
    TAINTED = "tainted"  # a failed create or replace left something behind: replace next time
    FAILED = "failed"  # the last update failed: the prior spec is kept, the update retried
    PENDING = "pending"  # a create started and has not been confirmed: resumed (adopted) next time
    DELETING = "deleting"  # a delete started and has not been confirmed: finished next time


@dataclass(frozen=True)
class ResourceState:
    address: str
    kind: str
    provider: str
    spec: dict[str, Any]  # the applied document (metadata labels + spec), redacted
    spec_hash: str
    inputs_fingerprint: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    observed: dict[str, Any] = field(default_factory=dict)  # live attributes at apply/refresh
    external_id: str | None = None
    dependencies: list[str] = field(default_factory=list)
    status: Status = Status.READY
    prevent_destroy: bool = False
    created_at: str = field(default_factory=now)
    updated_at: str = field(default_factory=now)

    def to_dict(self) -> dict[str, Any]:
        """Its fields, for serialising: a shallow copy (dataclasses.asdict deep-copies every
        nested value, which cost more than the state write itself)."""
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResourceState:
        status = data.get("status", "ready")
        values = {**data, "status": _STATUSES.get(status) or Status(status)}  # a lookup, not Enum()
        if values.keys() == _RESOURCE_FIELDS:  # a whole record, as to_dict writes it
            resource = object.__new__(cls)  # what __init__ would do, without its per-field cost
            object.__setattr__(resource, "__dict__", values)
            return resource
        return cls(**values)  # an older or partial record: defaults fill the gaps


_RESOURCE_FIELDS = frozenset(f.name for f in fields(ResourceState))
_STATUSES = {s.value: s for s in Status}


@dataclass(frozen=True)
class State:
    lineage: str
    serial: int
    resources: dict[str, ResourceState] = field(default_factory=dict)

    @staticmethod
    def new_lineage() -> str:
        import uuid

        return str(uuid.uuid4())


def hostname() -> str:
    """This machine's name, as socket.gethostname() gives it (uname's nodename on POSIX)."""
    if hasattr(os, "uname"):
        return os.uname().nodename
    import socket

    return socket.gethostname()


@dataclass(frozen=True)
class LockInfo:
    """Who holds the state lock, shown to anyone who finds it taken."""

    id: str
    who: str
    host: str
    pid: int
    command: str
    since: str
    pid_start: str | None = (
        None  # the holder's start time (/proc/PID/stat), so a reused pid is not it
    )

    @classmethod
    def for_this_process(cls, command: str) -> LockInfo:
        import getpass
        import uuid

        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = str(os.getuid())
        return cls(
            id=str(uuid.uuid4()),
            who=f"{user}@{hostname()}",
            host=hostname(),
            pid=os.getpid(),
            command=command,
            since=now(),
            pid_start=process_start(os.getpid()),
        )

    def describe(self) -> str:
        return (
            f"lock id {self.id} held by {self.who} (pid {self.pid}, `{self.command}`) "
            f"since {self.since.replace('T', ' ')[:19]} UTC"
        )

    def holder_is_alive(self) -> bool:
        """True when the holder ran on this host and its process still runs (a live command,
        or a hung one: only its user can tell)."""
        return self.host == hostname() and not self.holder_is_dead()

    def holder_is_dead(self) -> bool:
        """True when the holder ran on this host and its process is gone (a crashed apply).

        A live process with the same pid but another start time is a reused pid: dead too.
        """
        if self.host != hostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        if self.pid_start is not None:
            started = process_start(self.pid)
            return started is not None and started != self.pid_start
        began = process_started_at(self.pid)  # older locks: compare with when the lock was taken
        try:
            since = (
                datetime.strptime(self.since, "%Y-%m-%dT%H:%M:%S.%fZ")
                .replace(tzinfo=UTC)
                .timestamp()
            )
        except ValueError:
            return False
        return began is not None and began > since + 5


def process_started_at(pid: int) -> float | None:
    """When a process started, in seconds since the epoch (Linux), or None where unknown."""
    ticks = process_start(pid)
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            boot = next(float(line.split()[1]) for line in fh if line.startswith("btime "))
        return boot + int(ticks) / os.sysconf("SC_CLK_TCK") if ticks is not None else None
    except (OSError, StopIteration, ValueError):
        return None


def process_start(pid: int) -> str | None:
    """A process's start time in clock ticks since boot (Linux), or None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return fields[19]  # field 22 of stat; fields[0] is field 3 (state)
    except (OSError, IndexError):
        return None


@dataclass(frozen=True)
class JournalEntry:
    """One apply, destroy or state edit: who, when, from which commit, what changed."""

    command: str
    who: str
    started_at: str
    finished_at: str
    plan_digest: str | None
    spec_commit: str | None
    serial_before: int
    serial_after: int
    results: list[dict[str, Any]] = field(default_factory=list)  # address, action, outcome, error

    def to_dict(self) -> dict[str, Any]:
        """Its fields, for serialising (a shallow copy, as ResourceState.to_dict)."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class Version:
    serial: int
    at: str
    address: str  # "*" for a restore, which writes every resource at once
    operation: str  # put | remove | restore
    restored_from: int | None = None  # a restore: the serial whose state it brought back

    def describe(self) -> str:
        """One line, as ``pipeform state versions`` shows it."""
        what = (
            f"the whole state, as at serial {self.restored_from}"
            if self.operation == "restore"
            else self.address
        )
        return f"{self.serial:>6}  {self.at[:19]}  {self.operation:<7}  {what}"


def argv_command() -> str:
    args = [os.path.basename(sys.argv[0]) if sys.argv else "pipeform", *sys.argv[1:]]
    return " ".join(args)


@dataclass(frozen=True)
class VersionRecord:
    """One kept version as stored: what ``state migrate`` copies between backends."""

    serial: int
    at: str
    address: str
    operation: str  # put | remove | restore
    data: str | None  # the record's JSON (put), the whole state's (restore), None (remove)


@dataclass(frozen=True)
class Dump:
    """A whole state: lineage, serial, resources, every kept version and the journal."""

    lineage: str
    serial: int
    resources: dict[str, ResourceState]
    versions: list[VersionRecord]
    journal: list[JournalEntry]
