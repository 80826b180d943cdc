"""Text sources (CSV, JSON lines) read once in blocks of whole lines, parsed two at a time.

``CheckedStream`` reads the file from start to end and hands every byte read to a checker
thread that hashes it (the source's fingerprint) and checks it is UTF-8. ``line_blocks``
reads it in blocks of about ``BLOCK_BYTES`` cut after their last newline; a row never spans two
blocks because quoted CSV values may not hold newlines and JSON lines are one per line.
``parsed_batches`` parses the blocks on ``PARSE_THREADS`` threads (Arrow's parsers release
the GIL), each block to one record batch with its declared columns converted, and yields
them in the order of the file, at most ``PARSE_AHEAD`` blocks ahead of the caller. Every
block is parsed with the same column names and types: the declared ones, and for columns
not declared those Arrow guessed from the first rows (as Arrow's streaming readers do), so
a block can be parsed before the one ahead of it is. A value that does not convert is
converted again in the caller's thread, where the rows before its block are known, so the
error names its line; Arrow's own errors are raised from ``parsed_batches`` in file order.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]
import pyarrow.csv as pacsv  # type: ignore[import-untyped,unused-ignore]
import pyarrow.json as pajson  # type: ignore[import-untyped,unused-ignore]

from providers.local.data.convert import arrow_type, conform
from providers.local.data.readers import (
    CHECK_QUEUE_BLOCKS,
    HASH_CHUNK,
    MAX_INVALID_ROWS,
    ColumnHint,
    SourceError,
)
from reconciler.kinds.data import ColumnType, CsvOptions

if TYPE_CHECKING:
    from providers.local.data.readers import FileSource

PARSE_THREADS = 2  # blocks parsed at once (each on one core, without the GIL)
PARSE_AHEAD = 2  # blocks parsed or being parsed beyond the one the caller waits for

#: a CSV row Arrow could not split into the expected columns: (expected, found, text)
InvalidRow = tuple[int, int, str]


@dataclass
class Parsed:
    """One block's rows: converted to the declared types (``conformed``), or as parsed when
    a value does not convert; ``invalid``: CSV rows skipped for their number of columns."""

    batch: Any
    conformed: bool = True
    invalid: list[InvalidRow] = field(default_factory=list)


class Blocks(Protocol):
    def start(self, first: memoryview) -> memoryview:
        """Take what the first block says about the columns; the rows of that block."""
        ...

    def ready(self) -> bool:
        """Whether every column's type is known (else the next block is parsed alone)."""
        ...

    def guess(self, parsed: Parsed | None) -> None:
        """Fix the types of the columns not declared as Arrow read them in these rows."""
        ...

    def parse(self, block: memoryview) -> Parsed | None:
        """The block's rows (None: it holds none); Arrow's errors are raised as they are."""
        ...


@dataclass
class Progress:
    """How far ``parsed_batches`` got: the rows yielded, the CSV rows skipped so far."""

    rows: int = 0
    invalid: list[InvalidRow] = field(default_factory=list)


def line_blocks(stream: CheckedStream, size: int) -> Iterator[memoryview]:
    """The stream in blocks of about ``size`` bytes of whole lines (the last one may end
    without a newline); a block is a view of the bytes read, not a copy."""
    while len(block := stream.read_lines(size)):
        yield block


def parsed_batches(
    blocks: Blocks,
    lines: Iterator[memoryview],
    hints: Sequence[ColumnHint],
    place: Callable[[int], str],
    progress: Progress,
) -> Iterator[Any]:
    """The batches of every block in file order; ``progress`` counts what was yielded."""
    with ThreadPoolExecutor(PARSE_THREADS, thread_name_prefix="pipeform-parse") as pool:
        pending: deque[Future[Parsed | None]] = deque()
        try:
            for parsed in _in_order(blocks, lines, pool, pending):
                if parsed is None:
                    continue
                room = MAX_INVALID_ROWS - len(progress.invalid)
                progress.invalid.extend(parsed.invalid[:room])
                if parsed.batch is None:
                    continue
                batch = parsed.batch
                if not parsed.conformed:  # raises the error, naming the line
                    batch = conform(batch, hints, progress.rows, place)
                yield batch
                progress.rows += batch.num_rows
        finally:
            for future in pending:
                future.cancel()


