"""The state backend interface, and the errors every backend raises.

Errors::

    StateError            the state cannot be read or written
    ├── StateConflict     compare-and-swap failed: someone else wrote (serial moved)
    └── LockHeld          another process holds the lock (its LockInfo attached)
"""

from __future__ import annotations

import abc

from reconciler.diagnostics import PipeformError
from reconciler.state.model import JournalEntry, LockInfo, ResourceState, State, Version


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


class StateBackend(abc.ABC):
    """Small interface, as Terraform's state managers: read, write one resource, lock."""

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

    @abc.abstractmethod
    def versions(self, limit: int = 50) -> list[Version]: ...

    @abc.abstractmethod
    def state_at(self, serial: int) -> State:
        """The state as it was right after the write that made serial."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass
