"""Sources of Dataset snapshots: open a URI, fingerprint its bytes, stream typed record batches.

One small protocol (``Source``) with a registry by URI scheme, so that ``s3://`` plugs in
with the aws provider: ``file://`` is implemented here. A source streams in bounded memory
(``pyarrow.csv.open_csv`` and ``pyarrow.json.open_json`` in blocks of ``BLOCK_BYTES``,
``ParquetFile.iter_batches``), converts declared columns to their Arrow types, and turns
every reading problem into one ``SourceError`` naming the file, the line or row, the column
and the value. Text formats are read through ``CheckedStream``, which hashes the bytes as
they pass and refuses bytes that are not UTF-8; a parquet file is hashed by a ``FileHasher``
thread beside the reader. So a snapshot reads its source once: the fingerprint that names
it is the hash of the bytes parsed, and a file changed during the read is caught (by hash
or by size and modification time).
"""

from __future__ import annotations

import codecs
import hashlib
import io
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from providers.base import JSON, PermanentError, RetryableError
from providers.local.settings import LocalSettings
from reconciler.kinds.data import ColumnType, CsvOptions, DataFormat

BLOCK_BYTES = 16 << 20  # CSV/JSONL block: memory per block in flight, and rows per batch
PARQUET_BATCH_ROWS = 128 * 1024
HASH_CHUNK = 8 << 20
MAX_INVALID_ROWS = 10

#: (column name, declared type) for the columns a spec declares
ColumnHint = tuple[str, ColumnType]


class SourceError(PermanentError):
    """The source cannot be read as declared; ``rule`` says which check it is in a report."""

    def __init__(self, message: str, rule: str = "read", column: str | None = None) -> None:
        super().__init__(message)
        self.rule = rule
        self.column = column


class Source(Protocol):
    uri: str
    shown: str  # how messages name it
    format: DataFormat

    def fingerprint(self, cached: JSON | None = None) -> str:
        """'sha256:<hex>' of the bytes; ``cached`` is a ``record()`` to trust if still current."""
        ...

    def known_fingerprint(self, cached: JSON | None = None) -> str | None:
        """``fingerprint(cached)`` when it needs no read of the bytes, else None (a snapshot
        then streams first and names itself by the fingerprint ``batches`` computed)."""
        ...

    def record(self) -> JSON:
        """What ``fingerprint`` may trust next time (size, modification time, fingerprint)."""
        ...

    def batches(self, hints: Sequence[ColumnHint]) -> Iterator[Any]:
        """The rows as pyarrow RecordBatches, declared columns converted to their types; once
        all are read, ``fingerprint()`` is that of the bytes read, without reading them again."""
        ...

    def place(self, row_index: int) -> str:
        """Where the row with this 0-based index is, as a message names it ('line 12')."""
        ...


Opener = Callable[[str, DataFormat, CsvOptions, LocalSettings], Source]
_OPENERS: dict[str, Opener] = {}


def register_scheme(scheme: str, opener: Opener) -> None:
    """Make ``scheme://`` sources readable (the aws provider registers s3)."""
    _OPENERS[scheme] = opener


def open_source(
    uri: str, format: DataFormat, csv_options: CsvOptions, settings: LocalSettings
) -> Source:
    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    opener = _OPENERS.get(scheme)
    if opener is None:
        raise PermanentError(
            f"source {uri!r}: the local provider reads {', '.join(s + '://' for s in sorted(_OPENERS))}"
            " sources only"
        )
    return opener(uri, format, csv_options, settings)


def _open_s3(uri: str, format: DataFormat, options: CsvOptions, settings: LocalSettings) -> Source:
    raise PermanentError(
        f"source {uri!r}: s3:// sources need the aws provider (not available yet); "
        "copy the file into the spec tree and use file:// meanwhile"
    )


# --- file:// --------------------------------------------------------------------------------

_FINGERPRINTS: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> fingerprint
_FINGERPRINTS_LOCK = threading.Lock()


@dataclass
class FileSource:
    uri: str
    path: Path
    shown: str
    format: DataFormat
    csv: CsvOptions

    def _stat(self) -> os.stat_result:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            raise PermanentError(
                f"source file {self.shown} does not exist (spec.source.uri {self.uri!r}); "
                "create it or fix the path (relative to the spec tree)"
            ) from None
        except OSError as exc:
            raise PermanentError(
                f"source file {self.shown} cannot be read: {exc.strerror}"
            ) from None
        if not self.path.is_file():
            raise PermanentError(
                f"source {self.shown} is not a file (spec.source.uri {self.uri!r})"
            )
        return st

    def _key(self, st: os.stat_result) -> tuple[str, int, int]:
        return (str(self.path.resolve()), st.st_size, st.st_mtime_ns)

    def fingerprint(self, cached: JSON | None = None) -> str:
        key = self._key(self._stat())
        known = self._trusted(key, cached)
        if known is not None:
            return known
        digest = hashlib.sha256()
        with self.path.open("rb") as fh:
            while chunk := fh.read(HASH_CHUNK):
                digest.update(chunk)
        return _remember(key, f"sha256:{digest.hexdigest()}")

    def known_fingerprint(self, cached: JSON | None = None) -> str | None:
        return self._trusted(self._key(self._stat()), cached)

    def _trusted(self, key: tuple[str, int, int], cached: JSON | None) -> str | None:
        """The fingerprint of the file as ``key`` describes it, from ``cached`` (a ``record()``
        with the same path, size and modification time) or from this process's memory."""
        same = cached and (cached.get("path"), cached.get("size"), cached.get("mtimeNs")) == (
            self.shown,
            *key[1:],
        )
        if same and cached and isinstance(cached.get("fingerprint"), str):
            return str(cached["fingerprint"])
        return _known(key)

    def record(self) -> JSON:
        st = self._stat()
        return {
            "path": self.shown,
            "size": st.st_size,
            "mtimeNs": st.st_mtime_ns,
            "fingerprint": self.fingerprint(),
        }

    def batches(self, hints: Sequence[ColumnHint]) -> Iterator[Any]:
        st = self._stat()
        key = self._key(st)
        before = _known(key)  # None: the bytes are hashed as they are read
        if st.st_size == 0:
            raise SourceError(f"source file {self.shown} is empty (0 bytes)")
        from providers.local.data import formats

        found: str | None = before
        if self.format == DataFormat.PARQUET:
            hasher = FileHasher(self.path) if before is None else None
            try:
                yield from formats.parquet_batches(self, hints)
                found = hasher.result() if hasher is not None else before
            finally:
                if hasher is not None:
                    hasher.stop()
        else:
            with CheckedStream(self.path, self.shown) as stream:
                if self.format == DataFormat.CSV:
                    yield from formats.csv_batches(self, stream, hints)
                else:
                    yield from formats.jsonl_batches(self, stream, hints)
                found = stream.fingerprint()
        if found is None or found != (before or found) or self._key(self._stat()) != key:
            raise _changed(self.shown)
        _remember(key, found)

    def place(self, row_index: int) -> str:
        """Where a row is, as a message names it: its line in a text file, else its row."""
        if self.format == DataFormat.PARQUET:
            return f"row {row_index + 1:,}"
        return f"line {row_index + 1 + (1 if self.format == DataFormat.CSV and self.csv.header else 0):,}"


