"""Where materialising reads a snapshot from: its parquet file, or its columns held in memory.

``Source.open(spec, path)`` reads the columns a FeatureSet reads once, on Arrow's
threads, when they are small enough (IN_MEMORY_BYTES, and a quarter of the free memory),
string columns that only onehot or hash read kept dictionary-encoded as parquet stores them;
else every pass reads them again from the file in batches. ``Source.batches`` gives the
same rows in the same batches either way (parquet's ``iter_batches`` crosses row groups,
so slicing the held table at the same multiples gives the same rows), so the outputs are
the same byte for byte (tests/data/test_features_reference.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]
import pyarrow.parquet as pq  # type: ignore[import-untyped,unused-ignore]

from providers.local.data.features import TAKE_DICTIONARIES, FeatureSpec

#: a snapshot whose columns read take at most this much memory, and at most a quarter of the
#: memory free, is read once and held: the bench's 10M rows (570 MiB held) then take 6.3 s
#: instead of 9.3 s, at a peak of 1.2 GiB instead of 0.65 (bench/features_bench.py). Their
#: memory is guessed as twice their uncompressed size in the file (336 MiB there).
IN_MEMORY_BYTES = 1 << 30


@dataclass(frozen=True)
class Source:
    """The snapshot's parquet file, and the columns materialising reads when they are held
    in memory (``table``): a small snapshot is read once, on Arrow's threads, instead of
    once per pass."""

    path: Path
    table: pa.Table | None = None

    @classmethod
    def open(cls, spec: FeatureSpec, path: Path) -> Source:
        """Hold the columns ``spec`` reads in memory when they are small enough."""
        file = pq.ParquetFile(path)
        columns = _read_columns(spec)
        metadata, names = file.metadata, file.schema_arrow.names
        wanted = [i for i, name in enumerate(names) if name in columns]
        size = sum(
            metadata.row_group(g).column(i).total_uncompressed_size
            for g in range(metadata.num_row_groups)
            for i in wanted
        )  # leaf columns are the top-level ones here: check_columns read the flat schema
        if len(names) != metadata.num_columns or 2 * size > _hold_limit():
            return cls(path)
        encoded = _dictionary_columns(spec, file.schema_arrow)
        return cls(path, pq.ParquetFile(path, read_dictionary=encoded).read(columns=columns))

    @property
    def schema(self) -> pa.Schema:
        return pq.ParquetFile(self.path).schema_arrow if self.table is None else self.table.schema

    def batches(self, columns: list[str], batch_rows: int) -> Iterator[pa.Table]:
        """The columns in batches of batch_rows rows (the last may be shorter), the same
        batches whether the file is read or the table sliced."""
        if self.table is None:
            reader = pq.ParquetFile(self.path)
            for batch in reader.iter_batches(batch_size=batch_rows, columns=columns):
                yield pa.Table.from_batches([batch])
            return
        table = self.table.select(columns)
        for start in range(0, table.num_rows, batch_rows):
            yield table.slice(start, batch_rows).combine_chunks()


def _hold_limit() -> int:
    """IN_MEMORY_BYTES, or a quarter of the memory free now where that is less."""
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not a POSIX system that can tell
        return IN_MEMORY_BYTES
    return min(IN_MEMORY_BYTES, free // 4)


def _dictionary_columns(spec: FeatureSpec, schema: pa.Schema) -> list[str]:
    """The string columns read only by features whose transforms start with onehot or hash
    (which take dictionary-encoded values): held dictionary-encoded, as parquet stores them,
    each distinct value is decoded, compared and hashed once, not once per row."""
    others = {*spec.source_entity, spec.label, *spec.segments}
    if spec.split.get("type") == "temporal":
        others.add(str(spec.split["column"]))
    chains: dict[str, list[bool]] = {}
    for feature in spec.features:
        takes = bool(feature.transforms) and feature.transforms[0]["type"] in TAKE_DICTIONARIES
        chains.setdefault(feature.column, []).append(takes)
    return [
        column
        for column, takes in chains.items()
        if all(takes)
        and column not in others
        and (
            pa.types.is_string(schema.field(column).type)
            or pa.types.is_large_string(schema.field(column).type)
        )
    ]


def _read_columns(spec: FeatureSpec) -> list[str]:
    """Every column of the snapshot that materialising reads."""
    columns = [*spec.source_entity, *spec.source_columns(), spec.label, *spec.segments]
    if spec.split.get("type") == "temporal":
        columns.append(str(spec.split["column"]))
    return list(dict.fromkeys(columns))
