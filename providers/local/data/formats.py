"""The three file formats a Dataset reads (CSV, JSON lines, parquet), streamed in batches.

Each function yields pyarrow RecordBatches with declared columns converted (CSV and JSON
lines parsed in blocks, two at once, by ``blocks``), and turns Arrow's reading errors into
one ``SourceError`` with a line (text formats) or row number (parquet), the column and the
value. Finding the line of a bad cell takes a second pass
over the file, on the failure path only: the fast path reads with Arrow's typed parsers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]
import pyarrow.compute as pc  # type: ignore[import-untyped,unused-ignore]
import pyarrow.csv as pacsv  # type: ignore[import-untyped,unused-ignore]
import pyarrow.parquet as pq  # type: ignore[import-untyped,unused-ignore]

from providers.local.data import blocks
from providers.local.data.convert import (
    arrow_type,
    cell_error,
    conform,
    conversion_detail,
    header_names,
)
from providers.local.data.readers import (
    BLOCK_BYTES,
    PARQUET_BATCH_ROWS,
    ColumnHint,
    SourceError,
)

if TYPE_CHECKING:
    from providers.local.data.blocks import CheckedStream
    from providers.local.data.readers import FileSource


# --- CSV -------------------------------------------------------------------------------------


def _csv_options(source: FileSource, hints: Sequence[ColumnHint], on_invalid: Any) -> Any:
    """Options for Arrow's streaming reader over the whole file (finding a bad cell's line)."""
    options = source.csv
    names = header_names(source.path, options, hints)  # as the spec names them
    read = pacsv.ReadOptions(
        block_size=BLOCK_BYTES,
        column_names=names or None,
        skip_rows=1 if options.header and names else 0,
        autogenerate_column_names=not options.header and not hints,
    )
    parse = blocks.csv_parse_options(options, on_invalid)
    return read, parse, blocks.csv_convert_options(options, blocks.csv_types(hints, True))


def csv_batches(
    source: FileSource, stream: CheckedStream, hints: Sequence[ColumnHint]
) -> Iterator[Any]:
    """The CSV's rows in file order, its blocks parsed on two threads at once."""
    header = 1 if source.csv.header else 0
    progress = blocks.Progress()
    try:
        yield from blocks.parsed_batches(
            blocks.CsvBlocks(source, hints),
            blocks.line_blocks(stream, BLOCK_BYTES),
            hints,
            source.place,
            progress,
        )
    except SourceError as exc:  # a bad byte read so far is the first thing to fix
        raise stream.settle() or exc from None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        if (bad_bytes := stream.settle()) is not None:
            raise bad_bytes from None
        raise _csv_error(source, hints, exc, header) from None
    if (bad_bytes := stream.settle()) is not None:
        raise bad_bytes
    if progress.invalid:
        raise _invalid_rows(source, progress.invalid)


def _csv_error(
    source: FileSource, hints: Sequence[ColumnHint], exc: Exception, header: int
) -> SourceError:
    text = str(exc)
    if "Empty CSV file" in text:
        return SourceError(f"source file {source.shown} holds no CSV header or rows")
    detail = conversion_detail(exc)
    if detail is None:
        return SourceError(f"source file {source.shown} is not valid CSV: {_first_line(text)}")
    number, value = detail
    names = header_names(source.path, source.csv, hints)
    name = names[number] if number < len(names) else f"#{number + 1}"
    declared = dict(hints).get(name)
    row = _find_value(source, hints, name, value)
    where = f"line {row + header:,}" if row else "a row"
    if declared is None:
        return SourceError(
            f"column {name} is not declared in the schema, so its type was guessed from the first "
            f"rows, but {where} holds {value!r}; declare the column (name and type) in spec.schema",
            rule="type",
            column=name,
        )
    return cell_error(name, declared, where, value)


def _find_value(source: FileSource, hints: Sequence[ColumnHint], name: str, value: str) -> int:
    """The 1-based data row where column ``name`` first holds ``value`` (0: not found)."""
    read, parse, _ = _csv_options(source, hints, lambda row: "skip")
    convert = pacsv.ConvertOptions(include_columns=[name], column_types={name: pa.string()})
    rows = 0
    try:
        for batch in pacsv.open_csv(str(source.path), read, parse, convert):
            found = pc.index(batch.column(0), pa.scalar(value, pa.string())).as_py()
            if found >= 0:
                return rows + int(found) + 1
            rows += batch.num_rows
    except (pa.ArrowInvalid, OSError):
        return 0
    return 0