def _in_order(
    blocks: Blocks,
    lines: Iterator[memoryview],
    pool: ThreadPoolExecutor,
    pending: deque[Future[Parsed | None]],
) -> Iterator[Parsed | None]:
    first = next(lines, None)
    if first is None:
        return
    for block in _chain(blocks.start(first), lines):
        if not blocks.ready():  # the first rows fix the guessed types for all the others
            parsed = blocks.parse(block)
            blocks.guess(parsed)
            yield parsed
            continue
        pending.append(pool.submit(blocks.parse, block))
        while len(pending) > PARSE_AHEAD:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _chain(first: memoryview, rest: Iterator[memoryview]) -> Iterator[memoryview]:
    if len(first):
        yield first
    yield from rest


def _conformed(batch: Any, hints: Sequence[ColumnHint], invalid: list[InvalidRow]) -> Parsed:
    try:
        return Parsed(conform(batch, hints, 0, lambda row: ""), True, invalid)
    except SourceError:  # converted again by the caller, who knows the rows before the block
        return Parsed(batch, False, invalid)


def _one_batch(table: Any) -> Any:
    return table.combine_chunks().to_batches()[0]


def _buffer(block: memoryview) -> Any:
    return pa.BufferReader(pa.py_buffer(block))


def _block_size(length: int) -> int:
    """An Arrow block size that reads ``length`` bytes as one chunk."""
    return min(max(length + 1, 1 << 16), (1 << 31) - 1)


def _line_end(data: memoryview) -> int:
    """The length of the first line of ``data`` with its newline (all of it if none)."""
    look = 1 << 16
    while (end := bytes(data[:look]).find(b"\n")) < 0 and look < len(data):
        look *= 4
    return len(data) if end < 0 else end + 1


# --- reading the bytes once ---------------------------------------------------------------


class CheckedStream(io.RawIOBase):
    """A file read once from start to end, hashed and checked for UTF-8 on the way.

    Arrow's readers take it as a file object and call ``read`` from their own thread; each
    block read is handed to a checker thread that hashes it (without the GIL) and checks it
    is UTF-8 (an ASCII block, the usual case, needs no decoding), so the parser does not
    wait for either. A byte that is not UTF-8 makes ``error`` a ``SourceError`` naming its
    line: ``settle`` waits for the checker to see every byte read so far, and the next
    ``read`` raises the error. ``fingerprint`` is the hash of every byte of the file.
    """

    def __init__(self, path: Path, shown: str) -> None:
        super().__init__()
        self._path = path
        self._file = path.open("rb", buffering=0)
        self._shown = shown
        self._digest = hashlib.sha256()
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._pending = False  # the decoder holds the start of a multi-byte character
        self._checked = 0  # bytes checked so far
        self._offset = 0  # bytes handed out so far
        self._carry = 0  # bytes read after the last line handed out
        #: bytes read and how many of them (from the start) were handed out
        self._blocks: queue.Queue[tuple[bytes, int] | None] = queue.Queue(
            maxsize=CHECK_QUEUE_BLOCKS
        )
        self._checker = threading.Thread(target=self._run, name="pipeform-check", daemon=True)
        self._checker.start()
        self.error: SourceError | None = None

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if self.error is not None:
            raise self.error
        if size is None or size < 0:
            size = max(os.fstat(self._file.fileno()).st_size - self._offset, 0) + 1
        data = _read_at(self._file, size, self._offset)
        self._hand_out(data, len(data))
        return data

    def read_lines(self, size: int) -> memoryview:
        """The next whole lines, about ``size`` bytes (more when one line is longer; the last
        line of the file may end without a newline), as a view of the bytes read, not a copy;
        empty at the end. The part of a line after the last newline is read again next time."""
        if self.error is not None:
            raise self.error
        want = size + self._carry  # the blocks Arrow's streaming readers make
        while True:
            data = _read_at(self._file, want, self._offset)
            cut = data.rfind(b"\n") + 1 if len(data) == want else len(data)  # all at the end
            if cut or len(data) < want:
                break
            want *= 2  # a line longer than the block
        self._hand_out(data, cut)
        self._carry = len(data) - cut
        return memoryview(data)[:cut]

    def _hand_out(self, data: bytes, size: int) -> None:
        if size:  # bytes are immutable: the checker sees what the parser sees
            self._blocks.put((data, size))
            self._offset += size

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        memoryview(buffer)[: len(data)] = data
        return len(data)

    def _run(self) -> None:
        while True:
            item = self._blocks.get()
            try:
                if self.error is None:
                    if item is None:
                        self._decode(b"", final=True)
                    else:
                        data, size = item
                        view = memoryview(data)[:size]
                        self._digest.update(view)
                        if self._pending or not data.isascii():  # all of data: a superset
                            self._decode(view, final=False)
                        self._checked += size
            finally:
                self._blocks.task_done()
            if item is None:
                return

    def _decode(self, data: bytes | memoryview, final: bool) -> None:
        try:
            self._decoder.decode(data, final)
        except UnicodeDecodeError as exc:
            offset = self._checked + max(exc.start, 0)
            bad = bytes(data[exc.start : exc.start + 4]) if exc.start >= 0 else b""
            self.error = SourceError(
                f"source file {self._shown} is not UTF-8 text: line {self._line_at(offset):,} "
                f"holds the byte(s) {bad!r}; save it as UTF-8 (for example iconv -f latin1 -t "
                "utf-8)",
                rule="encoding",
            )
            return
        self._pending = bool(self._decoder.getstate()[0])

    def _line_at(self, offset: int) -> int:
        """The 1-based line holding byte ``offset`` (counted on the failure path only)."""
        lines = 1
        with self._path.open("rb") as fh:
            while offset > 0 and (chunk := fh.read(min(HASH_CHUNK, offset))):
                lines += chunk.count(b"\n")
                offset -= len(chunk)
        return lines

    def settle(self) -> SourceError | None:
        """Wait until every byte read so far is hashed and checked; the encoding error, if any."""
        self._blocks.join()
        return self.error

    def fingerprint(self) -> str:
        """The sha256 of the whole file (anything the reader did not need still counts), once
        it is all checked; raises the encoding error if there is one."""
        while self.read(HASH_CHUNK):
            pass
        self._blocks.put(None)
        self._checker.join()
        if self.error is not None:
            raise self.error
        return f"sha256:{self._digest.hexdigest()}"

    def close(self) -> None:
        if self._checker.is_alive():
            self._blocks.put(None)
            self._checker.join()
        self._file.close()
        super().close()


