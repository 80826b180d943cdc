"""The journal as a hash chain: each row carries the hash of the row before it.

A row's ``hash`` is sha256 over the previous row's link and the row's own JSON; the
previous row's link is its ``hash``, or, for a row written before the chain existed
(``hash`` NULL: a journal older than the migration), the sha256 of its JSON. The newest
link is also kept in ``meta`` (``journal_head``: ``id:hash``), so deleting the newest rows
shows as well. ``verify`` walks the rows and reports, by row id, every edited row, every
gap where rows were deleted, and how many rows predate the chain (unchained, not
tampered).

What a chain does not do: someone who can write the state file can rewrite every hash
after the row they edit. Record the head ``pipeform history --verify`` prints somewhere
else (a CI log, a ticket) to pin the journal up to that point.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass, field

GENESIS = "genesis"
HEAD_KEY = "journal_head"


def link_of(row_hash: str | None, data: str) -> str:
    """The value the next row's prev_hash must hold."""
    return row_hash if row_hash else "sha256:" + hashlib.sha256(data.encode()).hexdigest()


def row_hash(prev: str, data: str) -> str:
    return "sha256:" + hashlib.sha256(f"{prev}\n{data}".encode()).hexdigest()


def migrate(db: sqlite3.Connection) -> None:
    """Add the chain's columns to a journal made before them (rows kept, unchained)."""
    columns = {str(r[1]) for r in db.execute("PRAGMA table_info(journal)").fetchall()}
    if "hash" not in columns:
        db.execute("ALTER TABLE journal ADD COLUMN prev_hash TEXT")
        db.execute("ALTER TABLE journal ADD COLUMN hash TEXT")


def append(db: sqlite3.Connection, data: str) -> None:
    """Insert one journal row linked to the newest one (inside the caller's transaction)."""
    last = db.execute("SELECT data, hash FROM journal ORDER BY id DESC LIMIT 1").fetchone()
    prev = GENESIS if last is None else link_of(last[1], str(last[0]))
    digest = row_hash(prev, data)
    cursor = db.execute(
        "INSERT INTO journal (data, prev_hash, hash) VALUES (?, ?, ?)", (data, prev, digest)
    )
    db.execute(
        "INSERT OR REPLACE INTO meta VALUES (?, ?)", (HEAD_KEY, f"{cursor.lastrowid}:{digest}")
    )


@dataclass
class ChainReport:
    """What ``history --verify`` found."""

    rows: int = 0
    unchained: int = 0  # rows written before the chain existed
    problems: list[str] = field(default_factory=list)
    head: str | None = None  # the newest link: id:hash

    @property
    def intact(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, object]:
        return {
            "intact": self.intact,
            "entries": self.rows,
            "unchained": self.unchained,
            "problems": list(self.problems),
            "head": self.head,
        }


def _describe(data: str) -> str:
    try:
        entry = json.loads(data)
        return f"{entry.get('command', '?')} at {str(entry.get('started_at', '?'))[:19]}"
    except ValueError:
        return "an unreadable entry"


def verify(rows: list[tuple[int, str, str | None, str | None]], head: str | None) -> ChainReport:
    """Rows (id, data, prev_hash, hash) oldest first, and the head kept in meta."""
    report = ChainReport(rows=len(rows), head=head)
    prev_id, prev_link, chained = 0, GENESIS, False
    for row_id, data, prev, digest in rows:
        if digest is None:
            if chained:
                report.problems.append(
                    f"journal entry {row_id} ({_describe(data)}) has no chain link after the "
                    "chain began: it was inserted or its link removed"
                )
            else:
                report.unchained += 1
        else:
            chained = True
            if row_hash(prev or "", data) != digest:
                report.problems.append(
                    f"journal entry {row_id} ({_describe(data)}) was edited: its content "
                    "does not match its hash"
                )
            if prev != prev_link:
                report.problems.append(_gap(prev_id, row_id, data))
        prev_id, prev_link = row_id, link_of(digest, data)
    _check_head(report, rows, head)
    return report


def _gap(prev_id: int, row_id: int, data: str) -> str:
    if row_id > prev_id + 1:
        missing = (
            f"entry {prev_id + 1}"
            if row_id == prev_id + 2
            else f"entries {prev_id + 1}-{row_id - 1}"
        )
        return f"journal {missing} deleted (entry {row_id}, {_describe(data)}, links to it)"
    return (
        f"journal entry {row_id} ({_describe(data)}) does not link to entry {prev_id}: "
        "the entry before it was edited or replaced"
    )


def _check_head(
    report: ChainReport, rows: list[tuple[int, str, str | None, str | None]], head: str | None
) -> None:
    if head is None:
        return
    head_id, _, head_hash = head.partition(":")
    last = rows[-1] if rows else None
    if last is None or str(last[0]) != head_id or last[3] != head_hash:
        newest = "none" if last is None else str(last[0])
        report.problems.append(
            f"the newest journal entry was {head_id}, but the journal now ends at {newest}: "
            "entries at its end were deleted or replaced"
        )
