"""SQLite state backend (the embedded default): one file, WAL, a row per resource.

Each write touches one resource row, bumps the serial and appends to the version log
inside one ``BEGIN IMMEDIATE`` transaction that first checks the serial (compare-and-
swap). The lock is a row holding its holder's details; a lock whose holder was a local
process that has died (kill -9, a cancelled CI job) is detected and broken.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from reconciler import faults
from reconciler.state.backend import LockHeld, StateBackend, StateConflict, StateError
from reconciler.state.model import JournalEntry, LockInfo, ResourceState, State, Version, now
from trainer.sqlitesetup import setup

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS resources (address TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS versions (
    serial INTEGER PRIMARY KEY, at TEXT NOT NULL, address TEXT NOT NULL,
    operation TEXT NOT NULL, data TEXT);
CREATE TABLE IF NOT EXISTS journal (id INTEGER PRIMARY KEY AUTOINCREMENT, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS lock (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1), id TEXT NOT NULL, data TEXT NOT NULL);
"""


def _setup(db: sqlite3.Connection) -> None:
    """WAL mode, full fsync on commit and the schema on a new connection (retried while
    another process holds the file, see ``trainer/sqlitesetup.py``)."""
    setup(db, ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL"), SCHEMA)


class SqliteBackend(StateBackend):
    def __init__(self, path: Path) -> None:
        self.path = path
        self._cache: State | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                path, timeout=30, isolation_level=None, check_same_thread=False
            )
            _setup(self._db)
            with self._tx():
                row = self._db.execute("SELECT value FROM meta WHERE key='lineage'").fetchone()
                if row is None:
                    self._db.execute(
                        "INSERT INTO meta VALUES ('lineage', ?), ('serial', '0'), ('created_at', ?)",
                        (State.new_lineage(), now()),
                    )
        except sqlite3.DatabaseError as exc:
            raise StateError(f"cannot open the state database {path}: {exc}") from exc

    @contextmanager
    def _tx(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _meta(self, key: str) -> str:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        if row is None:
            raise StateError(
                f"the state database {self.path} has no {key}: it is not a pipeform state"
            )
        return str(row[0])

    def read(self) -> State:
        """The current state; parsed once per serial (the serial moves with every write)."""
        self._db.execute("BEGIN")
        try:
            lineage, serial = self._meta("lineage"), int(self._meta("serial"))
            cached = self._cache
            if cached is None or (cached.lineage, cached.serial) != (lineage, serial):
                rows = self._db.execute("SELECT data FROM resources ORDER BY address").fetchall()
                # one decode of one array costs less than one per row
                records = json.loads("[" + ",".join(d for (d,) in rows) + "]")
                parsed = (ResourceState.from_dict(r) for r in records)
                cached = self._cache = State(lineage, serial, {r.address: r for r in parsed})
        finally:
            self._db.execute("COMMIT")
        return State(lineage, serial, dict(cached.resources))

    def _check_serial(self, expected_serial: int) -> int:
        serial = int(self._meta("serial"))
        if serial != expected_serial:
            raise StateConflict(
                f"the state changed while this command ran (serial {expected_serial} -> "
                f"{serial}): another writer bypassed the lock. Re-run the command."
            )
        return serial

    def _write(
        self,
        expected_serial: int,
        address: str,
        data: str | None,
        journal: JournalEntry | None = None,
    ) -> int:
        with self._tx():
            serial = self._write_one(self._check_serial(expected_serial), address, data, journal)
            self._db.execute("UPDATE meta SET value=? WHERE key='serial'", (str(serial),))
        return serial

    def _write_one(
        self,
        serial: int,
        address: str,
        data: str | None,
        journal: JournalEntry | None,
        crash_point: bool = True,
    ) -> int:
        """One put (data) or remove (None) inside a transaction; the serial after it."""
        if data is None:
            self._db.execute("DELETE FROM resources WHERE address=?", (address,))
        else:
            self._db.execute(
                "INSERT INTO resources VALUES (?, ?) ON CONFLICT(address) DO UPDATE "
                "SET data=excluded.data",
                (address, data),
            )
        self._db.execute(
            "INSERT INTO versions VALUES (?, ?, ?, ?, ?)",
            (serial + 1, now(), address, "remove" if data is None else "put", data),
        )
        if journal is not None:
            self._db.execute(
                "INSERT INTO journal (data) VALUES (?)",
                (json.dumps(replace(journal, serial_after=serial + 1).to_dict()),),
            )
        if crash_point:
            faults.point("mid-state-write", address)  # inside the transaction, before COMMIT
        return serial + 1

    def write_many(
        self,
        expected_serial: int,
        writes: list[tuple[str, ResourceState | None, JournalEntry | None]],
    ) -> int:
        with self._tx():
            serial = self._check_serial(expected_serial)
            for address, resource, journal in writes:
                data = None if resource is None else json.dumps(resource.to_dict(), sort_keys=True)
                serial = self._write_one(serial, address, data, journal)
            self._db.execute("UPDATE meta SET value=? WHERE key='serial'", (str(serial),))
        return serial

    def put(
        self, expected_serial: int, resource: ResourceState, journal: JournalEntry | None = None
    ) -> int:
        data = json.dumps(resource.to_dict(), sort_keys=True)
        return self._write(expected_serial, resource.address, data, journal)

    def put_many(self, expected_serial: int, resources: list[ResourceState]) -> int:
        with self._tx():
            serial = self._check_serial(expected_serial)
            for resource in resources:  # the pending records of an apply's creates
                data = json.dumps(resource.to_dict(), sort_keys=True)
                serial = self._write_one(serial, resource.address, data, None, crash_point=False)
            self._db.execute("UPDATE meta SET value=? WHERE key='serial'", (str(serial),))
        return serial

    def remove(
        self, expected_serial: int, address: str, journal: JournalEntry | None = None
    ) -> int:
        return self._write(expected_serial, address, None, journal)

    def acquire_lock(self, info: LockInfo, timeout: float = 0.0) -> list[str]:
        notes: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            with self._tx():
                holder = self.lock_holder()
                if holder is not None and holder.holder_is_dead():
                    self._db.execute("DELETE FROM lock")
                    notes.append(f"broke a stale lock: {holder.describe()}; that process is gone")
                    holder = None
                if holder is None:
                    self._db.execute(
                        "INSERT INTO lock VALUES (1, ?, ?)", (info.id, json.dumps(info.__dict__))
                    )
                    return notes
            if time.monotonic() >= deadline:
                raise LockHeld(holder)
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

    def release_lock(self, lock_id: str) -> None:
        with self._tx():
            self._db.execute("DELETE FROM lock WHERE id=?", (lock_id,))

    def force_unlock(self, lock_id: str) -> bool:
        with self._tx():
            return self._db.execute("DELETE FROM lock WHERE id=?", (lock_id,)).rowcount > 0

    def lock_holder(self) -> LockInfo | None:
        row = self._db.execute("SELECT data FROM lock").fetchone()
        return LockInfo(**json.loads(row[0])) if row else None

    def append_journal(self, entry: JournalEntry) -> None:
        with self._tx():
            self._db.execute(
                "INSERT INTO journal (data) VALUES (?)", (json.dumps(entry.to_dict()),)
            )

    def journal(self, limit: int = 50) -> list[JournalEntry]:
        rows = self._db.execute(
            "SELECT data FROM journal ORDER BY id DESC LIMIT ?", (limit,)
        ).fetchall()
        return [JournalEntry(**json.loads(d)) for (d,) in reversed(rows)]

    def versions(self, limit: int = 50) -> list[Version]:
        rows = self._db.execute(
            "SELECT serial, at, address, operation FROM versions ORDER BY serial DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [Version(*row) for row in reversed(rows)]

    def state_at(self, serial: int) -> State:
        resources: dict[str, ResourceState] = {}
        rows = self._db.execute(
            "SELECT address, operation, data FROM versions WHERE serial <= ? ORDER BY serial",
            (serial,),
        ).fetchall()
        for address, operation, data in rows:
            if operation == "remove":
                resources.pop(address, None)
            else:
                resources[address] = ResourceState.from_dict(json.loads(data))
        return State(self._meta("lineage"), serial, resources)

    def close(self) -> None:
        self._db.close()
