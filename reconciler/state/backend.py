"""The state backend interface, and the errors every backend raises.

Errors::

    StateError            the state cannot be read or written
    ├── StateConflict     compare-and-swap failed: someone else wrote (serial moved)
    ├── LockHeld          another process holds the lock (its LockInfo attached)
    └── StateDamaged      the stored state is damaged: the message says what and how to
        │                 recover (usually ``pipeform state restore SERIAL``)
        └── LockDamaged   the lock row holds no readable lock (its id attached, so that
                          ``pipeform force-unlock ID`` can still release it)

How a command opens the state (``Access``):

    create     read and write; a state that does not exist yet is created (apply,
               destroy, refresh, import)
    existing   read and write a state that exists; where there is none, an empty state
               that lives in memory only, so nothing is created (plan, state rm,
               state restore, force-unlock)
    read       never write, so that an auditor's read-only checkout works; where there is
               no state, the same empty state (state list, show, versions, history)
"""

from __future__ import annotations

import abc
from typing import Literal

from reconciler.diagnostics import PipeformError
from reconciler.state.journal_chain import ChainReport
from reconciler.state.model import Dump, JournalEntry, LockInfo, ResourceState, State, Version

Access = Literal["create", "existing", "read"]


class StateError(PipeformError):
    pass


class StateConflict(StateError):
    pass


class LockHeld(StateError):
    def __init__(self, holder: LockInfo) -> None:
        self.holder = holder
        super().__init__(
            "the state is locked by another pipeform process\n"
            f"  {holder.describe()}\n"
            f"  Wait for it, retry with --lock-timeout 5m, or if that process is gone: "
            f"pipeform force-unlock {holder.id}"
        )


class StateDamaged(StateError):
    pass


class LockDamaged(StateDamaged):
    def __init__(self, message: str, lock_id: str) -> None:
        self.lock_id = lock_id
        super().__init__(message)


class StateBackend(abc.ABC):
    """Small interface, as Terraform's state managers: read, write one resource, lock."""

    #: False when no state exists yet and this backend only shows an empty one (an
    #: ``existing`` or ``read`` access found none): nothing was created.
    exists: bool = True

    @abc.abstractmethod
    def read(self) -> State:
        """The current state; a new lineage is created on first use."""

    @abc.abstractmethod
    def put(
        self, expected_serial: int, resource: ResourceState, journal: JournalEntry | None = None
    ) -> int:
        """Write one resource if the serial is still expected_serial; return the new serial.

        A journal entry given is appended in the same transaction: both land, or neither.
        """

    def put_many(self, expected_serial: int, resources: list[ResourceState]) -> int:
        """Write several resources (one version each); backends make it one transaction."""
        serial = expected_serial
        for resource in resources:
            serial = self.put(serial, resource)
        return serial

    @abc.abstractmethod
    def remove(
        self, expected_serial: int, address: str, journal: JournalEntry | None = None
    ) -> int:
        """Forget one resource (compare-and-swap and journal as put); return the new serial."""

    def write_many(
        self,
        expected_serial: int,
        writes: list[tuple[str, ResourceState | None, JournalEntry | None]],
    ) -> int:
        """Several puts (a resource) and removes (None), each with its journal entry, in
        order: one version each. Backends make it one transaction, so that writers that
        finish together share one commit (the applier's group commit)."""
        serial = expected_serial
        for address, resource, journal in writes:
            if resource is None:
                serial = self.remove(serial, address, journal)
            else:
                serial = self.put(serial, resource, journal)
        return serial

    @abc.abstractmethod
    def acquire_lock(self, info: LockInfo, timeout: float = 0.0) -> list[str]:
        """Take the lock, waiting up to timeout seconds; returns notes (a stale lock broken)."""

    @abc.abstractmethod
    def release_lock(self, lock_id: str) -> None: ...

    @abc.abstractmethod
    def force_unlock(self, lock_id: str) -> bool:
        """Remove the lock if its id matches; False when no such lock is held."""

    @abc.abstractmethod
    def lock_holder(self) -> LockInfo | None: ...

    @abc.abstractmethod
    def append_journal(self, entry: JournalEntry) -> None: ...

    @abc.abstractmethod
    def journal(self, limit: int = 50) -> list[JournalEntry]: ...

    def verify_journal(self) -> ChainReport:
        """Walk the journal's hash chain; a backend without one says so."""
        raise StateError(f"the {type(self).__name__} keeps no hash-chained journal to verify")

    @abc.abstractmethod
    def versions(self, limit: int = 50) -> list[Version]: ...

    @abc.abstractmethod
    def state_at(self, serial: int) -> State:
        """The state as it was right after the write that made serial."""

    @abc.abstractmethod
    def restore(
        self, serial: int, journal: JournalEntry, lineage: str | None = None
    ) -> tuple[int, dict[str, str]]:
        """Make the state what it was at ``serial`` (a kept version), as one new version.

        Works on a damaged state too (records that do not parse, a serial that is not a
        number, a missing resources table): the kept versions are what it rebuilds from.
        ``lineage`` sets the lineage of a state that lost it, and only then. The journal
        entry lands in the same transaction. Returns the new serial and what changed, by
        address: added, changed or removed. Raises StateError for an unknown serial.
        """

    @abc.abstractmethod
    def dump(self) -> Dump:
        """The whole state, every kept version and the whole journal (``state migrate``)."""

    @abc.abstractmethod
    def load(self, dump: Dump) -> None:
        """Replace everything this backend holds with ``dump``, keeping its lineage, serial,
        versions and journal. The caller (``state migrate``) holds the lock and has checked
        that what is replaced is empty or of the same lineage."""

    def describe(self) -> str:
        """Where this state lives, for messages (no secret)."""
        return type(self).__name__

    def close(self) -> None:  # noqa: B027 - optional hook
        pass
