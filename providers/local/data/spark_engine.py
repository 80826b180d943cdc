"""FeatureSet materialisation on Apache Spark: the same outputs as ``features_build``.

The session and its checks are ``spark_session``'s. ``materialise_spark(...)`` has the
signature and result of ``features_build.materialise`` plus the engine settings (``master``
URL and friends) and does the row-wide work on the cluster:

- the split and the entity-key hashes run in the executors with the very functions the
  local engine uses (``features_hash``, ``features_build._temporal``), so a seeded random
  split selects the same rows; Spark's ``randomSplit`` is never used;
- fitting is Spark aggregations over the training rows: ``avg``, ``stddev_pop``, ``min``,
  ``max``, the exact ``percentile(x, 0.5)`` for medians, ``groupBy().count()`` for modes
  and onehot vocabularies; a transform is fitted on the output of the fitted ones before
  it (``apply_chain`` in the executors), as locally;
- the transform is ``apply_transform`` in the executors (``mapInArrow``), written as
  parquet parts to a staging folder inside the caller's temporary directory, with the
  segment columns carried as they are.

The driver then streams the parts in row order (``_metadata.row_index``) into
``train.parquet`` and ``validation.parquet`` with the local engine's writer options and
row-group boundaries, counting ``stats.json`` with the local engine's code
(``spark_finish``). Means and standard deviations may differ from the local engine's in
the last bits (another summation order): within a relative 1e-9 (tests check it); medians,
minima, maxima and vocabularies are exact. The staging folder needs to be on a filesystem
the executors and the driver share (a shared volume) when the cluster is remote.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]
import pyarrow.compute as pc  # type: ignore[import-untyped,unused-ignore]
import pyarrow.parquet as pq  # type: ignore[import-untyped,unused-ignore]

from providers.base import JSON
from providers.local.data.features import FeatureError, FeatureSpec, apply_chain, apply_transform
from providers.local.data.features_build import _temporal, check_columns
from providers.local.data.features_fit import FITTERS, _document, _require, _settled, needs_fit
from providers.local.data.features_hash import key_hash, unit_interval
from providers.local.data.spark_finish import ROW, SEGMENT, SOURCE, SPLIT, finish
from providers.local.data.spark_session import (
    SparkEngineError,
    SparkSettings,
    check_location,
    spark_job,
)

__all__ = ["SparkEngineError", "SparkSettings", "materialise_spark", "spark_safe"]

KEY = "__key"


# --- types ---------------------------------------------------------------------------


def _same_family(file: pa.DataType, spark: pa.DataType) -> bool:
    if pa.types.is_dictionary(file):
        file = file.value_type
    if file == spark:
        return True
    strings = (pa.types.is_string, pa.types.is_large_string)
    if any(f(file) for f in strings) and any(f(spark) for f in strings):
        return True
    if pa.types.is_timestamp(file) and pa.types.is_timestamp(spark):
        return (file.tz is None) == (spark.tz is None)
    return False


def check_types(frame: Any, schema: pa.Schema, columns: list[str], snapshot: str) -> None:
    """Every column the spec reads reaches the executors as the local engine reads it."""
    from pyspark.sql.pandas.types import to_arrow_type

    for name in columns:
        spark_type = frame.schema[name].dataType
        try:
            seen = to_arrow_type(spark_type)
        except Exception:
            seen = None
        if seen is None or not _same_family(schema.field(name).type, seen):
            raise FeatureError(
                f"column {name!r} of snapshot {snapshot} is {schema.field(name).type} in "
                f"parquet, which Spark reads as {spark_type.simpleString()}, so the spark "
                "engine would compute other values than the local one; cast the column in "
                "the Dataset (to int64, float64, string or a timestamp) or use the local engine"
            )


# --- executor side -------------------------------------------------------------------


def _prepared(spec: FeatureSpec, schema: pa.Schema, batch: pa.RecordBatch) -> pa.Table:
    """A batch as the local engine reads it, with the split and the key's hash added."""
    table = pa.Table.from_batches([batch])
    rows = table[ROW].combine_chunks()
    table = table.drop_columns([ROW]).cast(schema)
    if spec.row_number:
        key_columns: list[Any] = [rows]
    else:
        key_columns = [table[c] for c in spec.entity]
    key = key_hash(key_columns)
    if spec.split.get("type") == "temporal":
        validation = _temporal(table[spec.split["column"]].combine_chunks(), spec.split)
    else:
        fraction = float(spec.split.get("validationFraction", 0.2))
        validation = unit_interval(key, int(spec.split.get("seed", 42))) < fraction
    missing = np.asarray(table[spec.label].is_null().to_numpy(zero_copy_only=False), bool)
    split = (validation.astype(np.int8) + 2 * missing).astype(np.int8)  # +1 val, +2 no label
    table = table.append_column(ROW, rows).append_column(SPLIT, pa.array(split))
    return table.append_column(KEY, pa.array(key.view(np.int64)))


