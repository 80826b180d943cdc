"""Uniqueness of a column over a streamed table, in 8 bytes per row.

Each batch's non-null values become 64-bit keys: the value itself for ints, dates,
timestamps and bools; the IEEE bits for floats (with -0.0 folded into 0.0); an FNV-1a
hash of the UTF-8 bytes for strings. At the end a sorted copy of the keys (16 bytes per
row while sorting) tells whether any key repeats; only then are they sorted again with
their row order kept (about 24 bytes per row) to find the first duplicate. A hash match
between strings is confirmed against the values themselves, read back from the written
snapshot, so a collision can never fail a dataset.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


def string_keys(column: Any) -> Any:
    """FNV-1a 64-bit hashes of a string column's values (no nulls), vectorised by position."""
    column = column.cast(pa.large_string())
    offsets = np.frombuffer(column.buffers()[1], dtype=np.int64)[
        column.offset : column.offset + len(column) + 1
    ]
    data = np.frombuffer(column.buffers()[2] or b"", dtype=np.uint8)
    starts, lengths = offsets[:-1], np.diff(offsets)
    keys = np.full(len(column), _FNV_OFFSET, dtype=np.uint64)
    active = np.flatnonzero(lengths > 0)
    position = 0
    with np.errstate(over="ignore"):
        while len(active):
            keys[active] ^= data[starts[active] + position].astype(np.uint64)
            keys[active] *= _FNV_PRIME
            position += 1
            active = active[lengths[active] > position]
    return keys.view(np.int64)


def value_keys(column: Any) -> Any:
    """64-bit keys of a column's values; equal values give equal keys."""
    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return string_keys(column)
    if pa.types.is_floating(kind):
        values = np.asarray(column.cast(pa.float64()).to_numpy(zero_copy_only=False)) + 0.0
        return values.view(np.int64)
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind) or pa.types.is_boolean(kind):
        column = column.cast(pa.int64()) if not pa.types.is_date(kind) else column.cast(pa.int32())
    return np.asarray(column.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


@dataclass
class Duplicate:
    count: int  # rows whose value appeared on an earlier row
    value: Any  # the first duplicated value
    rows: tuple[int, int]  # 0-based rows of its first two occurrences


class UniqueKeys:
    """Keys of one column, batch by batch; rows are found back from key positions."""

    def __init__(self, exact: bool) -> None:
        self.exact = exact  # keys are the values (not hashes)
        self._keys: list[Any] = []
        #: per batch: (first key position, first row, rows of its keys when it had nulls)
        self._spans: list[tuple[int, int, Any]] = []
        self._count = 0

    def add(self, column: Any, row_offset: int) -> None:
        rows = None
        if column.null_count:
            valid = column.is_valid()
            rows = np.flatnonzero(np.asarray(valid.to_numpy(zero_copy_only=False), dtype=bool))
            column = column.filter(valid)
        self._spans.append((self._count, row_offset, rows))
        self._keys.append(value_keys(column))
        self._count += len(column)

    def _row(self, position: int) -> int:
        starts = [span[0] for span in self._spans]
        start, row_offset, rows = self._spans[bisect.bisect_right(starts, position) - 1]
        index = position - start
        return row_offset + (int(rows[index]) if rows is not None else index)

    def duplicates(self, value_at: Callable[[list[int]], list[Any]]) -> Duplicate | None:
        """The duplicates found; ``value_at(rows)`` reads values back to confirm hashes."""
        if not self._keys:
            return None
        keys = np.concatenate(self._keys)
        self._keys = []
        if not _has_repeats(keys):  # the usual case: one plain sort, no row order to keep
            return None
        order = np.argsort(keys, kind="stable")  # equal keys keep their row order
        keys = keys[order]
        same = np.flatnonzero(keys[1:] == keys[:-1]) + 1  # sorted positions of repeats
        del keys
        if not len(same):
            return None
        if not self.exact:
            same = self._confirmed(same, order, value_at)
            if not len(same):
                return None
        repeat_rows = [self._row(int(p)) for p in order[same[:10_000]]]
        k = int(np.argmin(repeat_rows))
        first_repeat = same[k]
        group_start = first_repeat
        while _same_group(same, group_start):  # back to the group's first (earliest) row
            group_start -= 1
        earliest = self._row(int(order[group_start]))
        value = value_at([earliest])[0]
        return Duplicate(len(same), value, (earliest, repeat_rows[k]))

    def _confirmed(self, same: Any, order: Any, value_at: Callable[[list[int]], list[Any]]) -> Any:
        """The positions among ``same`` whose values equal their predecessor's (not a collision)."""
        limit = same[:10_000]  # enough to tell; beyond that, a hash collision is out of question
        values = value_at([self._row(int(p)) for p in order[limit]])
        before = value_at([self._row(int(p)) for p in order[limit - 1]])
        keep = [i for i, (a, b) in enumerate(zip(values, before, strict=True)) if a == b]
        if len(same) > len(limit):
            return np.concatenate([limit[keep], same[len(limit) :]])
        return limit[keep]


def _same_group(same: Any, position: int) -> bool:
    """Whether sorted position ``position`` repeats the key just before it."""
    i = int(np.searchsorted(same, position))
    return i < len(same) and int(same[i]) == position


def _has_repeats(keys: Any) -> bool:
    """Whether any key appears twice: none when they only ever grow (ids often do), else
    a sorted copy compared with its neighbours."""
    if bool(np.all(keys[1:] > keys[:-1])):
        return False
    ordered = np.sort(keys)
    return bool(np.any(ordered[1:] == ordered[:-1]))