def _read_at(file: Any, size: int, offset: int) -> bytes:
    """``size`` bytes from ``offset``, fewer only at the end of the file (a read may return
    less)."""
    pread = getattr(os, "pread", None)
    if pread is None:  # Windows has no pread
        file.seek(offset)
    parts: list[bytes] = []
    got = 0
    while got < size:
        more = pread(file.fileno(), size - got, offset + got) if pread else file.read(size - got)
        if not more:
            break
        parts.append(bytes(more))
        got += len(more)
    return parts[0] if len(parts) == 1 else b"".join(parts)


# --- CSV -------------------------------------------------------------------------------------


def csv_types(hints: Sequence[ColumnHint], text_timestamps: bool) -> dict[str, Any]:
    """The Arrow type each declared column is parsed as: its own, or text for timestamps that
    need ``parse_timestamps`` (values with a UTC offset, which Arrow's CSV parser refuses)."""
    return {
        name: pa.string()
        if declared == ColumnType.TIMESTAMP and text_timestamps
        else arrow_type(declared)
        for name, declared in hints
    }


def csv_parse_options(options: CsvOptions, on_invalid: Any) -> Any:
    return pacsv.ParseOptions(
        delimiter=options.delimiter,
        quote_char=options.quote or '"',
        invalid_row_handler=on_invalid,
    )


def csv_column_names(written: list[str], options: CsvOptions) -> list[str]:
    """The header's names as the spec names the columns (``csv.headerStrip``, ``csv.rename``);
    a rename of a name the header lacks, or two columns with one name, is a SourceError."""
    stripped = [n.strip(options.header_strip) if options.header_strip else n for n in written]
    unknown = sorted(set(options.rename or {}) - set(stripped))
    if unknown:
        raise SourceError(
            f"spec.source.csv.rename names {', '.join(map(repr, unknown))}, which the header "
            f"does not have (it has: {', '.join(stripped)}); rename names as the file writes "
            "them, after headerStrip"
        )
    names = [options.column_name(n) for n in written]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise SourceError(
            f"the header names {', '.join(map(repr, repeated))} more than once (after "
            "headerStrip and rename); give each column its own name with spec.source.csv.rename"
        )
    return names


def csv_convert_options(options: CsvOptions, types: dict[str, Any]) -> Any:
    return pacsv.ConvertOptions(
        column_types=types,
        null_values=list(options.null_values),
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )


