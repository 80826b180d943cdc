"""SQLite state backend (the embedded default): one file, WAL, a row per resource.

Each write touches one resource row, bumps the serial and appends to the version log
inside one ``BEGIN IMMEDIATE`` transaction that first checks the serial (compare-and-
swap). The lock is a row holding its holder's details; a lock whose holder was a local
process that has died (kill -9, a cancelled CI job) is detected and broken.

Opening never repairs or creates anything it was not asked to (see ``Access`` in
``reconciler.state.backend``): a damaged file is described (``reconciler.state.damage``)
and left as it is until ``restore`` rebuilds it from the kept versions. Without a state
file, ``existing`` and ``read`` access show an empty state kept in memory.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from reconciler import faults
from reconciler.state import damage, journal_chain, locking, sqlite_open
from reconciler.state import versions as kept
from reconciler.state.backend import (
    Access,
    StateBackend,
    StateConflict,
    StateDamaged,
    StateError,
)
from reconciler.state.model import (
    Dump,
    JournalEntry,
    LockInfo,
    ResourceState,
    State,
    Version,
    VersionRecord,
    now,
)
from reconciler.state.sqlite_open import as_serial, create_tables, newest

RESTORE = kept.RESTORE


class SqliteBackend(StateBackend):
    def __init__(self, path: Path, access: Access = "create") -> None:
        self.path = path
        self.access = access
        self._cache: State | None = None
        self._damage: str | None = None  # what read() reports; restore() repairs it
        try:
            with self._translate():
                self._db, self.exists = sqlite_open.open_db(path, access)
                if self.exists:
                    self._damage = sqlite_open.prepare(self._db, path, access)
                    if access != "read" and self._damage is None:
                        journal_chain.migrate(self._db)  # older journals: rows kept, unchained
        except BaseException as exc:
            if hasattr(self, "_db"):
                self._db.close()
            if isinstance(exc, OSError):
                raise damage.os_error(path, exc) from None
            raise

    @classmethod
    def empty(cls, where: str) -> SqliteBackend:
        """The empty state (kept in memory, nothing created) that ``existing`` and ``read``
        access show where another backend holds no state yet."""
        backend = cls.__new__(cls)
        backend.path, backend.access, backend._cache, backend._damage = (
            Path(where),
            "read",
            None,
            None,
        )
        backend._db, backend.exists = sqlite_open.empty_in_memory(), False
        return backend

    def describe(self) -> str:
        return str(self.path)

    def _newest(self) -> int | None:
        return newest(self._db) if hasattr(self, "_db") else None

    @contextmanager
    def _translate(self) -> Iterator[None]:
        """SQLite's errors as what they mean for the user (read-only, damaged, full...)."""
        try:
            yield
        except sqlite3.Error as exc:
            raise damage.explain(self.path, exc, self._newest()) from None

    @contextmanager
    def _tx(self) -> Iterator[None]:
        with self._translate():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """A read transaction: every query inside it sees the same version."""
        with self._translate():
            self._db.execute("BEGIN")
            try:
                yield
            finally:
                if self._db.in_transaction:
                    self._db.execute("COMMIT")

    def _intact(self) -> None:
        if self._damage is not None:
            raise StateDamaged(self._damage)

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _lineage(self) -> str:
        lineage = self._meta("lineage")
        if lineage is None:
            raise StateDamaged(damage.lost_lineage(self.path, self._newest()))
        return lineage

    def _serial(self) -> int:
        value = self._meta("serial")
        serial = as_serial(value)
        if serial is None:
            raise StateDamaged(damage.bad_serial(self.path, value, self._newest()))
        return serial

    def read(self) -> State:
        """The current state; parsed once per serial (the serial moves with every write)."""
        self._intact()
        with self._reading():
            lineage, serial = self._lineage(), self._serial()
            cached = self._cache
            if cached is None or (cached.lineage, cached.serial) != (lineage, serial):
                rows = self._db.execute(
                    "SELECT address, data FROM resources ORDER BY address"
                ).fetchall()
                cached = self._cache = State(lineage, serial, self._parse(rows))
        return State(lineage, serial, dict(cached.resources))

    def _parse(self, rows: list[tuple[str, str]]) -> dict[str, ResourceState]:
        """Resource rows as records: one decode of one array costs less than one per row;
        a row that is not one resource record's JSON is reported, with how to recover."""
        try:
            records = json.loads("[" + ",".join(d for (_, d) in rows) + "]")
            parsed = {r.address: r for r in map(ResourceState.from_dict, records)}
            if len(records) == len(rows) and all(a in parsed for a, _ in rows):
                return parsed
        except (ValueError, TypeError, AttributeError, KeyError):
            pass
        raise damage.bad_rows(self.path, rows, self._newest())

    def _check_serial(self, expected_serial: int) -> int:
        self._intact()
        serial = self._serial()
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
            journal_chain.append(
                self._db, json.dumps(replace(journal, serial_after=serial + 1).to_dict())
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
        def attempt(notes: list[str]) -> LockInfo | None:
            with self._tx():
                self._db.execute(sqlite_open.TABLES["lock"])  # a dropped one must not lock us out
                holder = self.lock_holder()
                if holder is not None and holder.holder_is_dead():
                    self._db.execute("DELETE FROM lock")
                    notes.append(locking.broke_stale(holder))
                    holder = None
                if holder is None:
                    self._db.execute(
                        "INSERT INTO lock VALUES (1, ?, ?)", (info.id, json.dumps(info.__dict__))
                    )
                return holder

        return locking.take(attempt, timeout)

    def release_lock(self, lock_id: str) -> None:
        with self._tx():
            self._db.execute("DELETE FROM lock WHERE id=?", (lock_id,))

    def force_unlock(self, lock_id: str) -> bool:
        """Works on a damaged lock row too: it is found by its id column alone."""
        with self._tx():
            return self._db.execute("DELETE FROM lock WHERE id=?", (lock_id,)).rowcount > 0

    def lock_holder(self) -> LockInfo | None:
        """Who holds the lock; LockDamaged (with the row's id) when its record is unreadable."""
        with self._translate():
            row = self._db.execute("SELECT id, data FROM lock").fetchone()
        return None if row is None else locking.read_holder(row[1], str(row[0]), str(self.path))

    def append_journal(self, entry: JournalEntry) -> None:
        with self._tx():
            journal_chain.append(self._db, json.dumps(entry.to_dict()))

    def journal(self, limit: int = 50) -> list[JournalEntry]:
        rows = self._db.execute(
            "SELECT data FROM journal ORDER BY id DESC LIMIT ?", (limit,)
        ).fetchall()
        return [JournalEntry(**json.loads(d)) for (d,) in reversed(rows)]

    def verify_journal(self) -> journal_chain.ChainReport:
        """Walk the journal's hash chain (``reconciler.state.journal_chain``)."""
        with self._reading():
            columns = {str(r[1]) for r in self._db.execute("PRAGMA table_info(journal)")}
            if "hash" in columns:
                query = "SELECT id, data, prev_hash, hash FROM journal ORDER BY id"
            else:  # a journal older than the chain, opened read-only: all unchained
                query = "SELECT id, data, NULL, NULL FROM journal ORDER BY id"
            rows = [(int(i), str(d), p, h) for i, d, p, h in self._db.execute(query)]
            return journal_chain.verify(rows, self._meta(journal_chain.HEAD_KEY))

    def versions(self, limit: int = 50) -> list[Version]:
        with self._translate():
            rows = self._db.execute(
                "SELECT serial, at, address, operation, CASE WHEN operation = ? AND "
                "json_valid(data) THEN json_extract(data, '$.restored_from') END "
                "FROM versions ORDER BY serial DESC LIMIT ?",
                (RESTORE, limit),
            ).fetchall()
        return [Version(*row) for row in reversed(rows)]

    def state_at(self, serial: int) -> State:
        with self._reading():
            return State(self._lineage(), serial, self._replay(serial))

    def _replay(self, serial: int) -> dict[str, ResourceState]:
        """The resources as at serial: from the newest restore at or before it (a whole
        state), then each write after it."""
        start = self._db.execute(
            "SELECT COALESCE(MAX(serial), 0) FROM versions WHERE operation = ? AND serial <= ?",
            (RESTORE, serial),
        ).fetchone()[0]
        rows = self._db.execute(
            "SELECT serial, address, operation, data FROM versions "
            "WHERE serial >= ? AND serial <= ? ORDER BY serial",
            (start, serial),
        ).fetchall()
        return kept.replay(rows, str(self.path))

    def restore(
        self, serial: int, journal: JournalEntry, lineage: str | None = None
    ) -> tuple[int, dict[str, str]]:
        with self._tx():
            create_tables(self._db)  # a dropped table comes back, to be filled below
            journal_chain.migrate(self._db)
            target = self._target(serial)
            lineage = self._restored_lineage(lineage)
            before = dict(self._db.execute("SELECT address, data FROM resources").fetchall())
            current = as_serial(self._meta("serial"))
            new = max(current or 0, self._newest() or 0) + 1
            after = {a: kept.record(r) for a, r in target.items()}
            changes = kept.changes(before, after)
            self._db.execute("DELETE FROM resources")
            self._db.executemany("INSERT INTO resources VALUES (?, ?)", sorted(after.items()))
            self._db.execute(
                "INSERT INTO versions VALUES (?, ?, '*', ?, ?)",
                (new, now(), RESTORE, kept.restore_snapshot(serial, target)),
            )
            results = kept.restore_results(changes)
            entry = replace(
                journal,
                serial_before=current if current is not None else new - 1,
                serial_after=new,
                finished_at=now(),
                results=results,
            )
            journal_chain.append(self._db, json.dumps(entry.to_dict()))
            self._db.execute(
                "INSERT OR REPLACE INTO meta VALUES ('lineage', ?), ('serial', ?)",
                (lineage, str(new)),
            )
        self._damage, self._cache = None, None
        return new, changes

    def _target(self, serial: int) -> dict[str, ResourceState]:
        """What a restore of serial writes: replayed from the kept versions; where none is
        kept at all (a dropped versions table), the current serial is its resource rows."""
        if self._db.execute("SELECT 1 FROM versions WHERE serial=?", (serial,)).fetchone():
            return self._replay(serial)
        kept = self._db.execute("SELECT count(*) FROM versions").fetchone()[0]
        if kept == 0 and serial > 0 and serial == as_serial(self._meta("serial")):
            rows = self._db.execute("SELECT address, data FROM resources ORDER BY address")
            return self._parse(rows.fetchall())
        raise self._unknown_serial(serial)

    def _restored_lineage(self, given: str | None) -> str:
        current = self._meta("lineage")
        if current is None:
            if not given:
                raise StateDamaged(damage.lost_lineage(self.path, self._newest()))
            return given
        if given and given != current:
            raise StateError(
                f"the state {self.path} has the lineage {current}; --lineage only gives back "
                "the lineage of a state that lost it"
            )
        return current

    def _unknown_serial(self, serial: int) -> StateError:
        kept = self._db.execute("SELECT count(*) FROM versions").fetchone()[0]
        shown = [v.describe() for v in self.versions(20)]
        return damage.unknown_serial(serial, shown, int(kept))

    def dump(self) -> Dump:
        self._intact()
        with self._reading():
            lineage, serial = self._lineage(), self._serial()
            resources = self._parse(
                self._db.execute("SELECT address, data FROM resources ORDER BY address").fetchall()
            )
            rows = self._db.execute(
                "SELECT serial, at, address, operation, data FROM versions ORDER BY serial"
            ).fetchall()
            journal = self._db.execute("SELECT data FROM journal ORDER BY id").fetchall()
        return Dump(
            lineage,
            serial,
            resources,
            [VersionRecord(*row) for row in rows],
            [JournalEntry(**json.loads(d)) for (d,) in journal],
        )

    def load(self, dump: Dump) -> None:
        with self._tx():
            for table in ("resources", "versions", "journal"):
                self._db.execute(f"DELETE FROM {table}")
            self._db.executemany(
                "INSERT INTO resources VALUES (?, ?)",
                [
                    (a, json.dumps(r.to_dict(), sort_keys=True))
                    for a, r in sorted(dump.resources.items())
                ],
            )
            self._db.executemany(
                "INSERT INTO versions VALUES (?, ?, ?, ?, ?)",
                [(v.serial, v.at, v.address, v.operation, v.data) for v in dump.versions],
            )
            self._db.executemany(
                "INSERT INTO journal (data) VALUES (?)",
                [(json.dumps(e.to_dict()),) for e in dump.journal],
            )
            self._db.execute(
                "INSERT OR REPLACE INTO meta VALUES ('lineage', ?), ('serial', ?)",
                (dump.lineage, str(dump.serial)),
            )
        self._damage, self._cache = None, None

    def close(self) -> None:
        self._db.close()