def _invalid_rows(source: FileSource, invalid: list[tuple[int, int, str]]) -> SourceError:
    lines = _line_numbers(source, [text for _, _, text in invalid])
    shown = []
    for (expected, actual, text), line in zip(invalid, lines, strict=True):
        where = f"line {line:,}" if line else "a line"
        shown.append(
            f"  {where}: expected {expected} columns, found {actual}: {_first_line(text)[:80]!r}"
        )
    last = " (a truncated last line?)" if lines and lines[-1] == _count_lines(source) else ""
    return SourceError(
        f"source file {source.shown} has rows with the wrong number of columns{last}:\n"
        + "\n".join(shown)
    )


def _line_numbers(source: FileSource, texts: list[str]) -> list[int]:
    """The line of each text (first occurrence, in order), by one scan of the file."""
    wanted = [t.encode("utf-8") for t in texts]
    found = [0] * len(wanted)
    k = 0
    with source.path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            if k < len(wanted) and line.rstrip(b"\r\n") == wanted[k]:
                found[k] = number
                k += 1
                if k == len(wanted):
                    break
    return found


def _count_lines(source: FileSource) -> int:
    count = 0
    last = b"\n"
    with source.path.open("rb") as fh:
        while chunk := fh.read(8 << 20):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (0 if last == b"\n" else 1)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


# --- JSON lines ------------------------------------------------------------------------------


def jsonl_batches(
    source: FileSource, stream: CheckedStream, hints: Sequence[ColumnHint]
) -> Iterator[Any]:
    """The JSON lines' rows in file order, their blocks parsed on two threads at once."""
    progress = blocks.Progress()
    try:
        yield from blocks.parsed_batches(
            blocks.JsonBlocks(hints),
            blocks.line_blocks(stream, BLOCK_BYTES),
            hints,
            source.place,
            progress,
        )
    except SourceError as exc:
        raise stream.settle() or exc from None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        if (bad_bytes := stream.settle()) is not None:
            raise bad_bytes from None
        raise _json_error(source, str(exc), progress.rows) from None


def _json_error(source: FileSource, text: str, rows: int) -> SourceError:
    m = re.search(r"^(.*?) in row (\d+)", text, re.S)
    if m is None:
        return SourceError(
            f"source file {source.shown} is not valid JSON lines: {_first_line(text)}"
        )
    line = rows + int(m.group(2)) + 1
    detail = m.group(1).removeprefix("JSON parse error: ")
    column = re.search(r"Column\(/([^)]*)\) changed from (\w+) to (\w+)", detail)
    if column is not None:
        return SourceError(
            f"column {column.group(1)}: line {line:,} of {source.shown} holds a {column.group(3)} "
            f"where a {column.group(2)} was expected; fix the value, or declare the column's type "
            "to match the data",
            rule="type",
            column=column.group(1),
        )
    return SourceError(f"source file {source.shown} line {line:,} is not valid JSON: {detail}")


# --- parquet ---------------------------------------------------------------------------------


def parquet_copyable(path: Path, hints: Sequence[ColumnHint]) -> bool:
    """Whether a parquet file can be the snapshot byte for byte: it opens, holds rows, and
    every declared column it has is read with exactly the declared Arrow type (so reading
    it converts nothing). Anything else, a damaged file included, takes the converting path,
    which also words the error."""
    try:
        with pq.ParquetFile(path) as parquet:
            schema, rows = parquet.schema_arrow, parquet.metadata.num_rows
    except (pa.ArrowInvalid, pa.ArrowException, OSError):
        return False
    names = schema.names
    if rows == 0 or len(set(names)) != len(names):
        return False
    return all(
        schema.field(name).type == arrow_type(declared) for name, declared in hints if name in names
    )


def parquet_batches(
    source: FileSource, hints: Sequence[ColumnHint], path: Path | None = None
) -> Iterator[Any]:
    """The source's rows, or those of ``path``: a copy of the source's bytes."""
    try:
        parquet = pq.ParquetFile(path or source.path)
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as exc:
        raise SourceError(
            f"source file {source.shown} is not a readable parquet file ({_first_line(str(exc))}); "
            "is it complete? Write it again"
        ) from None
    rows = 0
    try:
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            yield conform(batch, hints, rows, source.place)
            rows += batch.num_rows
    except SourceError:
        raise
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as exc:
        raise SourceError(
            f"source file {source.shown} is damaged after row {rows:,} ({_first_line(str(exc))}); "
            "write it again"
        ) from None
    finally:
        parquet.close()
