"""The lock bookkeeping the state backends share: taking the lock within a timeout,
breaking a stale one with a note, and reading a holder's record back (a damaged record
names force-unlock). Where a backend keeps the record (a row, a DynamoDB item) and how it
knows a holder is gone (a dead pid, a closed database session) stay the backend's own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from reconciler.state.backend import LockDamaged, LockHeld
from reconciler.state.model import LockInfo

#: one attempt to take the lock: None when taken, else the live holder; it appends a note
#: for each stale lock it broke
Attempt = Callable[[list[str]], LockInfo | None]


def take(attempt: Attempt, timeout: float) -> list[str]:
    """Repeat attempt until it takes the lock or timeout seconds pass (LockHeld, naming
    the holder); returns the notes (stale locks broken)."""
    notes: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        holder = attempt(notes)
        if holder is None:
            return notes
        if time.monotonic() >= deadline:
            raise LockHeld(holder)
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))


def broke_stale(holder: LockInfo, why: str = "that process is gone") -> str:
    """The note for a stale lock broken."""
    return f"broke a stale lock: {holder.describe()}; {why}"


def read_holder(data: str, lock_id: str, where: str) -> LockInfo:
    """The holder a lock record names; LockDamaged (with the record's id, so that
    force-unlock can release it) when the record is unreadable."""
    try:
        holder = LockInfo(**json.loads(data))
        if not (isinstance(holder.pid, int) and isinstance(holder.host, str)):
            raise TypeError("its pid or host has the wrong type")
    except (ValueError, TypeError) as exc:
        raise LockDamaged(
            f"the state lock in {where} is damaged: its record (lock id {lock_id}) holds no "
            f"readable lock ({type(exc).__name__}: {exc}), so nobody can tell who holds it.\n"
            "  If no pipeform command is running on this state, release it: "
            f"pipeform force-unlock {lock_id}",
            lock_id,
        ) from None
    return holder