def _read(session: Any, location: str, columns: list[str]) -> Any:
    from pyspark.sql import functions as F

    frame = session.read.parquet(location)
    return frame.select(
        *[F.col(f"`{c}`") for c in columns], F.col("_metadata.row_index").alias(ROW)
    )


def spark_safe(schema: pa.Schema) -> pa.Schema:
    """schema with what Spark's Arrow exchange holds: timestamps in microseconds."""
    return pa.schema(
        [
            f.with_type(pa.timestamp("us", f.type.tz)) if pa.types.is_timestamp(f.type) else f
            for f in schema
        ]
    )


def _spark_schema(schema: pa.Schema) -> Any:
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(spark_safe(schema))


def _mapped(frame: Any, function: Any, schema: pa.Schema) -> Any:
    return frame.mapInArrow(function, _spark_schema(schema))


# --- the passes ----------------------------------------------------------------------


def _scan(spec: FeatureSpec, frame: Any, schema: pa.Schema, snapshot: str) -> Any:
    """The split flag and key hash of every row; checks the key and the training rows."""
    from pyspark.sql import functions as F

    out = pa.schema([pa.field(ROW, pa.int64()), pa.field(SPLIT, pa.int8()), (KEY, pa.int64())])

    def scan(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for column in spec.source_entity:
                if batch.column(batch.schema.get_field_index(column)).null_count:
                    raise FeatureError(
                        f"entity column {column!r} has missing values in snapshot {snapshot}; "
                        "every row needs a complete entity key"
                    )
            table = _prepared(spec, schema, batch).select([ROW, SPLIT, KEY])
            yield from table.to_batches()

    scanned = _mapped(frame, scan, out)
    counts = {row[SPLIT]: row["count"] for row in scanned.groupBy(SPLIT).count().collect()}
    if not counts.get(0):
        raise FeatureError(
            f"the split leaves no training rows in snapshot {snapshot}; check split "
            "(validationFrom, validationFraction) and the label column"
        )
    if not spec.row_number:
        repeated = [
            r[KEY] for r in scanned.groupBy(KEY).count().filter(F.col("count") > 1).collect()
        ]
        if repeated:
            _check_duplicates(spec, frame, scanned, repeated, snapshot)
    return counts


def _check_duplicates(
    spec: FeatureSpec, frame: Any, scanned: Any, repeated: list[int], snapshot: str
) -> None:
    from pyspark.sql import functions as F

    rows = scanned.filter(F.col(KEY).isin(repeated)).select(ROW)
    keys = frame.join(rows, ROW).groupBy(*spec.entity).count().filter(F.col("count") > 1)
    duplicates = keys.collect()
    if duplicates:  # not only a hash collision
        first = duplicates[0]
        values = tuple(first[c] for c in spec.entity)
        raise FeatureError(
            f"entity key ({', '.join(spec.entity)}) is not unique in snapshot {snapshot}: "
            f"{values!r} appears {first['count']} times ({len(duplicates)} key(s) repeat); "
            "each row must be one entity, so fix the data, add a column to entity, or key "
            "the rows by their position with entity: {rowNumber: true}"
        )


def _probe(name: str, prefix: list[JSON], kind: pa.DataType, transform: JSON) -> pa.DataType:
    """The type a fitted transform sees; its type errors raised now, as the local engine's."""
    values = apply_chain(name, prefix, pa.array([], type=kind))
    assert not isinstance(values, dict)
    FITTERS[transform["type"]](name, transform).add(values)
    return values.type


def _aggregate(frame: Any, column: str, transform: JSON, kind: pa.DataType, name: str) -> JSON:
    """One fitted transform's values from Spark aggregations over the training rows."""
    from pyspark.sql import functions as F

    value = F.col(column)
    numeric_kind = not (pa.types.is_string(kind) or pa.types.is_large_string(kind))
    if pa.types.is_floating(kind):
        frame = frame.filter(value.isNotNull() & ~F.isnan(value))
    else:
        frame = frame.filter(value.isNotNull())
    kind_name, strategy = transform["type"], transform.get("strategy")
    if kind_name == "onehot" or (kind_name == "fillna" and strategy == "mode"):
        if pa.types.is_temporal(kind):
            raise FeatureError(
                f"feature {name!r}: onehot needs categories, not {kind} values; use datetime "
                "to take parts of a time"
            )
        limit = int(transform.get("maxCategories") or 50) if kind_name == "onehot" else 1
        top = frame.groupBy(value).count().orderBy(F.desc("count"), value.asc()).limit(limit)
        values = [row[0] for row in top.collect()]
        if kind_name == "onehot":
            return {"categories": values}
        _require(len(values), name, "fillna")
        mode = values[0]
        integral = numeric_kind and pa.types.is_integer(kind)
        return {"fill": int(mode) if integral else (float(mode) if numeric_kind else mode)}
    row = frame.agg(
        F.count(value).alias("n"),
        F.avg(value).alias("mean"),
        F.stddev_pop(value).alias("std"),
        F.min(value).alias("min"),
        F.max(value).alias("max"),
        *([F.percentile(value, 0.5).alias("median")] if strategy == "median" else []),
    ).collect()[0]
    _require(int(row["n"]), name, kind_name)
    if kind_name == "standardize":
        std = float(row["std"])
        return {"mean": float(row["mean"]), "std": std if std > 0 else 1.0}
    if kind_name == "minmax":
        return {"min": float(row["min"]), "max": float(row["max"])}
    return {"fill": float(row["mean"] if strategy == "mean" else row["median"])}


def _fit(spec: FeatureSpec, frame: Any, schema: pa.Schema) -> JSON:
    """transform.json, fitted on the training rows in rounds, as ``fit_params`` does."""
    fitted: dict[str, list[JSON]] = {f.name: [] for f in spec.features}
    while True:
        pending = []
        for feature in spec.features:
            done = fitted[feature.name]
            while len(done) < len(feature.transforms) and not needs_fit(
                feature.transforms[len(done)]
            ):
                done.append(_settled(feature.transforms[len(done)]))
            if len(done) < len(feature.transforms):
                transform = feature.transforms[len(done)]
                kind = schema.field(feature.column).type
                probed = _probe(feature.name, list(done), kind, transform)
                pending.append((feature, transform, list(done), probed))
        if not pending:
            break
        out = pa.schema([pa.field(f"__v{i}", p[3]) for i, p in enumerate(pending)])

        def values(
            batches: Iterator[pa.RecordBatch], pending: list[Any] = pending, out: pa.Schema = out
        ) -> Any:
            for batch in batches:
                table = _prepared(spec, schema, batch)
                train = table.filter(pc.equal(table[SPLIT], 0))
                arrays = [
                    apply_chain(f.name, prefix, train[f.column].combine_chunks())
                    for f, _, prefix, _ in pending
                ]
                yield from pa.table(arrays, schema=out).cast(spark_safe(out)).to_batches()

        columns = _mapped(frame, values, out).cache()
        try:
            for i, (feature, transform, _, probed) in enumerate(pending):
                result = _aggregate(columns, f"__v{i}", transform, probed, feature.name)
                fitted[feature.name].append({**_settled(transform), **result})
        finally:
            columns.unpersist()
    return _document(spec, fitted)


def _transform(
    spec: FeatureSpec, params: JSON, frame: Any, schema: pa.Schema, out: pa.Schema, staging: Path
) -> None:
    """Every row transformed in the executors, written as ordered parquet parts."""
    sources = spec.source_columns()
    out = pa.schema(list(out)[: len(out) - len(spec.segments)])  # the segments come last
    parts = pa.schema(
        [pa.field(ROW, pa.int64()), pa.field(SPLIT, pa.int8()), *out]
        + [pa.field(SOURCE + c, schema.field(c).type) for c in sources]
        + [pa.field(SEGMENT + c, schema.field(c).type) for c in spec.segments]
    )

    def transform(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            table = _prepared(spec, schema, batch)
            if spec.row_number:
                table = table.append_column(spec.entity[0], table[ROW])
            result = apply_transform(params, table).cast(out)
            arrays = [table[ROW], table[SPLIT], *result.columns] + [table[c] for c in sources]
            arrays += [table[c] for c in spec.segments]  # carried as they are, after the label
            yield from pa.table(arrays, schema=parts).cast(spark_safe(parts)).to_batches()

    mapped = _mapped(frame, transform, parts).sortWithinPartitions(ROW)
    mapped.write.option("compression", "zstd").parquet(str(staging))


def materialise_spark(
    spec: FeatureSpec,
    source: Path,
    snapshot: str,
    feature_set_id: str,
    directory: Path,
    settings: SparkSettings,
) -> JSON:
    """``features_build.materialise`` on Spark: the same files in ``directory``."""
    from providers.local.data.spark_finish import output_schema

    location = check_location(str(source), settings)
    file_schema = pq.ParquetFile(source).schema_arrow
    check_columns(spec, file_schema, snapshot)
    split_column = str(spec.split.get("column") or "")
    columns = list(
        dict.fromkeys(
            [*spec.source_entity, *spec.source_columns(), spec.label, *spec.segments, split_column]
        )
    )
    columns = [c for c in columns if c]
    schema = pa.schema([file_schema.field(c).remove_metadata() for c in columns])
    schema = pa.schema(
        [f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f for f in schema]
    )
    with spark_job(settings) as session:
        frame = _read(session, location, columns)
        check_types(frame, schema, columns, snapshot)
        _scan(spec, frame, schema, snapshot)
        fitted: JSON = _fit(spec, frame, schema)
        params: JSON = json.loads(json.dumps(fitted, default=str))
        out = output_schema(spec, params, file_schema)
        staging = directory / ".spark-parts"
        _transform(spec, params, frame, schema, out, staging)
    return finish(spec, params, source, staging, snapshot, feature_set_id, directory)
