"""PostgreSQL state backend: state, versions and journal in tables of one schema.

Many pipelines share a database, one schema each (``spec.state.schema_name``). pipeform
creates the schema and its tables on the first writing command and migrates them when a
newer pipeform needs more (``meta.schema_version``; ``postgres_schema.py``). Every write
is one transaction that first locks the serial row (``SELECT ... FOR UPDATE``) and checks
it: compare-and-swap on serial. The lock is a row (its holder's details) plus a session
advisory lock keyed by the lock's id, held by the holder's connection: when the holder
dies (kill -9, a cancelled CI job), its session ends, PostgreSQL releases the advisory
lock, and the next command breaks the row as stale.

The DSN comes from the environment variable the Workspace names, never from the spec;
messages name the server by host, port, database and user only. psycopg is imported here
alone, so ``pipeform --help`` never loads it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from reconciler import faults
from reconciler.state import locking
from reconciler.state import postgres_schema as schema
from reconciler.state import versions as kept
from reconciler.state.backend import Access, StateBackend, StateConflict
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

if TYPE_CHECKING:
    import psycopg

Write = tuple[str, ResourceState | None, JournalEntry | None]


class PostgresBackend(StateBackend):
    def __init__(self, conn: psycopg.Connection[Any], where: str, schema_name: str) -> None:
        self._conn, self.where, self.schema_name = conn, where, schema_name
        self._cache: State | None = None
        self._held: set[str] = set()  # lock ids this session holds

    def describe(self) -> str:
        return self.where

    # -- transactions -------------------------------------------------------------------
    @contextmanager
    def _translate(self) -> Iterator[None]:
        import psycopg

        try:
            yield
        except psycopg.Error as exc:
            raise schema.explain(exc, self.where) from None

    @contextmanager
    def _tx(self) -> Iterator[psycopg.Connection[Any]]:
        with self._translate(), self._conn.transaction():
            yield self._conn

    @contextmanager
    def _reading(self) -> Iterator[psycopg.Connection[Any]]:
        """One snapshot for every query inside (REPEATABLE READ, read only)."""
        with self._translate():
            self._conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                yield self._conn
            finally:
                self._conn.execute("COMMIT")

    def _one(self, sql: str, *params: Any) -> Any:
        row = self._conn.execute(sql, params).fetchone()
        return None if row is None else row[0]

    # -- state ----------------------------------------------------------------------------
    def read(self) -> State:
        with self._reading() as db:
            lineage, serial = schema.lineage_serial(db, self.where)
            cached = self._cache
            if cached is None or (cached.lineage, cached.serial) != (lineage, serial):
                rows = db.execute("SELECT data FROM resources ORDER BY address").fetchall()
                records = json.loads("[" + ",".join(d for (d,) in rows) + "]")
                resources = {r.address: r for r in map(ResourceState.from_dict, records)}
                cached = self._cache = State(lineage, serial, resources)
        return State(lineage, serial, dict(cached.resources))

    def _check_serial(self, db: psycopg.Connection[Any], expected: int) -> int:
        value = self._one("SELECT value FROM meta WHERE key = 'serial' FOR UPDATE")
        serial = int(value)
        if serial != expected:
            raise StateConflict(
                f"the state changed while this command ran (serial {expected} -> "
                f"{serial}): another writer bypassed the lock. Re-run the command."
            )
        return serial

    def put(
        self, expected_serial: int, resource: ResourceState, journal: JournalEntry | None = None
    ) -> int:
        return self.write_many(expected_serial, [(resource.address, resource, journal)])

    def remove(
        self, expected_serial: int, address: str, journal: JournalEntry | None = None
    ) -> int:
        return self.write_many(expected_serial, [(address, None, journal)])

    def put_many(self, expected_serial: int, resources: list[ResourceState]) -> int:
        return self.write_many(expected_serial, [(r.address, r, None) for r in resources])

    def write_many(self, expected_serial: int, writes: list[Write]) -> int:
        """Every write in one transaction, each one version; the serial moves once per write."""
        with self._tx() as db:
            serial = self._check_serial(db, expected_serial)
            versions: list[tuple[Any, ...]] = []
            journal: list[tuple[str]] = []
            for address, resource, entry in writes:
                serial += 1
                data = None if resource is None else kept.record(resource)
                versions.append((serial, now(), address, "remove" if data is None else "put", data))
                if entry is not None:
                    journal.append((json.dumps(replace(entry, serial_after=serial).to_dict()),))
            with db.cursor() as cur:
                _apply_rows(cur, writes, versions, journal)
            for address, _, _ in writes:  # inside the transaction, before COMMIT
                faults.point("mid-state-write", address)
            db.execute("UPDATE meta SET value = %s WHERE key = 'serial'", (str(serial),))
        return serial

    # -- lock -----------------------------------------------------------------------------
    def _alive(self, lock_id: str) -> bool:
        """Whether the session that took lock_id still runs (it holds the advisory lock)."""
        if lock_id in self._held:
            return True
        key = schema.lock_key(self.schema_name, lock_id)
        if self._one("SELECT pg_try_advisory_lock(%s)", key):
            self._one("SELECT pg_advisory_unlock(%s)", key)
            return False
        return True

    def acquire_lock(self, info: LockInfo, timeout: float = 0.0) -> list[str]:
        def attempt(notes: list[str]) -> LockInfo | None:
            with self._tx() as db:
                row = db.execute("SELECT id, data FROM lock FOR UPDATE").fetchone()
                holder = None if row is None else self._holder(row)
                if holder is not None and not self._alive(holder.id):
                    db.execute("DELETE FROM lock")
                    notes.append(locking.broke_stale(holder, "its database session is gone"))
                    holder = None
                if holder is None:
                    db.execute(
                        "INSERT INTO lock VALUES (1, %s, %s)",
                        (info.id, json.dumps(info.__dict__)),
                    )
                    self._one(
                        "SELECT pg_advisory_lock(%s)", schema.lock_key(self.schema_name, info.id)
                    )
                    self._held.add(info.id)
                return holder

        return locking.take(attempt, timeout)

    def release_lock(self, lock_id: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM lock WHERE id = %s", (lock_id,))
        if lock_id in self._held:
            self._held.discard(lock_id)
            with self._translate():
                self._one(
                    "SELECT pg_advisory_unlock(%s)", schema.lock_key(self.schema_name, lock_id)
                )

    def force_unlock(self, lock_id: str) -> bool:
        with self._tx() as db:
            return db.execute("DELETE FROM lock WHERE id = %s", (lock_id,)).rowcount > 0

    def lock_holder(self) -> LockInfo | None:
        with self._translate():
            row = self._conn.execute("SELECT id, data FROM lock").fetchone()
        return None if row is None else self._holder(row)

    def _holder(self, row: tuple[str, str]) -> LockInfo:
        return locking.read_holder(row[1], str(row[0]), self.where)

    # -- journal and versions -----------------------------------------------------------
    def append_journal(self, entry: JournalEntry) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO journal (data) VALUES (%s)", (json.dumps(entry.to_dict()),))

    def journal(self, limit: int = 50) -> list[JournalEntry]:
        with self._translate():
            rows = self._conn.execute(
                "SELECT data FROM journal ORDER BY id DESC LIMIT %s", (limit,)
            ).fetchall()
        return [JournalEntry(**json.loads(d)) for (d,) in reversed(rows)]

    def versions(self, limit: int = 50) -> list[Version]:
        with self._translate():
            rows = self._conn.execute(
                "SELECT serial, at, address, operation, CASE WHEN operation = %s "
                "THEN (data::jsonb ->> 'restored_from')::bigint END "
                "FROM versions ORDER BY serial DESC LIMIT %s",
                (kept.RESTORE, limit),
            ).fetchall()
        return [Version(*row) for row in reversed(rows)]

    def state_at(self, serial: int) -> State:
        with self._reading() as db:
            lineage, _ = schema.lineage_serial(db, self.where)
            return State(lineage, serial, self._replay(serial))

    def _replay(self, serial: int) -> dict[str, ResourceState]:
        start = self._one(
            "SELECT COALESCE(MAX(serial), 0) FROM versions WHERE operation = %s AND serial <= %s",
            kept.RESTORE,
            serial,
        )
        rows = self._conn.execute(
            "SELECT serial, address, operation, data FROM versions "
            "WHERE serial >= %s AND serial <= %s ORDER BY serial",
            (start, serial),
        ).fetchall()
        return kept.replay(rows, self.where)

    def restore(
        self, serial: int, journal: JournalEntry, lineage: str | None = None
    ) -> tuple[int, dict[str, str]]:
        with self._tx() as db:
            if self._one("SELECT 1 FROM versions WHERE serial = %s", serial) is None:
                raise schema.unknown_serial(self, serial)
            target = self._replay(serial)
            current = int(self._one("SELECT value FROM meta WHERE key = 'serial' FOR UPDATE"))
            before = dict(db.execute("SELECT address, data FROM resources").fetchall())
            after = {a: kept.record(r) for a, r in target.items()}
            changes = kept.changes(before, after)
            new = max(current, int(self._one("SELECT COALESCE(MAX(serial), 0) FROM versions")))
            new += 1
            db.execute("DELETE FROM resources")
            with db.cursor() as cur:
                cur.executemany("INSERT INTO resources VALUES (%s, %s)", sorted(after.items()))
            db.execute(
                "INSERT INTO versions VALUES (%s, %s, '*', %s, %s)",
                (new, now(), kept.RESTORE, kept.restore_snapshot(serial, target)),
            )
            entry = replace(
                journal,
                serial_before=current,
                serial_after=new,
                finished_at=now(),
                results=kept.restore_results(changes),
            )
            db.execute("INSERT INTO journal (data) VALUES (%s)", (json.dumps(entry.to_dict()),))
            db.execute("UPDATE meta SET value = %s WHERE key = 'serial'", (str(new),))
        self._cache = None
        return new, changes

    # -- migrate --------------------------------------------------------------------------
    def dump(self) -> Dump:
        with self._reading() as db:
            lineage, serial = schema.lineage_serial(db, self.where)
            resources = db.execute("SELECT data FROM resources ORDER BY address").fetchall()
            rows = db.execute(
                "SELECT serial, at, address, operation, data FROM versions ORDER BY serial"
            ).fetchall()
            journal = db.execute("SELECT data FROM journal ORDER BY id").fetchall()
        records = [ResourceState.from_dict(json.loads(d)) for (d,) in resources]
        return Dump(
            lineage,
            serial,
            {r.address: r for r in records},
            [VersionRecord(*row) for row in rows],
            [JournalEntry(**json.loads(d)) for (d,) in journal],
        )

    def load(self, dump: Dump) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM resources; DELETE FROM versions; DELETE FROM journal")
            with db.cursor() as cur:
                cur.executemany(
                    "INSERT INTO resources VALUES (%s, %s)",
                    [(a, kept.record(r)) for a, r in sorted(dump.resources.items())],
                )
                cur.executemany(
                    "INSERT INTO versions VALUES (%s, %s, %s, %s, %s)",
                    [(v.serial, v.at, v.address, v.operation, v.data) for v in dump.versions],
                )
                cur.executemany(
                    "INSERT INTO journal (data) VALUES (%s)",
                    [(json.dumps(e.to_dict()),) for e in dump.journal],
                )
            db.execute(
                "UPDATE meta SET value = CASE key WHEN 'lineage' THEN %s ELSE %s END "
                "WHERE key IN ('lineage', 'serial')",
                (dump.lineage, str(dump.serial)),
            )
        self._cache = None

    def close(self) -> None:
        self._conn.close()


def _apply_rows(
    cur: psycopg.Cursor[Any],
    writes: list[Write],
    versions: list[tuple[Any, ...]],
    journal: list[tuple[str]],
) -> None:
    """The rows of a batch of writes: the resources as they end, each version, the journal."""
    final: dict[str, str | None] = {}
    for (address, resource, _), version in zip(writes, versions, strict=True):
        final[address] = None if resource is None else version[4]
    gone = [(a,) for a, d in final.items() if d is None]
    rows = [(a, d) for a, d in final.items() if d is not None]
    if gone:
        cur.executemany("DELETE FROM resources WHERE address = %s", gone)
    if rows:
        cur.executemany(
            "INSERT INTO resources VALUES (%s, %s) "
            "ON CONFLICT (address) DO UPDATE SET data = excluded.data",
            rows,
        )
    cur.executemany("INSERT INTO versions VALUES (%s, %s, %s, %s, %s)", versions)
    if journal:
        cur.executemany("INSERT INTO journal (data) VALUES (%s)", journal)


def open_postgres(config: dict[str, Any], access: Access) -> StateBackend:
    """The backend a ``postgres`` state block configures, for access; where the schema
    holds no state yet, ``existing`` and ``read`` get an empty state and create nothing."""
    dsn_env = str(config["dsn"]["env"])
    name = str(config.get("schema_name", "pipeform"))
    conn, where = schema.connect(dsn_env, name, access)
    try:
        if not schema.prepare(conn, name, where, access):
            conn.close()
            from reconciler.state.sqlite import SqliteBackend

            return SqliteBackend.empty(where)
    except BaseException:
        conn.close()
        raise
    return PostgresBackend(conn, where, name)
