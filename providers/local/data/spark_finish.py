"""The driver's end of a Spark materialisation: ordered parts -> the local engine's files.

Spark writes the transformed rows as parquet parts (``spark_engine``), each a run of
snapshot rows in order, carrying the row's position (``__row``), its split (``__split``:
0 train, 1 validation, plus 2 when the label is missing) and the source columns
(``__src_<name>``, for the statistics) and the segment columns (``__seg_<name>``). ``finish`` streams them in row order into ``train.parquet`` and
``validation.parquet`` with ``features_build``'s writer options and row-group boundaries
(one per ``BATCH_ROWS`` snapshot rows), so the tables are laid out as the local engine
lays them out, counts ``stats.json`` with the same code, and writes ``transform.json``
and ``manifest.json``. Memory stays at one batch of rows and one byte a row.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]
import pyarrow.parquet as pq  # type: ignore[import-untyped,unused-ignore]

from providers.base import JSON
from providers.durable import fsync_dir
from providers.local.data.features import FeatureError, FeatureSpec
from providers.local.data.features_build import (
    BATCH_ROWS,
    Rows,
    _dropped,
    _first_missing,
    _output_schema,
    _write_json,
    write_manifest,
    writer_options,
)
from providers.local.data.features_stats import FeatureSetStats
from trainer.config import SEGMENT_PREFIX

ROW, SPLIT, SOURCE = "__row", "__split", "__src_"
#: a segment column in the parts (Spark refuses the tables' dotted ``segment.<name>``)
SEGMENT = "__seg_"


def output_schema(spec: FeatureSpec, params: JSON, file_schema: pa.Schema) -> pa.Schema:
    return _output_schema(spec, params, file_schema)


def _decoded(field: pa.Field) -> pa.Field:
    kind = field.type
    return field.with_type(kind.value_type if pa.types.is_dictionary(kind) else kind)


def _ordered(staging: Path) -> Iterator[pa.Table]:
    """The parts' rows in snapshot order; a gap or overlap is an error, never a silent skip."""
    parts = []
    for path in staging.glob("part-*.parquet"):
        file = pq.ParquetFile(path)
        if file.metadata.num_rows:
            first = file.read_row_group(0, columns=[ROW])[ROW][0].as_py()
            parts.append((first, path))
    expected = 0
    for first, path in sorted(parts):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS):
            rows = batch.column(0).to_numpy()
            if rows[0] != expected or np.any(np.diff(rows) != 1):
                raise FeatureError(
                    f"the Spark engine's parts are not a run of rows from {expected} (part "
                    f"{path.name} starts at {first}); apply again"
                )
            expected += len(rows)
            yield pa.Table.from_batches([batch])


def _windows(staging: Path, batch_rows: int) -> Iterator[pa.Table]:
    """Tables of exactly batch_rows snapshot rows (the last shorter), as the local engine reads."""
    pending: list[pa.Table] = []
    held = 0
    for table in _ordered(staging):
        while table.num_rows:
            take = min(batch_rows - held, table.num_rows)
            pending.append(table.slice(0, take))
            held += take
            table = table.slice(take)
            if held == batch_rows:
                yield pa.concat_tables(pending).combine_chunks()
                pending, held = [], 0
    if held:
        yield pa.concat_tables(pending).combine_chunks()


def _write_tables(
    spec: FeatureSpec, params: JSON, source: Path, staging: Path, directory: Path
) -> JSON:
    file = pq.ParquetFile(source)
    schema = _output_schema(spec, params, file.schema_arrow)
    statistics = FeatureSetStats(spec, file.schema_arrow, file.metadata.num_rows)
    statistics.expect_outputs(params)
    splits = []
    writers = {
        split: pq.ParquetWriter(
            directory / f"{split}.parquet", schema, **writer_options(params, schema)
        )
        for split in ("train", "validation")
    }
    try:
        for window in _windows(staging, BATCH_ROWS):
            split = window[SPLIT].to_numpy()
            splits.append(split)
            rows = window[ROW].to_numpy()
            sampled = rows % statistics.stride == 0
            window = window.rename_columns(
                [
                    SEGMENT_PREFIX + c[len(SEGMENT) :] if c.startswith(SEGMENT) else c
                    for c in window.column_names
                ]
            )
            out = window.select(schema.names)
            sources = window.select([c for c in window.column_names if c.startswith(SOURCE)])
            names = [c[len(SOURCE) :] for c in sources.column_names]
            sources = sources.rename_columns(names).cast(
                pa.schema([_decoded(file.schema_arrow.field(c)) for c in names])
            )
            for name, code in (("train", 0), ("validation", 1)):
                keep = split == code
                part = out.filter(pa.array(keep))
                _first_missing(params, part)  # before the cast: features are required columns
                part = part.cast(schema)
                writers[name].write_table(part, row_group_size=BATCH_ROWS)
                statistics.add(name, sources.filter(pa.array(keep)), part, sampled[keep])
    finally:
        for writer in writers.values():
            writer.close()
    if sum(len(s) for s in splits) != file.metadata.num_rows:
        raise FeatureError("the Spark engine wrote fewer rows than the snapshot has; apply again")
    every = np.concatenate(splits) if splits else np.zeros(0, np.int8)
    return statistics.result(_dropped(Rows(every % 2 == 1, every >= 2)))


def finish(
    spec: FeatureSpec,
    params: JSON,
    source: Path,
    staging: Path,
    snapshot: str,
    feature_set_id: str,
    directory: Path,
) -> JSON:
    """Write the FeatureSet files into directory from Spark's parts; returns the manifest."""
    transform_bytes = _write_json(directory / "transform.json", params)
    try:
        stats = _write_tables(spec, params, source, staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _write_json(directory / "stats.json", stats)
    manifest = write_manifest(
        spec, params, stats, transform_bytes, snapshot, feature_set_id, directory
    )
    for path in directory.iterdir():
        fsync_dir(path)
    fsync_dir(directory)
    return manifest