class CsvBlocks:
    """CSV blocks (whole lines, the header line taken off the first) to batches.

    Declared timestamps are parsed by Arrow's CSV parser; once a block holds one it refuses
    (a value with a UTC offset), that block and the later ones read them as text for
    ``parse_timestamps`` (the same values: both use Arrow's ISO 8601 parser)."""

    def __init__(self, source: FileSource, hints: Sequence[ColumnHint]) -> None:
        self.options = source.csv
        self.hints = list(hints)
        self.declared = {name for name, _ in hints}
        self.names: list[str] = []
        self.guessed: dict[str, Any] | None = None  # the types of the columns not declared
        self.timestamps = any(t == ColumnType.TIMESTAMP for _, t in hints)
        self.text_timestamps = not self.timestamps

    def start(self, first: memoryview) -> memoryview:
        view, end = first, _line_end(first)
        if self.options.header or not self.hints:  # names as Arrow reads them: f0, f1, ...
            read = pacsv.ReadOptions(
                use_threads=False,
                block_size=_block_size(end),
                autogenerate_column_names=not self.options.header,
            )
            names = self._table(view[:end], read, {}).column_names
            self.names = csv_column_names(names, self.options) if self.options.header else names
        else:
            self.names = [name for name, _ in self.hints]
        return view[end:] if self.options.header else view

    def ready(self) -> bool:
        if self.guessed is None and all(name in self.declared for name in self.names):
            self.guessed = {}
        return self.guessed is not None

    def guess(self, parsed: Parsed | None) -> None:
        if parsed is not None and parsed.batch is not None:
            schema = parsed.batch.schema
            self.guessed = {f.name: f.type for f in schema if f.name not in self.declared}

    def parse(self, block: memoryview) -> Parsed | None:
        if not self.text_timestamps:
            try:
                return self._parse(block, text_timestamps=False)
            except pa.ArrowInvalid:
                self.text_timestamps = True  # Arrow's error comes again below if not theirs
        return self._parse(block, text_timestamps=True)

    def _parse(self, block: memoryview, text_timestamps: bool) -> Parsed | None:
        invalid: list[InvalidRow] = []

        def on_invalid(row: Any) -> str:
            if len(invalid) < MAX_INVALID_ROWS:
                invalid.append((row.expected_columns, row.actual_columns, row.text or ""))
            return "skip"  # keep reading, to report every bad row (up to ten) at once

        read = pacsv.ReadOptions(
            column_names=self.names, use_threads=False, block_size=_block_size(len(block))
        )
        types = {**(self.guessed or {}), **csv_types(self.hints, text_timestamps)}
        table = self._table(block, read, types, on_invalid)
        if table.num_rows == 0:
            return Parsed(None, True, invalid) if invalid else None
        return _conformed(_one_batch(table), self.hints, invalid)

    def _table(self, block: memoryview, read: Any, types: Any, on_invalid: Any = None) -> Any:
        return pacsv.read_csv(
            _buffer(block),
            read,
            csv_parse_options(self.options, on_invalid),
            csv_convert_options(self.options, types),
        )


# --- JSON lines ------------------------------------------------------------------------------


class JsonBlocks:
    """JSON lines blocks to batches: fields not declared are guessed from the first block's
    rows, and a later block holding another field is an error (as in Arrow's streaming reader)."""

    def __init__(self, hints: Sequence[ColumnHint]) -> None:
        self.hints = list(hints)
        self.schema = pa.schema([(name, arrow_type(declared)) for name, declared in hints])
        self.fixed: Any = None  # the first rows' schema

    def start(self, first: memoryview) -> memoryview:
        return first

    def ready(self) -> bool:
        return self.fixed is not None

    def guess(self, parsed: Parsed | None) -> None:
        if parsed is not None and parsed.batch is not None:
            self.fixed = parsed.batch.schema

    def parse(self, block: memoryview) -> Parsed | None:
        read = pajson.ReadOptions(use_threads=False, block_size=_block_size(len(block)))
        parse = pajson.ParseOptions(
            explicit_schema=self.schema if self.fixed is None else self.fixed,
            unexpected_field_behavior="infer" if self.fixed is None else "error",
        )
        table = pajson.read_json(_buffer(block), read, parse)
        if table.num_rows == 0:
            return None
        return _conformed(_one_batch(table), self.hints, [])
