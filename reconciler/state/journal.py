"""The journal read as applies: one entry per apply, with its changes nested.

An apply writes several journal rows: one when it starts (every change "planned"), one
per resource as its result lands (so a killed apply still accounts for what it changed),
and one when it ends (every result). ``applies`` folds them back into one ``ApplyRecord``
per apply, newest last: the final row of an apply that finished; for one that never did,
its results so far, the planned changes it never reached still "planned".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reconciler.state.model import JournalEntry

#: Rows read per apply asked for, at first (an apply writes about two rows per change).
_ROWS_PER_APPLY = 8


@dataclass(frozen=True)
class ApplyRecord:
    """One apply, destroy or refresh as the journal recorded it."""

    command: str
    who: str
    started_at: str
    finished_at: str | None  # None: the apply was interrupted (killed) before it ended
    plan_digest: str | None
    spec_commit: str | None  # with -dirty when the specs had uncommitted changes
    serial_before: int
    serial_after: int
    changes: list[dict[str, Any]] = field(default_factory=list)  # address, action, status, error

    @property
    def status(self) -> str:
        """interrupted, failed (a change failed or was skipped), or succeeded."""
        if self.finished_at is None:
            return "interrupted"
        if any(c.get("status") in ("failed", "skipped") for c in self.changes):
            return "failed"
        return "succeeded"

    def count(self, status: str) -> int:
        return sum(1 for c in self.changes if c.get("status") == status)

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "who": self.who,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "status": self.status,
            "spec_commit": self.spec_commit,
            "plan_digest": self.plan_digest,
            "serial_before": self.serial_before,
            "serial_after": self.serial_after,
            "changes": [dict(c) for c in self.changes],
        }


def applies(read: Callable[[int], list[JournalEntry]], limit: int) -> list[ApplyRecord]:
    """The newest ``limit`` applies, oldest first; ``read(n)`` gives the newest n journal
    rows, oldest first (``StateBackend.journal``). Reads more rows until it has seen more
    than ``limit`` applies (the oldest, perhaps cut short, is dropped) or the whole journal.
    An apply's rows are consecutive: applies hold the state lock while they write."""
    if limit <= 0:
        return []
    rows = limit * _ROWS_PER_APPLY
    while True:
        entries = read(rows)
        found = fold(entries)
        if len(found) > limit or len(entries) < rows:
            return found[-limit:]
        rows *= 4


def fold(entries: list[JournalEntry]) -> list[ApplyRecord]:
    """Journal rows (oldest first) -> one record per apply (oldest first)."""
    runs: dict[tuple[str, str, str], list[JournalEntry]] = {}
    for entry in entries:
        runs.setdefault((entry.started_at, entry.who, entry.command), []).append(entry)
    return [_record(rows) for rows in runs.values()]


def _record(rows: list[JournalEntry]) -> ApplyRecord:
    final = next((e for e in reversed(rows) if e.finished_at), None)
    if final is not None:
        return ApplyRecord(
            final.command,
            final.who,
            final.started_at,
            final.finished_at,
            final.plan_digest,
            final.spec_commit,
            final.serial_before,
            final.serial_after,
            [dict(r) for r in final.results],
        )
    results: dict[str, dict[str, Any]] = {}
    for row in rows:  # the start row's "planned" entries, overwritten by results as they land
        for result in row.results:
            results[str(result["address"])] = dict(result)
    last = rows[-1]
    return ApplyRecord(
        last.command,
        last.who,
        last.started_at,
        None,
        last.plan_digest,
        last.spec_commit,
        min(e.serial_before for e in rows),
        max(e.serial_after for e in rows),
        list(results.values()),
    )
