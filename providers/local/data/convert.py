"""Arrow types for declared columns, and converting read batches to them with clear errors.

A declared column that Arrow read with another type (a parquet int32, a CSV timestamp
read as text, a JSON number for a float) is converted here; a value that does not convert
is found by bisection and named in a ``SourceError`` with its column, place and value.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]
import pyarrow.compute as pc  # type: ignore[import-untyped,unused-ignore]

from providers.local.data.readers import ColumnHint, SourceError
from reconciler.kinds.data import ColumnType, CsvOptions

ARROW_TYPES: Mapping[ColumnType, Callable[[], Any]] = {
    ColumnType.INT: pa.int64,
    ColumnType.FLOAT: pa.float64,
    ColumnType.STRING: pa.string,
    ColumnType.BOOL: pa.bool_,
    ColumnType.TIMESTAMP: lambda: pa.timestamp("us"),
    ColumnType.DATE: pa.date32,
}


def arrow_type(declared: ColumnType) -> Any:
    return ARROW_TYPES[ColumnType(declared)]()


def header_names(path: Path, options: CsvOptions, hints: Sequence[ColumnHint]) -> list[str]:
    """The CSV's column names as Arrow numbers them (from the header line, or declared)."""
    if not options.header:
        return [name for name, _ in hints]
    with path.open("r", encoding="utf-8", errors="replace", newline="") as fh:
        first = fh.readline()
    written = next(
        csv.reader([first], delimiter=options.delimiter, quotechar=options.quote or '"'), []
    )
    return [options.column_name(n) for n in written]


def first_bad_index(column: Any, convert: Callable[[Any], Any]) -> int:
    """The index of the first value ``convert`` refuses, by bisection (O(n) work in all)."""
    lo, hi = 0, len(column)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            convert(column.slice(lo, mid - lo))
            lo = mid
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            hi = mid
    return lo


_OFFSET = r"(Z|z|[+-]\d\d:?\d\d)$"


def parse_timestamps(column: Any) -> Any:
    """ISO 8601 strings to timestamp('us'), UTC: values with an offset are converted to UTC,
    values without one are taken as UTC already."""
    text = column.cast(pa.string())
    try:  # the usual case, no value with an offset: one cast (Arrow refuses offsets here)
        return pc.cast(text, pa.timestamp("us"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    with_offset = pc.match_substring_regex(text, _OFFSET)
    none = pa.scalar(None, pa.string())
    aware = pc.cast(pc.if_else(with_offset, text, none), pa.timestamp("us", "UTC"))
    naive = pc.cast(pc.if_else(with_offset, none, text), pa.timestamp("us"))
    return pc.coalesce(aware.cast(pa.timestamp("us")), naive)


def converter(declared: ColumnType, current: Any) -> Callable[[Any], Any] | None:
    """How to bring a column of Arrow type ``current`` to the declared type (None: as is)."""
    target = arrow_type(declared)
    if current == target:
        return None
    if declared == ColumnType.TIMESTAMP and (
        pa.types.is_string(current) or pa.types.is_large_string(current)
    ):
        return parse_timestamps
    if declared == ColumnType.TIMESTAMP and pa.types.is_timestamp(current):
        return lambda col: (
            col.cast(target)
            if current.tz is None
            else col.cast(pa.timestamp("us", current.tz)).cast(target)
        )
    return lambda col: pc.cast(col, target, safe=True)


def conform(
    batch: Any, hints: Sequence[ColumnHint], row_offset: int, where: Callable[[int], str]
) -> Any:
    """The batch with declared columns converted; a value that does not convert is an error
    naming column, place (``where(row_index)``) and value."""
    declared = dict(hints)
    columns = list(batch.columns)
    changed = False
    for i, name in enumerate(batch.schema.names):
        if name not in declared:
            continue
        convert = converter(declared[name], columns[i].type)
        if convert is None:
            continue
        try:
            columns[i] = convert(columns[i])
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            bad = first_bad_index(columns[i], convert)
            raise cell_error(
                name, declared[name], where(row_offset + bad), columns[i][bad].as_py()
            ) from None
        changed = True
    if not changed:
        return batch
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def cell_error(column: str, declared: ColumnType, where: str, value: Any) -> SourceError:
    shown = repr(value.decode("utf-8", "replace") if isinstance(value, bytes) else value)
    return SourceError(
        f"column {column}: {where} holds {shown}, which is not a valid {ColumnType(declared).value}; "
        f"fix the value, or declare the column's type to match the data",
        rule="type",
        column=column,
    )


def conversion_detail(exc: Exception) -> tuple[int, str] | None:
    """(column number, value) from Arrow's 'In CSV column #3: ... invalid value 'x'' message."""
    m = re.search(
        r"In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to [^:]+: (?:invalid value|.*? in) '(.*)'",
        str(exc),
        re.S,
    )
    return (int(m.group(1)), m.group(2)) if m else None
