"""The spec cache: parsed YAML files by content hash, so unchanged files are not parsed again.

Parsing YAML (with a position for every value) and validating it against the models are
most of what loading a large spec tree costs, and importing pydantic to validate is most
of what a small one costs. A file whose parse produced no problem is kept here as its
documents' plain data and packed positions, under the SHA-256 of its bytes, with the
packed ``reconciler.spec.facts.Facts`` of each document that validated (None for one
that did not). The next command that reads the same bytes takes them from here: it
neither parses nor validates them, and validates a document again only when a check
asks for its model, or when it had no facts (so its messages come from the models, as
for a fresh parse). Files with problems are never cached, so every parse diagnostic
comes from a real parse.

One file, ``<tree>/.pipeform/cache/specs.bin``: a magic string, the SHA-256 of the
payload, then the payload (``marshal``: plain data only, nothing is constructed or run
on load). The payload names its format: a digest of the parser's and loader's source,
the models' (every module of ``reconciler.kinds``) and this module's, the Python
version and which PyYAML, pydantic and pydantic-core are installed (found without
importing them), so any change to how files are read or validated makes the cache miss. The cache is ignored, never
trusted, when it is not a regular file owned by this user and writable by no one else
(it is written 0600 in a 0700 directory), when its checksum or structure is wrong, or
when its format differs; it is rewritten when files were parsed or dropped. Any error reading or writing it only costs the parse it would
have saved. It is written only into a tree that already has a ``.pipeform`` directory
(where plan and apply keep state), so validating a checkout leaves nothing behind.
``PIPEFORM_SPEC_CACHE=0`` turns it off.
"""

from __future__ import annotations

import contextlib
import hashlib
import marshal
import os
import stat
import sys
import uuid
from pathlib import Path
from typing import Any

MAGIC = b"pipeform-spec-cache/2\n"
_FACTS_LENGTH = 10  # fields of a packed reconciler.spec.facts.Facts
CACHE_DIR = Path(".pipeform") / "cache"
FILE_NAME = "specs.bin"
DISABLE_ENV = "PIPEFORM_SPEC_CACHE"

#: One cached file: for each document, (its index in the file, its data, packed positions,
#: packed facts or None when it did not validate).
Entry = list[tuple[int, Any, bytes, list[Any] | None]]


def content_key(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _package_key(name: str) -> str | None:
    """Which version of a package is installed, without importing it (a cache hit needs
    none of them): its package file's path, size and time."""
    import importlib.util

    spec = importlib.util.find_spec(name)  # a top-level lookup: runs nothing
    if spec is None or spec.origin is None:
        return None
    try:
        info = os.stat(spec.origin)
    except OSError:
        return None
    key = f"{spec.origin}:{info.st_size}:{info.st_mtime_ns}"
    if name == "yaml":  # which loader parses: its C extension (libyaml) or pure Python
        try:
            package = os.path.dirname(spec.origin)
            libyaml = any(entry.startswith("_yaml.") for entry in os.listdir(package))
        except OSError:
            return None
        key += ":c" if libyaml else ":py"
    return key


def _format() -> str | None:
    """What the cached data depends on: every byte of the reconciler package's source (any
    module of it can change how a document validates or what its facts hold), Python's,
    PyYAML's, pydantic's and pydantic-core's versions; None when one cannot be read."""
    package = Path(__file__).parent.parent  # the reconciler package
    digest = hashlib.sha256()
    try:
        for path in sorted(package.rglob("*.py")):
            digest.update(str(path.relative_to(package)).encode())
            digest.update(path.read_bytes())
    except OSError:
        return None
    pyyaml = _package_key("yaml")
    pydantic = _package_key("pydantic")
    core = _package_key("pydantic_core")
    if pyyaml is None or pydantic is None or core is None:
        return None
    return f"{digest.hexdigest()}|{sys.version}|{pyyaml}|{pydantic}|{core}"


def _read_trusted(path: Path) -> bytes | None:
    """The file's bytes when this user owns it and no one else may write it."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if (
            not stat.S_ISREG(info.st_mode)
            or info.st_uid != os.geteuid()
            or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        ):
            return None
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read()
    except OSError:
        return None
    finally:
        os.close(fd)


def _valid(entries: Any) -> bool:
    """The payload's shape: {content key: [(index, data, packed positions, facts), ...]}."""
    return isinstance(entries, dict) and all(
        isinstance(key, str)
        and isinstance(entry, list)
        and all(
            isinstance(doc, tuple)
            and len(doc) == 4
            and isinstance(doc[0], int)
            and isinstance(doc[2], bytes)
            and (doc[3] is None or (isinstance(doc[3], list) and len(doc[3]) == _FACTS_LENGTH))
            for doc in entry
        )
        for key, entry in entries.items()
    )


class SpecCache:
    """Parsed files of one spec tree; ``get`` and ``put`` by content key, then ``save``."""

    def __init__(self, path: Path | None, format_key: str | None) -> None:
        self.path = path  # None: caching is off
        self.format_key = format_key
        self.entries: dict[str, Entry] = {}
        self.used: set[str] = set()
        self.added = 0

    @classmethod
    def open(cls, root: Path) -> SpecCache:
        """The cache of the tree at root; empty (never an error) when it cannot be used."""
        if os.environ.get(DISABLE_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
            return cls(None, None)
        pipeform_dir = root / CACHE_DIR.parts[0]
        if pipeform_dir.is_symlink():  # never read or write through a committed symlink
            return cls(None, None)
        format_key = _format()
        if format_key is None:
            return cls(None, None)
        cache = cls(root / CACHE_DIR / FILE_NAME, format_key)
        cache.entries = cache._load()
        return cache

    def _load(self) -> dict[str, Entry]:
        assert self.path is not None
        blob = _read_trusted(self.path)
        if blob is None or not blob.startswith(MAGIC):
            return {}
        checksum, payload = blob[len(MAGIC) : len(MAGIC) + 32], blob[len(MAGIC) + 32 :]
        if hashlib.sha256(payload).digest() != checksum:
            return {}
        try:
            found = marshal.loads(payload)
        except (EOFError, ValueError, TypeError):
            return {}
        if not (isinstance(found, tuple) and len(found) == 2 and found[0] == self.format_key):
            return {}
        entries = found[1]
        return entries if _valid(entries) else {}

    @property
    def writable(self) -> bool:
        """Whether ``save`` may write: caching is on and the tree has a ``.pipeform``
        directory. Callers skip preparing entries (``put``) that would not be kept."""
        return self.path is not None and self.path.parent.parent.is_dir()

    def get(self, key: str) -> Entry | None:
        entry = self.entries.get(key)
        if entry is not None:
            self.used.add(key)
        return entry

    def put(self, key: str, entry: Entry) -> None:
        if self.path is None:
            return
        self.entries[key] = entry
        self.used.add(key)
        self.added += 1

    def save(self) -> None:
        """Write the entries used this time, when that changes the file; errors are ignored."""
        if self.path is None or (not self.added and set(self.entries) == self.used):
            return
        keep = {key: self.entries[key] for key in self.used}
        if not keep or not self.writable:
            return
        payload = marshal.dumps((self.format_key, keep))
        blob = MAGIC + hashlib.sha256(payload).digest() + payload
        directory = self.path.parent
        tmp = directory / f".{FILE_NAME}.{uuid.uuid4().hex}.tmp"
        with contextlib.suppress(OSError):
            directory.mkdir(mode=0o700, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(blob)
                os.replace(tmp, self.path)
            finally:
                with contextlib.suppress(OSError):
                    tmp.unlink()
