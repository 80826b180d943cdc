"""Materialising a FeatureSet: split, fit on train, transform, write, batch by batch.

``materialise(spec, source, snapshot, directory)`` reads the Dataset snapshot's parquet
file in batches and writes into ``directory`` (a fresh temporary directory the caller
renames into place): ``train.parquet``, ``validation.parquet``, ``transform.json``,
``stats.json`` and ``manifest.json``. The columns it reads are read once and held in
memory when they are small enough (``features_source.Source``), else read again from the
file for each pass. Passes:

1. scan: the entity key (unique, no missing parts), the split of every row, missing labels;
2. fit: one pass per run of fitted transforms, over training rows only (``features_fit``);
3. transform: each batch's rows of each split taken, then ``apply_transform``-ed,
   appended to that split's table and counted into the statistics.

The transform pass overlaps its parts on threads (pyarrow's reader, kernels and parquet
writer and numpy's reductions release the GIL): ``sink.Prefetch`` decodes the next batch
while this one is transformed, one ``sink.ParquetSink`` per table encodes, compresses and
hashes the previous one (then writes the footer and syncs the file), and a ``sink.Worker``
counts the statistics. When the snapshot is held, the source columns' statistics are
counted during the fit instead, on a thread of their own. Streaming, only
per-row masks and hashes (10 bytes a row) and the values a median or mode needs are held
for the whole file, so memory stays flat in the number of columns.
Rows whose label is missing are dropped from both tables and counted in stats.json
(``droppedNullLabel``). Parquet files are written with fixed options (``writer_options``)
and fixed batch boundaries, so the same inputs give byte-identical tables.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]
import pyarrow.compute as pc  # type: ignore[import-untyped,unused-ignore]
import pyarrow.parquet as pq  # type: ignore[import-untyped,unused-ignore]

from providers.base import JSON
from providers.durable import fsync_dir, sha256_file
from providers.local.data import sink
from providers.local.data.features import (
    TRANSFORM_CODE_VERSION,
    FeatureError,
    FeatureSpec,
    apply_transform,
    one_array,
    typed_scalar,
)
from providers.local.data.features_fit import fit_params
from providers.local.data.features_hash import key_hash, unit_interval
from providers.local.data.features_source import Source
from providers.local.data.features_stats import FeatureSetStats
from providers.local.data.sink import ParquetSink, Prefetch, Worker, memory_pool

BATCH_ROWS = 131_072
BOOLS = npt.NDArray[np.bool_]
SPLITS = ("train", "validation")
#: bump when the tables' bytes change for the same values (parquet options, row groups);
#: part of every FeatureSet id (``providers.local.featureset`` repeats it, a test checks).
#: 3: feature columns required (not nullable: no definition levels to write or read, a
#: fifth less time writing the bench's tables) and without min/max statistics (a tenth
#: less; rows in no order make them prune nothing, and stats.json has better ones), the
#: key, label and segment columns keep theirs; 2: LZ4 without dictionary pages (1: zstd
#: level 3, with dictionary pages)
TABLE_FORMAT = 3
#: snapshots' options, but LZ4: feature tables are derived and read by every training run,
#: so writing and reading fast beat the smallest file (zstd level 1 costs 50% more time
#: writing the bench's tables, which it makes 40% smaller: bench/features_bench.py)
WRITER_OPTIONS: JSON = {**sink.WRITER_OPTIONS, "compression": "lz4", "compression_level": None}


@dataclass
class Rows:
    """Per-row facts from the scan pass, for the whole snapshot."""

    validation: BOOLS
    missing_label: BOOLS

    def train_keep(self, start: int, stop: int) -> BOOLS:
        return ~self.validation[start:stop] & ~self.missing_label[start:stop]

    def validation_keep(self, start: int, stop: int) -> BOOLS:
        return self.validation[start:stop] & ~self.missing_label[start:stop]


def check_columns(spec: FeatureSpec, schema: pa.Schema, snapshot: str) -> None:
    """Every column the spec reads exists in the snapshot; else name the first that does not."""
    have = set(schema.names)
    listed = ", ".join(schema.names)
    for feature in spec.features:
        if feature.column not in have:
            raise FeatureError(
                f"feature {feature.name!r} reads column {feature.column!r}, which snapshot "
                f"{snapshot} does not have (it has: {listed}); fix features[].column or the Dataset"
            )
    if spec.row_number and spec.entity[0] in have:
        raise FeatureError(
            f"entity {{rowNumber: true}} makes the key column {spec.entity[0]!r}, which snapshot "
            f"{snapshot} already has; give the key another name: entity: {{rowNumber: true, "
            "name: ...}"
        )
    wanted = [("entity column", c) for c in spec.source_entity] + [("label column", spec.label)]
    wanted += [("segment column", c) for c in spec.segments]
    if spec.split.get("type") == "temporal":
        wanted.append(("split column", str(spec.split.get("column"))))
    for what, column in wanted:
        if column not in have:
            raise FeatureError(
                f"{what} {column!r} is not in snapshot {snapshot} (it has: {listed})"
            )


def _temporal(column: pa.Array, split: JSON) -> BOOLS:
    threshold = split.get("validationFrom")
    name = split.get("column")
    if column.null_count:
        raise FeatureError(
            f"split column {name!r} has {column.null_count} missing value(s); every row needs "
            "a time to be split, so fill them in the Dataset or split on another column"
        )
    try:
        if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
            bound = pa.scalar(float(threshold))  # type: ignore[arg-type]
            column = pc.cast(column, pa.float64())
        else:
            bound = typed_scalar(threshold if isinstance(threshold, str) else None, column.type)
    except (ValueError, TypeError, pa.ArrowInvalid):
        raise FeatureError(
            f"split.validationFrom {threshold!r} cannot be compared with split column {name!r} "
            f"({column.type}); write a number for number columns, a date such as 2024-01-31 "
            "for date and time columns"
        ) from None
    return np.asarray(pc.greater_equal(column, bound).to_numpy(zero_copy_only=False), bool)


def scan(spec: FeatureSpec, source: Source, snapshot: str, batch_rows: int) -> Rows:
    """Pass 1: entity uniqueness, the split and missing labels for every row."""
    temporal = spec.split.get("type") == "temporal"
    columns = list(dict.fromkeys([*spec.source_entity, spec.label]))
    columns += [str(spec.split["column"])] if temporal else []
    hashes, validation, missing = [], [], []
    ordered = _IncreasingKey(spec, source.schema)
    start = 0
    for batch in source.batches(list(dict.fromkeys(columns)), batch_rows):
        for column in spec.source_entity:
            if batch[column].null_count:
                raise FeatureError(
                    f"entity column {column!r} has missing values in snapshot {snapshot}; "
                    "every row needs a complete entity key"
                )
        ordered.add(batch)
        if temporal:
            validation.append(_temporal(one_array(batch[spec.split["column"]]), spec.split))
        else:
            key = key_hash(_key_columns(spec, batch, start))
            hashes.append(key)
            fraction = float(spec.split.get("validationFraction", 0.2))
            validation.append(unit_interval(key, int(spec.split.get("seed", 42))) < fraction)
        missing.append(np.asarray(batch[spec.label].is_null().to_numpy(), dtype=bool))
        start += batch.num_rows
    if not spec.row_number and not ordered.increasing:  # row numbers are unique by making
        if temporal:  # the split did not need the key's hashes
            entity = list(spec.entity)
            hashes = [key_hash([b[c] for c in entity]) for b in source.batches(entity, batch_rows)]
        _check_unique(spec, source.path, snapshot, hashes)
    empty = np.zeros(0, bool)
    return Rows(
        np.concatenate(validation) if validation else empty,
        np.concatenate(missing) if missing else empty,
    )


class _IncreasingKey:
    """Whether a one-column integer key only ever increases, and so is unique without
    sorting its hashes (the common case: an id column in the order rows were added)."""

    def __init__(self, spec: FeatureSpec, schema: pa.Schema) -> None:
        self.column = spec.source_entity[0] if len(spec.source_entity) == 1 else ""
        self.increasing = bool(self.column) and pa.types.is_integer(schema.field(self.column).type)
        self.last: Any = None

    def add(self, batch: pa.Table) -> None:
        if not self.increasing or not batch.num_rows:
            return
        values = batch[self.column].to_numpy()
        self.increasing = bool(np.all(values[1:] > values[:-1])) and (
            self.last is None or values[0] > self.last
        )
        self.last = values[-1]


def _row_numbers(start: int, count: int) -> pa.Array:
    """The row-number key of ``count`` rows from row ``start`` of the snapshot (from 0)."""
    return pa.array(np.arange(start, start + count, dtype=np.int64))


def _key_columns(spec: FeatureSpec, batch: pa.Table, start: int) -> list[Any]:
    if spec.row_number:
        return [_row_numbers(start, batch.num_rows)]
    return [batch[c] for c in spec.entity]


def _check_unique(
    spec: FeatureSpec, source: Path, snapshot: str, batches: list[npt.NDArray[np.uint64]]
) -> None:
    """Refuse a key that repeats: equal hashes first, then the values behind them."""
    hashes = np.concatenate(batches) if batches else np.zeros(0, np.uint64)
    ordered = np.sort(hashes)
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]
    if not repeated.size:
        return
    rows = np.nonzero(np.isin(hashes, repeated))[0]
    keys = pq.read_table(source, columns=list(spec.entity)).take(pa.array(rows)).to_pylist()
    seen: dict[tuple[Any, ...], int] = {}
    for key in keys:
        values = tuple(key[c] for c in spec.entity)
        seen[values] = seen.get(values, 0) + 1
    duplicates = {k: n for k, n in seen.items() if n > 1}
    if duplicates:  # not only a hash collision
        first, count = next(iter(duplicates.items()))
        raise FeatureError(
            f"entity key ({', '.join(spec.entity)}) is not unique in snapshot {snapshot}: "
            f"{first!r} appears {count} times ({len(duplicates)} key(s) repeat); each row must "
            "be one entity, so fix the data, add a column to entity, or key the rows by "
            "their position with entity: {rowNumber: true}"
        )


def _train_batches(source: Source, rows: Rows, batch_rows: int) -> Any:
    def batches(columns: list[str]) -> Iterator[pa.Table]:
        start = 0
        for batch in source.batches(columns, batch_rows):
            stop = start + batch.num_rows
            yield _kept(batch, rows.train_keep(start, stop))
            start = stop

    return batches


def _kept(table: pa.Table, keep: BOOLS) -> pa.Table:
    """The rows where keep is true, in order: a take of their positions, which pyarrow 25
    does 3 to 9 times faster than a filter by the mask on the bench's columns (positions
    of the mask's own rows, so not checked against the table's length again)."""
    return pc.take(table, pa.array(np.flatnonzero(keep)), boundscheck=False)


def writer_options(params: JSON, schema: pa.Schema) -> JSON:
    """The tables' parquet options: WRITER_OPTIONS, statistics for every column but the
    features (TABLE_FORMAT)."""
    features = set(params["outputs"])
    return {**WRITER_OPTIONS, "write_statistics": [c for c in schema.names if c not in features]}


def _output_schema(spec: FeatureSpec, params: JSON, schema: pa.Schema) -> pa.Schema:
    if spec.row_number:
        fields = [pa.field(spec.entity[0], pa.int64())]
    else:
        fields = [schema.field(c).remove_metadata() for c in params["entity"]]
    fields += [pa.field(name, pa.float32(), nullable=False) for name in params["outputs"]]
    fields.append(schema.field(params["label"]).remove_metadata())
    prefix = _segment_prefix(spec)
    fields += [
        pa.field(prefix + c, schema.field(c).type) for c in spec.segments
    ]  # behind the label: readers that take the features by name never see them
    return pa.schema(fields)


def _first_missing(params: JSON, table: pa.Table) -> None:
    for feature in params["features"]:
        for name in feature["outputs"]:
            if table[name].null_count:
                raise FeatureError(
                    f"feature {feature['name']!r} (column {feature['column']!r}) still has "
                    f"missing values after its transforms ({table[name].null_count} in a batch "
                    "of rows); add {type: fillna, strategy: median} (or value: ...) first in "
                    "its transforms"
                )


def _count_sources(
    spec: FeatureSpec, statistics: FeatureSetStats, source: Source, rows: Rows, batch_rows: int
) -> None:
    """The source columns' statistics, each split's rows taken from every batch, and their
    figures (quantiles) worked out."""
    start = 0
    for batch in source.batches(spec.source_columns(), batch_rows):
        stop = start + batch.num_rows
        sampled = statistics.sampled(start, stop)
        for split, keep in _keeps(rows, start, stop).items():
            statistics.sources.add(split, _kept(batch, keep), sampled[keep])
        start = stop
    statistics.sources_counted()


def _keeps(rows: Rows, start: int, stop: int) -> dict[str, BOOLS]:
    return {"train": rows.train_keep(start, stop), "validation": rows.validation_keep(start, stop)}


def _write_tables(
    spec: FeatureSpec,
    params: JSON,
    source: Source,
    rows: Rows,
    directory: Path,
    batch_rows: int,
    statistics: FeatureSetStats,
    sources_counted: Worker | None,
) -> tuple[JSON, dict[str, str]]:
    """Pass 3: transform every batch, append it to the tables, count the statistics (the
    sources' too, unless ``sources_counted`` counts them); returns the statistics and each
    table's sha256, hashed as it was written."""
    schema = _output_schema(spec, params, pq.ParquetFile(source.path).schema_arrow)
    statistics.expect_outputs(params)
    columns = list(
        dict.fromkeys([*spec.source_entity, *spec.source_columns(), spec.label, *spec.segments])
    )
    sinks: dict[str, ParquetSink] = {}
    counting = Worker(lambda item: statistics.add(*item), name="pipeform-stats")
    try:
        for split in SPLITS:
            sinks[split] = ParquetSink(
                directory / f"{split}.parquet", schema, sync=True, **writer_options(params, schema)
            )
        start = 0
        with Prefetch(source.batches(columns, batch_rows)) as batches:
            for batch in batches:
                stop = start + batch.num_rows
                if spec.row_number:  # the key rides along as a column, as a key column would
                    batch = batch.append_column(spec.entity[0], _row_numbers(start, batch.num_rows))
                sampled = statistics.sampled(start, stop)
                for split, keep in _keeps(rows, start, stop).items():
                    # each split's rows are transformed apart (the transforms work row by row):
                    # filtering the few source columns costs less than filtering the features
                    kept = _kept(batch, keep)
                    part = _transformed(spec, params, kept, schema)
                    sinks[split].put(part)  # one row group, as the Spark engine writes it
                    sources = None if sources_counted else kept.select(spec.source_columns())
                    counting.put((split, sources, part, sampled[keep]))
                start = stop
        for split in SPLITS:  # footers written and files synced on the writer threads
            sinks[split].finish()
        counting.close()
        if sources_counted:
            sources_counted.close()
        stats = statistics.result(_dropped(rows))  # while the writers finish their last row groups
        digests = {split: sinks.pop(split).close() for split in SPLITS}
    finally:
        counting.abort()
        for unfinished in sinks.values():  # an error: stop writing, the caller removes all
            unfinished.abort()
    return stats, digests


def _dropped(rows: Rows) -> dict[str, int]:
    """Each split's rows left out for a missing label."""
    return {
        "train": int((~rows.validation & rows.missing_label).sum()),
        "validation": int((rows.validation & rows.missing_label).sum()),
    }


def _transformed(spec: FeatureSpec, params: JSON, batch: pa.Table, schema: pa.Schema) -> pa.Table:
    """A batch's rows as the tables hold them: key, features, label, segment columns (a
    feature still missing values is refused)."""
    out = apply_transform(params, batch)
    _first_missing(params, out)
    prefix = _segment_prefix(spec)
    for column in spec.segments:
        out = out.append_column(prefix + column, batch[column])
    return out.cast(schema)


def _segment_prefix(spec: FeatureSpec) -> str:
    """The column-name prefix of segment columns (imported only when there are some)."""
    if not spec.segments:
        return ""
    from trainer.config import SEGMENT_PREFIX

    return SEGMENT_PREFIX


def _write_json(path: Path, document: JSON) -> bytes:
    data = (json.dumps(document, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()
    path.write_bytes(data)
    return data


def materialise(
    spec: FeatureSpec,
    source: Path,
    snapshot: str,
    feature_set_id: str,
    directory: Path,
    batch_rows: int = BATCH_ROWS,
) -> JSON:
    """Write the FeatureSet files into directory; returns the manifest."""
    check_columns(spec, pq.ParquetFile(source).schema_arrow, snapshot)
    with memory_pool():
        held = Source.open(spec, source)
        rows = scan(spec, held, snapshot, batch_rows)
        if not rows.train_keep(0, len(rows.validation)).any():
            raise FeatureError(
                f"the split leaves no training rows in snapshot {snapshot}; check split "
                "(validationFrom, validationFraction) and the label column"
            )
        statistics = FeatureSetStats(
            spec, pq.ParquetFile(source).schema_arrow, len(rows.validation)
        )
        early = None
        if held.table is not None:  # the sources counted on the core the fit leaves idle
            # (with table format 3: 0.35 s instead of 0.39 s a 1M-row materialisation, median
            # of warm runs, bench/features_bench.py --repeat; streamed, they are counted later)
            early = Worker(
                lambda _: _count_sources(spec, statistics, held, rows, batch_rows),
                name="pipeform-source-stats",
            )
            early.put(None)
        try:
            fitted = fit_params(spec, _train_batches(held, rows, batch_rows))
            # serving reads transform.json back: apply exactly what it will read
            params: JSON = json.loads(json.dumps(fitted, default=str))
            transform_bytes = _write_json(directory / "transform.json", params)
            stats, digests = _write_tables(
                spec, params, held, rows, directory, batch_rows, statistics, early
            )
        finally:
            if early is not None:
                early.abort()
    _write_json(directory / "stats.json", stats)
    manifest = write_manifest(
        spec, params, stats, transform_bytes, snapshot, feature_set_id, directory, digests
    )
    for path in directory.iterdir():
        if path.suffix != ".parquet":  # the tables' writers synced them
            fsync_dir(path)
    fsync_dir(directory)
    return manifest


def write_manifest(
    spec: FeatureSpec,
    params: JSON,
    stats: JSON,
    transform_bytes: bytes,
    snapshot: str,
    feature_set_id: str,
    directory: Path,
    digests: dict[str, str] | None = None,
) -> JSON:
    """The materialisation's manifest.json, the same from either engine (local, Spark);
    ``digests``: each table's sha256, when the writer hashed it (else the files are read)."""
    if digests is None:
        digests = {split: sha256_file(directory / f"{split}.parquet") for split in SPLITS}
    manifest = {
        "id": feature_set_id,
        "datasetSnapshot": snapshot,
        "transformVersion": TRANSFORM_CODE_VERSION,
        "tableFormat": TABLE_FORMAT,
        "rows": stats["rows"],
        "droppedNullLabel": stats["droppedNullLabel"],
        "sha256": dict(digests),
        "transformDigest": "sha256:" + hashlib.sha256(transform_bytes).hexdigest(),
        "features": params["outputs"],
        "featureTypes": {name: "float32" for name in params["outputs"]},
        "entity": list(spec.entity),
        "label": spec.label,
        "segments": list(spec.segments),
        "split": spec.split,
        "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    _write_json(directory / "manifest.json", manifest)
    return manifest
