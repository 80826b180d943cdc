"""Sources of Dataset snapshots: open a URI, fingerprint its bytes, stream typed record batches.

One small protocol (``Source``) with a registry by URI scheme, so that ``s3://`` plugs in
with the aws provider: ``file://`` is implemented here. A source streams in bounded memory
(``pyarrow.csv.open_csv`` and ``pyarrow.json.open_json`` in blocks of ``BLOCK_BYTES``,
``ParquetFile.iter_batches``), converts declared columns to their Arrow types, and turns
every reading problem into one ``SourceError`` naming the file, the line or row, the column
and the value. Text formats are read through ``CheckedStream``, which hashes the bytes as
they pass (to catch a file changed during the read) and refuses bytes that are not UTF-8.
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

    def record(self) -> JSON:
        """What ``fingerprint`` may trust next time (size, modification time, fingerprint)."""
        ...

    def batches(self, hints: Sequence[ColumnHint]) -> Iterator[Any]:
        """The rows as pyarrow RecordBatches, declared columns converted to their types."""
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

    def fingerprint(self, cached: JSON | None = None) -> str:
        st = self._stat()
        key = (str(self.path.resolve()), st.st_size, st.st_mtime_ns)
        same = cached and (cached.get("path"), cached.get("size"), cached.get("mtimeNs")) == (
            self.shown,
            *key[1:],
        )
        if same and cached and isinstance(cached.get("fingerprint"), str):
            return str(cached["fingerprint"])
        with _FINGERPRINTS_LOCK:
            known = _FINGERPRINTS.get(key)
        if known is not None:
            return known
        digest = hashlib.sha256()
        with self.path.open("rb") as fh:
            while chunk := fh.read(HASH_CHUNK):
                digest.update(chunk)
        found = f"sha256:{digest.hexdigest()}"
        with _FINGERPRINTS_LOCK:
            _FINGERPRINTS[key] = found
        return found

    def record(self) -> JSON:
        st = self._stat()
        return {
            "path": self.shown,
            "size": st.st_size,
            "mtimeNs": st.st_mtime_ns,
            "fingerprint": self.fingerprint(),
        }

    def batches(self, hints: Sequence[ColumnHint]) -> Iterator[Any]:
        before = self.fingerprint()
        st = self._stat()
        if st.st_size == 0:
            raise SourceError(f"source file {self.shown} is empty (0 bytes)")
        if self.format == DataFormat.PARQUET:
            from providers.local.data import formats

            yield from formats.parquet_batches(self, hints)
            if (self._stat().st_size, self._stat().st_mtime_ns) != (st.st_size, st.st_mtime_ns):
                raise _changed(self.shown)
            return
        from providers.local.data import formats

        with CheckedStream(self.path, self.shown) as stream:
            if self.format == DataFormat.CSV:
                yield from formats.csv_batches(self, stream, hints)
            else:
                yield from formats.jsonl_batches(self, stream, hints)
            if stream.fingerprint() != before:
                raise _changed(self.shown)

    def place(self, row_index: int) -> str:
        """Where a row is, as a message names it: its line in a text file, else its row."""
        if self.format == DataFormat.PARQUET:
            return f"row {row_index + 1:,}"
        return f"line {row_index + 1 + (1 if self.format == DataFormat.CSV and self.csv.header else 0):,}"


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

    Arrow's readers take it as a file object. A byte that is not UTF-8 stops the read with
    a ``SourceError`` naming its line; ``fingerprint`` is the hash of what was read.
    """

    def __init__(self, path: Path, shown: str) -> None:
        super().__init__()
        self._file = path.open("rb")
        self._shown = shown
        self._digest = hashlib.sha256()
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._lines = 0
        self.error: SourceError | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._file.readinto(buffer)
        if not n:
            self._check(b"", final=True)
            return 0
        data = bytes(memoryview(buffer)[:n])
        self._digest.update(data)
        self._check(data, final=False)
        return n

    def _check(self, data: bytes, final: bool) -> None:
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
        self._lines += data.count(b"\n")

    def fingerprint(self) -> str:
        while self.read(HASH_CHUNK):  # anything the reader did not need still counts
            pass
        return f"sha256:{self._digest.hexdigest()}"

    def close(self) -> None:
        self._file.close()
        super().close()
