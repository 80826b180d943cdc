"""The data plane's helper threads: one reads batches ahead, one writes a parquet file.

``Prefetch`` runs a source's batch iterator on a thread of its own, a couple of batches
ahead of the caller, so decoding and converting the next batch overlaps checking this one
(pyarrow's readers and kernels release the GIL); an error is raised in the caller's
thread. ``ParquetSink`` takes record batches (or tables) from the snapshot's read-and-validate loop and writes
them on a writer thread (zstd and the parquet encoders release the GIL), so writing one
batch overlaps validating the next. A small queue bounds the batches in flight. The bytes
pass through a sha256 on their way to disk, so the snapshot's ``sha256`` needs no second
read of the file. A writer error (a full disk) is raised in the caller's thread.
``memory_pool`` chooses the Arrow allocator while the data plane streams batches.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]
import pyarrow.parquet as pq  # type: ignore[import-untyped,unused-ignore]

QUEUE_BATCHES = 2  # batches waiting for the writer (each is a 16 MiB block or a row group)
#: how pipeform writes parquet (snapshots, feature tables): zstd level 1 without dictionary
#: pages, since dictionary attempts on high-cardinality columns cost more time than they
#: save space (measured in bench/data.py and bench/features_bench.py)
WRITER_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 1,
    "use_dictionary": False,
    "write_statistics": True,
}
PREFETCH_BATCHES = 2  # batches read ahead of the checks
WRITE_BUFFER = 4 << 20  # bytes gathered before a write reaches Python (and the hash)
_DONE = object()
_FINISH = object()  # a ParquetSink item: write the footer
_pool_lock = threading.Lock()
_pool_users = 0
_pool_before: Any = None


@contextmanager
def memory_pool() -> Iterator[None]:
    """Arrow allocates from jemalloc inside this block (the C library's malloc where pyarrow
    has no jemalloc), then the default pool is restored; blocks may nest and overlap across
    threads. pyarrow's default, mimalloc, spends several times more time in the kernel when
    batch-sized buffers come and go: 0.6 s against 0.15 s of system time materialising 1M
    rows (bench/features_bench.py). Buffers are freed to the pool they came from."""
    global _pool_users, _pool_before
    with _pool_lock:
        if not _pool_users:
            _pool_before = pa.default_memory_pool()
            try:
                pa.set_memory_pool(pa.jemalloc_memory_pool())
            except NotImplementedError:
                pa.set_memory_pool(pa.system_memory_pool())
        _pool_users += 1
    try:
        yield
    finally:
        with _pool_lock:
            _pool_users -= 1
            if not _pool_users:
                pa.set_memory_pool(_pool_before)


class Prefetch:
    """Iterate ``items`` on a thread, up to ``depth`` items ahead; use as a context manager
    (leaving it early stops the thread and closes ``items`` there)."""

    def __init__(self, items: Iterator[Any], depth: int = PREFETCH_BATCHES) -> None:
        self._items = items
        self._queue: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=depth)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pipeform-read", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for item in self._items:
                if self._stopped.is_set():
                    return
                self._queue.put((True, item))
            self._queue.put((False, _DONE))
        except BaseException as exc:  # raised again in the caller's thread
            self._queue.put((False, exc))
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()  # a generator's cleanup (open files, hash threads) runs here

    def __iter__(self) -> Iterator[Any]:
        while True:
            ok, item = self._queue.get()
            if ok:
                yield item
            elif item is _DONE:
                return
            else:
                raise item

    def __enter__(self) -> Prefetch:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        while self._thread.is_alive():  # unblock a thread waiting to put
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.05)
        self._thread.join()


class HashingFile(io.RawIOBase):
    """A new file, written from start to end; ``hexdigest`` is the sha256 of what was written."""

    def __init__(self, path: Path, sync: bool = False) -> None:
        super().__init__()
        self.sync_on_close = sync  # flush the bytes to disk when closing
        self._file = path.open("wb", buffering=0)
        self._digest = hashlib.sha256()
        self._written = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._digest.update(view)
        done = 0
        while done < len(view):
            done += self._file.write(view[done:]) or 0
        self._written += done
        return done

    def tell(self) -> int:
        return self._written

    def hexdigest(self) -> str:
        return self._digest.hexdigest()

    def close(self) -> None:
        if self.sync_on_close and not self._file.closed:
            self.sync_on_close = False  # once, even if it fails
            os.fsync(self._file.fileno())
        self._file.close()
        super().close()


class Worker:
    """Call ``work(item)`` for every ``put`` item, in order, on a thread of its own.

    A small queue bounds the items in flight. The first error is raised again in the
    caller's thread (by the next ``put``, or by ``close``); after it the thread keeps
    taking items without working on them, so ``put`` never blocks for ever."""

    def __init__(self, work: Callable[[Any], None], name: str) -> None:
        self._work = work
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_BATCHES)
        self.error: BaseException | None = None
        self._aborted = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not _DONE:
            if self.error is None and not self._aborted:
                try:
                    self._work(item)
                except BaseException as exc:  # raised again in the caller's thread
                    self.error = exc

    def put(self, item: Any) -> None:
        if self.error is not None:
            raise self.error
        self._queue.put(item)

    def close(self) -> None:
        """Wait for every item to be worked on; raise the first error."""
        self._stop()
        if self.error is not None:
            raise self.error

    def abort(self) -> None:
        """Stop working: the items still queued are dropped."""
        self._aborted = True
        self._stop()

    def _stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_DONE)
            self._thread.join()


class ParquetSink:
    """``put`` batches of one schema, then ``close`` for the file's sha256 (or ``abort``).

    A batch, or a table, is written as one row group (up to pyarrow's 1Mi rows), even
    when it is empty, as ``ParquetWriter.write_table`` writes it. ``finish`` has the writer
    thread write the footer (and, with ``sync``, flush the file to disk) while the caller
    goes on; ``close`` waits for it."""

    def __init__(self, path: Path, schema: Any, sync: bool = False, **options: Any) -> None:
        self._file = HashingFile(path, sync)
        self._finishing = False
        self._stream = pa.BufferedOutputStream(
            pa.PythonFile(self._file, mode="w"), buffer_size=WRITE_BUFFER
        )
        self._writer = pq.ParquetWriter(self._stream, schema, **options)
        self._worker = Worker(self._write, name="pipeform-parquet")

    def _write(self, batch: Any) -> None:
        if batch is _FINISH:  # the footer, then the bytes to disk (closing the file syncs it)
            self._writer.close()
            self._stream.close()
        elif isinstance(batch, pa.Table):
            self._writer.write_table(batch)
        else:
            self._writer.write_batch(batch)

    def put(self, batch: Any) -> None:
        self._worker.put(batch)  # the writer keeps taking batches, even after an error

    def finish(self) -> None:
        """No more batches: the writer thread writes the footer (and syncs the file)."""
        if not self._finishing:
            self._finishing = True
            self._worker.put(_FINISH)

    def close(self) -> str:
        """Finish, wait for every batch and the footer to be written; the file's sha256
        (hex)."""
        try:
            self.finish()
            self._worker.close()
        except BaseException:
            self.abort()
            raise
        self._file.close()
        return self._file.hexdigest()

    def abort(self) -> None:
        """Stop writing (the file is left incomplete, unsynced, for the caller to remove)."""
        self._file.sync_on_close = False
        self._worker.abort()
        with contextlib.suppress(Exception):  # the footer of a file that will be removed
            self._writer.close()
            self._stream.close()
        self._file.close()
