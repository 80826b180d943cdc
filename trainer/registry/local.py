"""The local model registry: SQLite records plus content-addressed package files.

Layout under the registry root (the workspace's data directory by default)::

    registry.db                                  models, versions, tags, aliases (WAL)
    artifacts/sha256/<hex[:2]>/<hex>/...         one immutable copy per package digest
    artifacts/tmp/<random>/                      copies in progress (never referenced)

A package is copied into a temporary directory, every file is fsynced, the copy's digest
is checked, and only then is the directory renamed to its content address, so a reader
never sees half an artifact. The version row is written afterwards in one ``BEGIN
IMMEDIATE`` transaction, so a crash in between leaves at worst an orphaned artifact,
never a version that points at nothing. Registration is idempotent by (model, run id),
and the version number is taken inside that transaction, so two processes registering
at once never share a number.

The errors (``RegistryError``, ``RegistryLookupError``), ``package_digest`` and the name
checks live in ``trainer.registry.common`` (shared with the MLflow registry) and are
re-exported here.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path

from trainer.fsio import CHUNK, fsync_path
from trainer.registry import ModelVersion, Registration, Registry
from trainer.registry.common import (
    RegistryError,
    RegistryLookupError,
    check_alias,
    check_model_name,
    check_run_id,
    package_digest,
    package_files,
)
from trainer.sqlitesetup import setup

__all__ = [  # the shared names stay importable from here
    "LocalRegistry",
    "RegistryError",
    "RegistryLookupError",
    "check_alias",
    "check_model_name",
    "check_run_id",
    "package_digest",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    name TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS versions (
    model TEXT NOT NULL REFERENCES models(name),
    version INTEGER NOT NULL,
    run_id TEXT NOT NULL,
    uri TEXT NOT NULL,
    package_sha256 TEXT NOT NULL,
    created_at TEXT NOT NULL,
    lineage TEXT NOT NULL,
    PRIMARY KEY (model, version),
    UNIQUE (model, run_id)
);
CREATE TABLE IF NOT EXISTS tags (
    model TEXT NOT NULL,
    version INTEGER NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (model, version, key),
    FOREIGN KEY (model, version) REFERENCES versions(model, version)
);
CREATE TABLE IF NOT EXISTS aliases (
    model TEXT NOT NULL REFERENCES models(name),
    alias TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (model, alias),
    FOREIGN KEY (model, version) REFERENCES versions(model, version)
);
"""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _copy_file(source: Path, target: Path) -> None:
    with source.open("rb") as reader, target.open("xb") as writer:
        shutil.copyfileobj(reader, writer, CHUNK)
        writer.flush()
        os.fsync(writer.fileno())
    target.chmod(0o444)  # content-addressed: never edited in place


def _setup(db: sqlite3.Connection) -> None:
    """WAL mode, foreign keys and the schema on a new connection (retried while another
    process holds the file, see ``trainer/sqlitesetup.py``)."""
    setup(db, ("PRAGMA journal_mode = WAL", "PRAGMA foreign_keys = ON"), _SCHEMA)


