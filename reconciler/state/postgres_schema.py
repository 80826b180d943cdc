"""The PostgreSQL backend's connection, tables and errors.

``connect`` reads the DSN from the environment variable the Workspace names and connects;
``prepare`` creates the schema and its tables (create access) and migrates them to
``SCHEMA_VERSION``, one migration at a time, under a transaction-scoped advisory lock so
that two commands making the same new state take turns. Errors are phrased for the user
and never show the DSN (its password): the server is named by host, port, database, user.
"""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING, Any

from reconciler.state import damage
from reconciler.state.backend import Access, StateDamaged, StateError
from reconciler.state.model import State, now

if TYPE_CHECKING:
    import psycopg

    from reconciler.state.postgres import PostgresBackend

SCHEMA_VERSION = 1
#: what each schema version adds, in order
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "CREATE TABLE IF NOT EXISTS meta (key text PRIMARY KEY, value text NOT NULL)",
        "CREATE TABLE IF NOT EXISTS resources (address text PRIMARY KEY, data text NOT NULL)",
        "CREATE TABLE IF NOT EXISTS versions (serial bigint PRIMARY KEY, at text NOT NULL, "
        "address text NOT NULL, operation text NOT NULL, data text)",
        "CREATE TABLE IF NOT EXISTS journal (id bigserial PRIMARY KEY, data text NOT NULL)",
        "CREATE TABLE IF NOT EXISTS lock (singleton integer PRIMARY KEY "
        "CHECK (singleton = 1), id text NOT NULL, data text NOT NULL)",
    ),
}


def connect(dsn_env: str, schema_name: str, access: Access) -> tuple[psycopg.Connection[Any], str]:
    """A connection whose search_path is the state's schema, and the state's name for
    messages; a read access gets a read-only session."""
    import psycopg
    from psycopg import sql

    dsn = os.environ.get(dsn_env, "").strip()
    if not dsn:
        raise StateError(
            f"the postgres state backend reads its connection string from ${dsn_env} "
            f"(spec.state.dsn.env), which is not set.\n  Export it, for example "
            f"{dsn_env}=postgresql://USER:PASSWORD@HOST:5432/DATABASE"
        )
    try:
        parts = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        raise StateError(
            f"${dsn_env} does not hold a PostgreSQL connection string (its value is not "
            "shown: it may hold a password); write it as postgresql://USER:PASSWORD@HOST:PORT/DB"
        ) from None
    where = (
        f"postgres://{parts.get('user') or '(default user)'}@{parts.get('host') or 'localhost'}"
        f":{parts.get('port') or 5432}/{parts.get('dbname') or '(default database)'} "
        f"schema {schema_name}"
    )
    try:
        conn = psycopg.connect(
            dsn, autocommit=True, connect_timeout=10, application_name="pipeform"
        )
    except psycopg.Error as exc:
        raise StateError(
            f"cannot connect to the PostgreSQL state database {where} (connection string from "
            f"${dsn_env}): {_first_line(exc, parts)}"
        ) from None
    try:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema_name)))
        if access == "read":
            conn.execute("SET default_transaction_read_only = on")
    except psycopg.Error as exc:
        conn.close()
        raise explain(exc, where) from None
    return conn, where


def _first_line(exc: BaseException, parts: dict[str, Any]) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    password = parts.get("password")
    return text.replace(str(password), "***") if password else text


def prepare(conn: psycopg.Connection[Any], name: str, where: str, access: Access) -> bool:
    """Whether a state exists in the schema, after creating it (create access) or
    migrating its tables to this pipeform's schema version."""
    import psycopg
    from psycopg import sql

    try:
        found = _version(conn, name, where)
        if found is None and access != "create":
            return False
        if found == SCHEMA_VERSION:
            return True
        if access == "read":  # an older schema is read as it is; nothing is migrated
            return True
        with conn.transaction():
            key = _key(f"pipeform-schema:{name}")
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
            if conn.execute("SELECT to_regnamespace(%s)", (name,)).fetchone() == (None,):
                conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
            current = _version(conn, name, where) or 0
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[version]:
                    conn.execute(statement)
            conn.execute(
                "INSERT INTO meta VALUES ('lineage', %s), ('serial', '0'), ('created_at', %s) "
                "ON CONFLICT (key) DO NOTHING",
                (State.new_lineage(), now()),
            )
            conn.execute(
                "INSERT INTO meta VALUES ('schema_version', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(SCHEMA_VERSION),),
            )
    except psycopg.Error as exc:
        raise explain(exc, where) from None
    return True


def _version(conn: psycopg.Connection[Any], name: str, where: str) -> int | None:
    """The schema version of the state in the schema; None when it holds no state."""
    row = conn.execute("SELECT to_regclass(%s)", (f"{name}.meta",)).fetchone()
    if row is None or row[0] is None:
        return None
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    if "lineage" not in meta:
        return None if not meta else 0
    version = int(meta.get("schema_version", "1"))
    if version > SCHEMA_VERSION:
        raise StateError(
            f"the state {where} has schema version {version}, made by a newer pipeform "
            f"(this one knows up to {SCHEMA_VERSION}); upgrade pipeform"
        )
    return version


def lineage_serial(db: psycopg.Connection[Any], where: str) -> tuple[str, int]:
    meta = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('lineage', 'serial')"))
    if "lineage" not in meta or not str(meta.get("serial", "")).isdigit():
        raise StateDamaged(
            f"the state {where} is damaged: its meta table has lost the lineage or serial"
        )
    return str(meta["lineage"]), int(meta["serial"])


def lock_key(schema_name: str, lock_id: str) -> int:
    """The session advisory lock a lock's holder keeps while it holds the lock."""
    return _key(f"pipeform-lock:{schema_name}:{lock_id}")


def _key(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


def unknown_serial(backend: PostgresBackend, serial: int) -> StateError:
    shown = [v.describe() for v in backend.versions(20)]
    count = backend._one("SELECT count(*) FROM versions")
    return damage.unknown_serial(serial, shown, int(count))


def explain(exc: BaseException, where: str) -> StateError:
    """A psycopg error as what it means for the user."""
    import psycopg
    from psycopg import errors

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, errors.InsufficientPrivilege):
        return StateError(
            f"the PostgreSQL state {where} cannot be created or written: {text}.\n"
            "  Grant the user CREATE on the database (pipeform creates its schema and "
            "tables on the first apply), or have the database owner create the schema "
            "and grant the user all privileges on it and its tables."
        )
    if isinstance(exc, errors.ReadOnlySqlTransaction):
        return StateError(f"the PostgreSQL state {where} is read-only for this command: {text}")
    if isinstance(exc, errors.UndefinedTable):
        return StateDamaged(
            f"the state {where} is damaged: {text}.\n  " + damage.restore_hint(None)
        )
    if isinstance(exc, psycopg.OperationalError):
        return StateError(f"lost the connection to the PostgreSQL state {where}: {text}")
    return StateError(f"the PostgreSQL state {where} cannot be used: {text}")
