"""Stable 64-bit hashes of Arrow columns, identical in every process and on every machine.

Used by the ``hash`` transform (bucket = hash % buckets), by the random split (a row is a
validation row when the seeded hash of its entity key falls below the fraction) and by
the entity-uniqueness check. Python's ``hash()`` is salted per process, so it is never
used. The scheme, which serving code must not change (it is covered by
``TRANSFORM_CODE_VERSION``):

- strings and binaries: FNV-1a 64 over the UTF-8 bytes;
- integers, booleans, dates and timestamps: the value as a signed 64-bit integer
  (booleans 0/1, dates in days, timestamps in their unit);
- floats: the IEEE 754 bits of the float64 value (-0.0 as 0.0);
- nulls: a fixed constant;

each then finished with the splitmix64 mixer (so every bit depends on every input bit);
several columns combine in order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]
import pyarrow.compute as pc  # type: ignore[import-untyped,unused-ignore]

U64 = npt.NDArray[np.uint64]

FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)
NULL_HASH = np.uint64(0x9E3779B97F4A7C15)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def splitmix64(values: U64) -> U64:
    """The splitmix64 finaliser, element-wise (wrapping uint64 arithmetic)."""
    with np.errstate(over="ignore"):
        z = values + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _fnv1a(array: pa.Array) -> U64:
    """FNV-1a 64 of each string/binary value, vectorised over character positions."""
    array = pc.cast(array, pa.large_binary())
    n = len(array)
    buffers = array.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int64)[array.offset : array.offset + n + 1]
    data = (
        np.frombuffer(buffers[2], dtype=np.uint8)
        if buffers[2] is not None
        else np.zeros(0, np.uint8)
    )
    starts = offsets[:-1]
    lengths = offsets[1:] - starts
    hashes = np.full(n, FNV_OFFSET, dtype=np.uint64)
    rows = np.nonzero(lengths > 0)[0]
    position = 0
    with np.errstate(over="ignore"):
        while rows.size:
            byte = data[starts[rows] + position].astype(np.uint64)
            hashes[rows] = (hashes[rows] ^ byte) * FNV_PRIME
            position += 1
            rows = rows[lengths[rows] > position]
    return hashes


def _as_int64_bits(array: pa.Array) -> U64:
    kind = array.type
    if pa.types.is_boolean(kind):
        array = pc.cast(array, pa.int8())
    elif pa.types.is_date32(kind) or pa.types.is_date64(kind):
        array = pc.cast(pc.cast(array, pa.date32()), pa.int32())
    elif pa.types.is_timestamp(kind) or pa.types.is_duration(kind):
        array = array.view(pa.int64())
    filled = pc.fill_null(pc.cast(array, pa.int64()), 0)
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=np.int64).view(np.uint64)


def _float_bits(array: pa.Array) -> U64:
    values = np.asarray(
        pc.fill_null(pc.cast(array, pa.float64()), 0.0).to_numpy(zero_copy_only=False),
        dtype=np.float64,
    )
    values = np.where(values == 0.0, 0.0, values)  # -0.0 and 0.0 hash alike
    return values.view(np.uint64)


def by_indices(per_value: npt.NDArray[Any], encoded: pa.Array, missing: Any) -> Any:
    """A dictionary array's rows of ``per_value`` (one entry per dictionary value);
    ``missing`` where the row is null."""
    nulls = np.asarray(encoded.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    if not len(per_value):  # every row is null
        return np.full(len(encoded), missing, dtype=per_value.dtype)
    rows = per_value[np.asarray(encoded.indices.fill_null(0).to_numpy(), dtype=np.intp)]
    rows[nulls] = missing
    return rows


def column_hash(array: pa.Array | pa.ChunkedArray) -> U64:
    """The stable hash of every value of one column (see the module docstring)."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_dictionary(array.type):  # each distinct value hashed once
        hashes: U64 = by_indices(column_hash(array.dictionary), array, NULL_HASH)
        return hashes
    kind = array.type
    if (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
    ):
        raw = _fnv1a(array)
    elif pa.types.is_floating(kind):
        raw = _float_bits(array)
    elif pa.types.is_integer(kind) or pa.types.is_boolean(kind) or pa.types.is_temporal(kind):
        raw = _as_int64_bits(array)
    else:
        raw = _fnv1a(pc.cast(array, pa.string()))
    hashes = splitmix64(raw)
    if array.null_count:
        nulls = np.asarray(array.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        hashes[nulls] = NULL_HASH
    return hashes


def key_hash(columns: list[pa.Array | pa.ChunkedArray]) -> U64:
    """The stable hash of a (multi-column) key, combining the columns in order."""
    combined: U64 | None = None
    for column in columns:
        hashes = column_hash(column)
        with np.errstate(over="ignore"):
            combined = hashes if combined is None else splitmix64(combined * FNV_PRIME ^ hashes)
    assert combined is not None, "a key has at least one column"
    return combined


def unit_interval(hashes: U64, seed: int) -> npt.NDArray[np.float64]:
    """Seeded hashes mapped to [0, 1): the top 53 bits of splitmix64(hash ^ mixed seed)."""
    seed_bits = splitmix64(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))[0]
    mixed = splitmix64(hashes ^ seed_bits)
    return (mixed >> np.uint64(11)).astype(np.float64) / float(1 << 53)
