"""Opening a SQLite state file for an access (``create``, ``existing``, ``read``), making a
new state's tables, and finding what is damaged in an existing one.

Nothing here repairs anything: damage is described (``reconciler.state.damage``) for the
backend to report, and ``SqliteBackend.restore`` rebuilds from the kept versions.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from reconciler.state import damage
from reconciler.state.backend import Access, StateError
from reconciler.state.model import State, now
from trainer.sqlitesetup import setup

TABLES = {
    "meta": "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "resources": "CREATE TABLE IF NOT EXISTS resources "
    "(address TEXT PRIMARY KEY, data TEXT NOT NULL)",
    "versions": "CREATE TABLE IF NOT EXISTS versions (serial INTEGER PRIMARY KEY, "
    "at TEXT NOT NULL, address TEXT NOT NULL, operation TEXT NOT NULL, data TEXT)",
    "journal": "CREATE TABLE IF NOT EXISTS journal "
    "(id INTEGER PRIMARY KEY AUTOINCREMENT, data TEXT NOT NULL, prev_hash TEXT, hash TEXT)",
    "lock": "CREATE TABLE IF NOT EXISTS lock (singleton INTEGER PRIMARY KEY "
    "CHECK (singleton = 1), id TEXT NOT NULL, data TEXT NOT NULL)",
}
#: WAL mode and a full fsync on every commit
PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL")


def connect(target: str | Path, uri: bool = False) -> sqlite3.Connection:
    return sqlite3.connect(
        target, timeout=30, isolation_level=None, check_same_thread=False, uri=uri
    )


def open_db(path: Path, access: Access) -> tuple[sqlite3.Connection, bool]:
    """A connection for access, and whether a state file exists. Without one (or with an
    empty one: SQLite would make it a new database), ``existing`` and ``read`` access get
    an empty state that lives in memory, and nothing is created."""
    if path.parent.exists() and not path.parent.is_dir():
        raise damage.not_a_directory(path)
    if path.is_dir():
        raise damage.os_error(path, IsADirectoryError(21, "Is a directory", str(path)))
    if access != "create" and _absent(path):
        return empty_in_memory(), False
    if access == "create":
        path.parent.mkdir(parents=True, exist_ok=True)
    if access == "read":
        db = _read_only(path)
    else:
        db = connect(path)
        setup(db, PRAGMAS, "")  # retried while another process opens the file
    if access != "create":
        found = tables(db)
        if not found or _blank(db, found):  # a first command stopped before it wrote
            db.close()
            return empty_in_memory(), False
    return db, True


def prepare(db: sqlite3.Connection, path: Path, access: Access) -> str | None:
    """Make a new state's tables and lineage (create access only), or say what is damaged
    in an existing state (None when nothing is)."""
    if access != "create":
        return diagnose(db, path, tables(db))
    db.execute("BEGIN IMMEDIATE")  # two commands making the same new state take turns
    try:
        found = tables(db)
        damaged = diagnose(db, path, found) if found and not _blank(db, found) else None
        if not found or _blank(db, found):
            create_tables(db)
            db.execute(
                "INSERT OR REPLACE INTO meta VALUES ('lineage', ?), ('serial', '0'), "
                "('created_at', ?)",
                (State.new_lineage(), now()),
            )
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return damaged


def diagnose(db: sqlite3.Connection, path: Path, found: set[str]) -> str | None:
    """What is damaged in an existing state, or None; a SQLite file that is not a pipeform
    state at all is refused at once."""
    if "meta" not in found and not {"resources", "versions"} & found:
        raise damage.not_pipeform(path, found)
    latest = newest(db) if "versions" in found else None
    if "meta" not in found:  # lineage and serial went with it
        return damage.lost_lineage(path, latest)
    meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    if not found >= set(TABLES):
        return damage.missing_tables(path, set(TABLES) - found, latest, meta.get("serial"))
    if "lineage" not in meta:
        return damage.lost_lineage(path, latest)
    if as_serial(meta.get("serial")) is None:
        return damage.bad_serial(path, meta.get("serial"), latest)
    return None


def tables(db: sqlite3.Connection) -> set[str]:
    rows = db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
    return {str(name) for (name,) in rows} - {"sqlite_sequence"}


def create_tables(db: sqlite3.Connection) -> None:
    for statement in TABLES.values():  # one by one: executescript would commit
        db.execute(statement)


def newest(db: sqlite3.Connection) -> int | None:
    """The serial of the newest kept version, or None when none is kept (or readable)."""
    try:
        row = db.execute("SELECT MAX(serial) FROM versions").fetchone()
    except sqlite3.Error:
        return None
    return int(row[0]) if row and isinstance(row[0], int) else None


def as_serial(value: object) -> int | None:
    """A serial read back from the meta table, or None when it is not a whole number >= 0."""
    try:
        serial = int(str(value))
    except ValueError:
        return None
    return serial if serial >= 0 else None


def _absent(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except FileNotFoundError:
        return True


def _blank(db: sqlite3.Connection, found: set[str]) -> bool:
    """Tables made but nothing written yet (a first command stopped in between)."""
    if not {"meta", "versions"} <= found:
        return False
    written = db.execute(
        "SELECT (SELECT count(*) FROM meta) + (SELECT count(*) FROM versions)"
    ).fetchone()[0]
    return bool(written == 0)


def empty_in_memory() -> sqlite3.Connection:
    """An empty state (no lineage yet, serial 0) that lives in memory: nothing on disk."""
    db = connect(":memory:")
    create_tables(db)
    db.execute("INSERT INTO meta VALUES ('lineage', ''), ('serial', '0')")
    return db


def _read_only(path: Path) -> sqlite3.Connection:
    """A connection that never writes. In a directory it may not write to (a read-only
    checkout), SQLite cannot make the -shm file a WAL reader needs; a file with no
    pending write-ahead log is then read as immutable."""
    uri = path.absolute().as_uri()
    try:
        db = connect(f"{uri}?mode=ro", uri=True)
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.OperationalError as exc:
        if not getattr(exc, "sqlite_errorname", "").startswith("SQLITE_CANTOPEN"):
            raise
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise StateError(
            f"cannot read the state {path}: its write-ahead log {wal} holds writes not yet "
            f"in the file, and {path.parent} is read-only. Open it once where it is writable "
            "(any pipeform command there folds the log in), or copy the spec tree."
        )
    return connect(f"{uri}?immutable=1", uri=True)
