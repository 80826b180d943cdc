"""Sources of Dataset snapshots: open a URI, fingerprint its bytes, stream typed record batches.

One small protocol (``Source``) with a registry by URI scheme: ``file://`` is implemented
here, ``s3://`` in ``providers.aws.s3source`` (staged, then parsed by ``FileSource``). A source streams in bounded memory
(CSV and JSON lines in blocks of ``BLOCK_BYTES`` of whole lines, two parsed at once by
``blocks``; ``ParquetFile.iter_batches``), converts declared columns to their Arrow types,
and turns every reading problem into one ``SourceError`` naming the file, the line or row,
the column and the value. Text formats are read through ``blocks.CheckedStream``, which
hashes the bytes as they pass (on a checker thread) and refuses bytes that are not UTF-8; a
parquet file is hashed by a ``FileHasher`` thread beside the reader, or, when its columns
already have the declared types, copied whole into the snapshot (``snapshot_copy``) and
the copy read and hashed side by side. So a snapshot reads its source once: the fingerprint that names it is
the hash of the bytes parsed (or copied), and a file changed during the read is caught (by
hash or by size and modification time).
"""

from __future__ import annotations

import errno
import hashlib
import mmap
import os
import shutil
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from providers.base import JSON, PermanentError, RetryableError
from providers.local.settings import LocalSettings
from reconciler.kinds.data import ColumnType, CsvOptions, DataFormat

# Arrow's default allocator (mimalloc) hands freed memory back to the system within
# milliseconds, so each batch's buffers are faulted in and zeroed again (as huge pages);
# jemalloc keeps freed memory a second for the next batch: a parquet snapshot in
# bench/data.py takes half the time. pyarrow reads this when first imported, which in the
# CLI is after this module (the Dataset handler imports it); a value already set wins.
if sys.platform.startswith("linux"):  # where pyarrow's wheels are built with jemalloc
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")

BLOCK_BYTES = 16 << 20  # CSV/JSONL block: memory per block in flight, and rows per batch
PARQUET_BATCH_ROWS = 128 * 1024
HASH_CHUNK = 8 << 20
CHECK_QUEUE_BLOCKS = 2  # blocks read but not yet hashed and checked
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

    def snapshot_copy(self, hints: Sequence[ColumnHint], target: Path) -> Iterator[Any] | None:
        """When the source's bytes can be the snapshot as they are (parquet whose declared
        columns already have their types), copy them to ``target``, hashing them on the way
        (``fingerprint()`` is then that hash), and return the copy's batches as ``batches``
        would; else None, with nothing written."""
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
    """s3:// objects, with the Workspace's providers.aws settings (boto3 and pyarrow's S3
    filesystem load here, on the first s3:// source)."""
    from providers.aws.s3source import open_s3

    return open_s3(uri, format, options, settings)


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
            from providers.local.data.blocks import CheckedStream

            with CheckedStream(self.path, self.shown) as stream:
                if self.format == DataFormat.CSV:
                    yield from formats.csv_batches(self, stream, hints)
                else:
                    yield from formats.jsonl_batches(self, stream, hints)
                found = stream.fingerprint()
        if found is None or found != (before or found) or self._key(self._stat()) != key:
            raise _changed(self.shown)
        _remember(key, found)

    def snapshot_copy(self, hints: Sequence[ColumnHint], target: Path) -> Iterator[Any] | None:
        if self.format != DataFormat.PARQUET:
            return None
        from providers.local.data import formats

        if not formats.parquet_copyable(self.path, hints):
            return None
        key = self._key(self._stat())
        try:
            copy_file(self.path, target)
        except OSError as exc:
            raise PermanentError(
                f"source file {self.shown} could not be copied into the snapshot: "
                f"{exc.strerror or exc}"
            ) from None
        if self._key(self._stat()) != key:
            raise _changed(self.shown)
        return self._copied_batches(hints, target, key)

    def _copied_batches(
        self, hints: Sequence[ColumnHint], copy: Path, key: tuple[str, int, int]
    ) -> Iterator[Any]:
        """The copy's batches, while a thread hashes the copy (the source's fingerprint)."""
        from providers.local.data import formats

        before = _known(key)
        hasher = FileHasher(copy, mapped=True)
        try:
            yield from formats.parquet_batches(self, hints, copy)
            found = hasher.result()
        finally:
            hasher.stop()
        if found is None or found != (before or found):
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


def copy_file(source: Path, target: Path) -> None:
    """Copy ``source`` to the new file ``target``: in the kernel (``copy_file_range``, no
    pass through Python; a clone where the file system shares blocks), else read and write."""
    with source.open("rb") as src, target.open("xb") as dst:
        if not _copy_in_kernel(src.fileno(), dst.fileno()):
            shutil.copyfileobj(src, dst, HASH_CHUNK)


def _copy_in_kernel(src: int, dst: int) -> bool:
    """Copy the whole of ``src`` to ``dst`` in the kernel; False if it cannot (nothing copied)."""
    copy = getattr(os, "copy_file_range", None)
    if copy is None:
        return False
    size, done = os.fstat(src).st_size, 0
    try:
        while done < size and (n := copy(src, dst, size - done, done, done)):
            done += n
    except OSError as exc:
        if done == 0 and exc.errno in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            return False
        raise
    return True


class FileHasher:
    """The sha256 of a file, computed on a thread while the caller reads the file its own way
    (parquet is read by column chunk, not from start to end); hashing releases the GIL.
    ``mapped`` hashes the cached pages in place, without copying them: only for a file of
    our own, which nobody truncates underneath (that would be a SIGBUS)."""

    def __init__(self, path: Path, mapped: bool = False) -> None:
        self._path = path
        self._mapped = mapped
        self._stopped = threading.Event()
        self._digest: str | None = None
        self._error: OSError | None = None
        self._thread = threading.Thread(target=self._run, name="pipeform-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        digest = hashlib.sha256()
        try:
            with self._path.open("rb", buffering=0) as fh:
                if self._mapped and os.fstat(fh.fileno()).st_size:
                    with (
                        mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as pages,
                        memoryview(pages) as view,
                    ):
                        self._hash_view(view, digest)
                else:
                    self._hash_reads(fh, digest)
        except OSError as exc:
            self._error = exc
            return
        self._digest = f"sha256:{digest.hexdigest()}"

    def _hash_view(self, view: memoryview, digest: Any) -> None:
        for start in range(0, len(view), HASH_CHUNK):
            if self._stopped.is_set():
                return
            digest.update(view[start : start + HASH_CHUNK])

    def _hash_reads(self, fh: Any, digest: Any) -> None:
        buffer = bytearray(HASH_CHUNK)
        view = memoryview(buffer)
        while not self._stopped.is_set() and (size := fh.readinto(buffer)):
            digest.update(view[:size])

    def result(self) -> str | None:
        """The fingerprint, once the whole file is hashed (None if it could not be read)."""
        self._thread.join()
        return None if self._stopped.is_set() or self._error else self._digest

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()