class LocalRegistry(Registry):
    """The ``Registry`` backed by ``<root>/registry.db`` and ``<root>/artifacts``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()
        self.db_path = self.root / "registry.db"
        self.artifacts = self.root / "artifacts"

    # -- storage -------------------------------------------------------------------------

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.root.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE below)
        with closing(sqlite3.connect(self.db_path, timeout=30.0, isolation_level=None)) as db:
            db.execute("PRAGMA busy_timeout = 30000")
            _setup(db)
            yield db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken before any read so version numbers never race."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def artifact_dir(self, digest: str) -> Path:
        return self.artifacts / "sha256" / digest[:2] / digest

    def _store_artifact(self, package_dir: Path, digest: str) -> Path:
        """Copy the package to its content address (atomically); reuse an existing copy."""
        final = self.artifact_dir(digest)
        if final.is_dir():
            return final
        staging = self.artifacts / "tmp" / uuid.uuid4().hex
        staging.mkdir(parents=True)
        try:
            for relative in package_files(package_dir):
                target = staging / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                _copy_file(package_dir / relative, target)
            for directory in sorted({p for p in staging.rglob("*") if p.is_dir()} | {staging}):
                fsync_path(directory)
            if package_digest(staging) != digest:
                raise RegistryError(
                    f"package {package_dir} changed while it was being registered; "
                    "register it again once it is complete"
                )
            final.parent.mkdir(parents=True, exist_ok=True)
            try:
                staging.rename(final)
            except OSError:
                if not final.is_dir():  # not a concurrent copy of the same package
                    raise
            fsync_path(final.parent)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return final

    # -- reading -------------------------------------------------------------------------

    def _version(self, db: sqlite3.Connection, model: str, version: int) -> ModelVersion:
        row = db.execute(
            "SELECT run_id, uri, package_sha256, created_at, lineage FROM versions "
            "WHERE model = ? AND version = ?",
            (model, version),
        ).fetchone()
        if row is None:
            raise RegistryLookupError(self._missing_version(db, model, version))
        tags = dict(
            db.execute(
                "SELECT key, value FROM tags WHERE model = ? AND version = ? ORDER BY key",
                (model, version),
            ).fetchall()
        )
        aliases = tuple(
            alias
            for (alias,) in db.execute(
                "SELECT alias FROM aliases WHERE model = ? AND version = ? ORDER BY alias",
                (model, version),
            )
        )
        run_id, uri, sha256, created_at, lineage = row
        return ModelVersion(
            model=model,
            version=version,
            run_id=run_id,
            uri=uri,
            package_sha256=sha256,
            created_at=created_at,
            tags=tags,
            aliases=aliases,
            lineage=json.loads(lineage),
        )

    def _require_registry(self, model: str) -> None:
        """Reading a registry that was never written is an error, not a new empty one."""
        if not self.db_path.exists():
            raise RegistryLookupError(
                f"model {model!r} is not registered: {self.db_path} does not exist yet "
                "(nothing has been registered there)"
            )

    def _require_model(self, db: sqlite3.Connection, model: str) -> None:
        if db.execute("SELECT 1 FROM models WHERE name = ?", (model,)).fetchone() is None:
            names = [name for (name,) in db.execute("SELECT name FROM models ORDER BY name")]
            known = ", ".join(names) if names else "none yet"
            raise RegistryLookupError(
                f"model {model!r} is not registered in {self.db_path} (registered models: {known})"
            )

    def _missing_version(self, db: sqlite3.Connection, model: str, version: int) -> str:
        self._require_model(db, model)
        numbers = [
            str(v)
            for (v,) in db.execute(
                "SELECT version FROM versions WHERE model = ? ORDER BY version", (model,)
            )
        ]
        return (
            f"model {model!r} has no version {version} (versions: {', '.join(numbers) or 'none'})"
        )

    def get(self, model: str, version: int | None = None, alias: str | None = None) -> ModelVersion:
        """A version by number, by alias, or the latest when neither is given."""
        if version is not None and alias is not None:
            raise ValueError("give a version or an alias, not both")
        self._require_registry(model)
        with self._connect() as db:
            self._require_model(db, model)
            if alias is not None:
                row = db.execute(
                    "SELECT version FROM aliases WHERE model = ? AND alias = ?", (model, alias)
                ).fetchone()
                if row is None:
                    raise RegistryLookupError(self._missing_alias(db, model, alias))
                version = int(row[0])
            elif version is None:
                row = db.execute(
                    "SELECT MAX(version) FROM versions WHERE model = ?", (model,)
                ).fetchone()
                if row[0] is None:
                    raise RegistryLookupError(f"model {model!r} has no versions yet")
                version = int(row[0])
            return self._version(db, model, version)

    def _missing_alias(self, db: sqlite3.Connection, model: str, alias: str) -> str:
        pairs = [
            f"{name} -> {number}"
            for name, number in db.execute(
                "SELECT alias, version FROM aliases WHERE model = ? ORDER BY alias", (model,)
            )
        ]
        return f"model {model!r} has no alias {alias!r} (aliases: {', '.join(pairs) or 'none'})"

    def versions(self, model: str) -> list[ModelVersion]:
        """Every version of a model, oldest first."""
        self._require_registry(model)
        with self._connect() as db:
            self._require_model(db, model)
            numbers = [
                int(v)
                for (v,) in db.execute(
                    "SELECT version FROM versions WHERE model = ? ORDER BY version", (model,)
                )
            ]
            return [self._version(db, model, number) for number in numbers]

    # -- writing -------------------------------------------------------------------------

    def _register(self, request: Registration) -> ModelVersion:
        model, run_id = request.model, request.run_id
        lineage_json = json.dumps(request.lineage, sort_keys=True, default=str)
        existing = self._by_run(model, run_id)
        if existing is not None:
            return existing
        digest = package_digest(request.package_dir)
        artifact = self._store_artifact(request.package_dir, digest)
        with self._write() as db:
            row = db.execute(
                "SELECT version FROM versions WHERE model = ? AND run_id = ?", (model, run_id)
            ).fetchone()
            if row is not None:  # another process registered this run meanwhile
                number = int(row[0])
            else:
                number = self._insert_version(
                    db, model, run_id, artifact, digest, request.tags, lineage_json
                )
        with self._connect() as db:
            return self._version(db, model, number)

    def _by_run(self, model: str, run_id: str) -> ModelVersion | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT version FROM versions WHERE model = ? AND run_id = ?", (model, run_id)
            ).fetchone()
            return None if row is None else self._version(db, model, int(row[0]))

    def _insert_version(
        self,
        db: sqlite3.Connection,
        model: str,
        run_id: str,
        artifact: Path,
        digest: str,
        tags: dict[str, str],
        lineage_json: str,
    ) -> int:
        now = _now()
        db.execute("INSERT OR IGNORE INTO models (name, created_at) VALUES (?, ?)", (model, now))
        (latest,) = db.execute(
            "SELECT COALESCE(MAX(version), 0) FROM versions WHERE model = ?", (model,)
        ).fetchone()
        number = int(latest) + 1
        db.execute(
            "INSERT INTO versions (model, version, run_id, uri, package_sha256, created_at, lineage) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (model, number, run_id, str(artifact), digest, now, lineage_json),
        )
        db.executemany(
            "INSERT INTO tags (model, version, key, value) VALUES (?, ?, ?, ?)",
            [(model, number, key, str(value)) for key, value in sorted(tags.items())],
        )
        return number

    def set_alias(self, model: str, alias: str, version: int) -> None:
        """Point the alias at a version, moving it from the version it named before."""
        check_alias(alias)
        self._require_registry(model)
        with self._write() as db:
            self._require_model(db, model)
            exists = db.execute(
                "SELECT 1 FROM versions WHERE model = ? AND version = ?", (model, version)
            ).fetchone()
            if exists is None:
                raise RegistryLookupError(self._missing_version(db, model, version))
            db.execute(
                "INSERT INTO aliases (model, alias, version) VALUES (?, ?, ?) "
                "ON CONFLICT (model, alias) DO UPDATE SET version = excluded.version",
                (model, alias, version),
            )