def _known(key: tuple[str, int, int]) -> str | None:
    with _FINGERPRINTS_LOCK:
        return _FINGERPRINTS.get(key)


def _remember(key: tuple[str, int, int], fingerprint: str) -> str:
    with _FINGERPRINTS_LOCK:
        _FINGERPRINTS[key] = fingerprint
    return fingerprint


def _changed(shown: str) -> RetryableError:
    return RetryableError(f"source file {shown} changed while it was being read; trying again")


def _open_file(
    uri: str, format: DataFormat, options: CsvOptions, settings: LocalSettings
) -> Source:
    written = uri.removeprefix("file://")
    path = settings.user_path(written, "source file")
    return FileSource(uri, path, settings.shown(path), DataFormat(format), options)


register_scheme("file", _open_file)
register_scheme("s3", _open_s3)


class CheckedStream(io.RawIOBase):
    """A file read once from start to end, hashed and checked for UTF-8 on the way.

    Arrow's readers take it as a file object and call ``read`` from their own thread: the
    hash runs without the GIL and an ASCII block (the usual case) needs no decoding, so the
    check costs the parser little. A byte that is not UTF-8 stops the read with a
    ``SourceError`` naming its line; ``fingerprint`` is the hash of what was read.
    """

    def __init__(self, path: Path, shown: str) -> None:
        super().__init__()
        self._file = path.open("rb", buffering=0)
        self._shown = shown
        self._digest = hashlib.sha256()
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._pending = False  # the decoder holds the start of a multi-byte character
        self._lines = 0
        self.error: SourceError | None = None

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        data = self._file.readall() if size is None or size < 0 else _read_full(self._file, size)
        self._digest.update(data)
        self._check(data, final=not data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        memoryview(buffer)[: len(data)] = data
        return len(data)

    def _check(self, data: bytes, final: bool) -> None:
        if self._pending or final or not data.isascii():
            self._decode(data, final)
        self._lines += data.count(b"\n")

    def _decode(self, data: bytes, final: bool) -> None:
        try:
            self._decoder.decode(data, final)
        except UnicodeDecodeError as exc:
            line = self._lines + data.count(b"\n", 0, max(exc.start, 0)) + 1
            bad = data[exc.start : exc.start + 4] if exc.start >= 0 else b""
            self.error = SourceError(
                f"source file {self._shown} is not UTF-8 text: line {line:,} holds the byte(s) "
                f"{bad!r}; save it as UTF-8 (for example iconv -f latin1 -t utf-8)",
                rule="encoding",
            )
            raise self.error from None
        self._pending = bool(self._decoder.getstate()[0])

    def fingerprint(self) -> str:
        while self.read(HASH_CHUNK):  # anything the reader did not need still counts
            pass
        return f"sha256:{self._digest.hexdigest()}"

    def close(self) -> None:
        self._file.close()
        super().close()


def _read_full(file: Any, size: int) -> bytes:
    """``size`` bytes, fewer only at the end of the file (a raw read may return less)."""
    data = file.read(size)
    if not data or len(data) == size:
        return bytes(data or b"")
    parts = [data]
    got = len(data)
    while got < size and (more := file.read(size - got)):
        parts.append(more)
        got += len(more)
    return b"".join(parts)


class FileHasher:
    """The sha256 of a file, computed on a thread while the caller reads the file its own way
    (parquet is read by column chunk, not from start to end); hashing releases the GIL."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stopped = threading.Event()
        self._digest: str | None = None
        self._error: OSError | None = None
        self._thread = threading.Thread(target=self._run, name="pipeform-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        digest = hashlib.sha256()
        try:
            with self._path.open("rb") as fh:
                while not self._stopped.is_set() and (chunk := fh.read(HASH_CHUNK)):
                    digest.update(chunk)
        except OSError as exc:
            self._error = exc
            return
        self._digest = f"sha256:{digest.hexdigest()}"

    def result(self) -> str | None:
        """The fingerprint, once the whole file is hashed (None if it could not be read)."""
        self._thread.join()
        return None if self._stopped.is_set() or self._error else self._digest

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()
