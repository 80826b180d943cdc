"""A Dataset's per-column rules checked on Apache Spark, with the local engine's results.

When the Workspace selects the spark engine, a snapshot is still streamed into its
``data.parquet`` on this machine (and its row counts, missing-value counts and drift
histograms are taken while it streams: they are cheap, and a drift sample depends on
row order), while the per-value rules (``nullable``, ``min``, ``max``, ``allowed``,
``regex``, ``unique``, and the minima and maxima ``freshness`` reads) run on Spark:

- each batch of rows is checked in the executors by the very ``Validator`` code the local
  engine runs (``_observe_column``: the same pyarrow kernels and regex engine), with rows
  numbered by their place in the snapshot (``_metadata.row_index``); the executors return
  one small state per batch, which the driver merges (counts add up, the first offender is
  the one on the earliest row, minima and maxima combine);
- ``unique`` is a Spark ``groupBy`` over the column, and the first repeat found by a join.

The merged state is put into the ``Validator``, whose ``finish`` then makes the checks, the
report and its summary exactly as locally: every number is the same, not merely close.
(Float ``unique``: Spark groups -0.0 with 0.0 and NaN with NaN; the local engine compares
bit patterns.)
"""

from __future__ import annotations

import itertools
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]
import pyarrow.parquet as pq  # type: ignore[import-untyped,unused-ignore]

from providers.base import JSON, PermanentError
from providers.local.data.spark_finish import ROW
from providers.local.data.spark_session import SparkSettings, check_location, spark_job
from providers.local.data.uniq import Duplicate, UniqueKeys
from providers.local.data.validate import ColumnState, Offenders, Validator

OFFENDERS = ("below", "above", "outside", "mismatched")


class FoundDuplicates(UniqueKeys):
    """What Spark found for a ``unique`` column: ``duplicates`` as ``UniqueKeys`` gives it."""

    def __init__(self, found: tuple[int, int, int] | None) -> None:
        super().__init__(exact=True)
        self.found = found  # (repeated rows, first row of the value, its first repeat)

    def duplicates(self, value_at: Callable[[list[int]], list[Any]]) -> Duplicate | None:
        if self.found is None:
            return None
        count, earliest, repeat = self.found
        return Duplicate(count, value_at([earliest])[0], (earliest, repeat))


def _batch_states(
    validator: Validator, names: list[str]
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The executors' work: the column states of each run of consecutive rows, pickled."""
    spec, now = validator.spec, validator.now

    def check(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for run in _runs(batch):
                here = Validator(spec, str, None, now)  # places are row numbers, named later
                here.rows = int(run.column(run.schema.get_field_index(ROW))[0].as_py())
                error = ""
                try:
                    for name in names:
                        state = here.state[name]
                        state.unique = None  # Spark groups the values instead
                        here._observe_column(state, run.column(run.schema.get_field_index(name)))
                except PermanentError as exc:  # a regex RE2 cannot use: one clear error
                    error = str(exc)
                states = {name: here.state[name] for name in names}
                yield pa.RecordBatch.from_pydict(
                    {"state": [pickle.dumps((error, states))]}, schema=STATE_SCHEMA
                )

    return check


STATE_SCHEMA = pa.schema([pa.field("state", pa.binary())])


def _runs(batch: pa.RecordBatch) -> Iterator[pa.RecordBatch]:
    """A batch cut where its rows stop being consecutive snapshot rows (a partition may hold
    several splits of the file), so that each run's first offender is its earliest."""
    rows = np.asarray(batch.column(batch.schema.get_field_index(ROW)).to_numpy(), np.int64)
    cuts = [0, *(np.flatnonzero(np.diff(rows) != 1) + 1).tolist(), len(rows)]
    for start, stop in itertools.pairwise(cuts):
        if stop > start:
            yield batch.slice(start, stop - start)


def _merge_offenders(into: Offenders, part: Offenders) -> None:
    if part.count and (not into.count or int(part.where) < int(into.where)):
        into.first, into.where = part.first, part.where
    into.count += part.count


def _merge(into: ColumnState, part: ColumnState) -> None:
    into.nulls += part.nulls
    if part.first_null and (not into.first_null or int(part.first_null) < int(into.first_null)):
        into.first_null = part.first_null
    if part.low is not None:
        into.low = part.low if into.low is None else min(into.low, part.low)
    if part.high is not None:
        into.high = part.high if into.high is None else max(into.high, part.high)
    for name in OFFENDERS:
        _merge_offenders(getattr(into, name), getattr(part, name))


def _placed(state: ColumnState, place: Callable[[int], str]) -> None:
    """Row numbers (as the executors wrote them) into the source's places (file:line)."""
    if state.first_null:
        state.first_null = place(int(state.first_null))
    for name in OFFENDERS:
        offenders = getattr(state, name)
        if offenders.count:
            offenders.where = place(int(offenders.where))


def _unique(frame: Any, name: str) -> tuple[int, int, int] | None:
    """(repeated rows, first row of the first repeated value, its first repeat) or None."""
    from pyspark.sql import functions as F

    value = F.col(f"`{name}`")
    groups = (
        frame.filter(value.isNotNull())
        .groupBy(value.alias("__value"))
        .agg(F.count(F.lit(1)).alias("n"), F.min(ROW).alias("__first"))
        .filter(F.col("n") > 1)
        .cache()
    )
    try:
        total = groups.agg(F.sum("n").alias("rows"), F.count(F.lit(1)).alias("values")).collect()
        if not total or not total[0]["values"]:
            return None
        repeated = int(total[0]["rows"]) - int(total[0]["values"])
        joined = frame.select(value.alias("__value"), F.col(ROW)).join(groups, "__value")
        first = joined.filter(F.col(ROW) > F.col("__first")).orderBy(ROW).limit(1).collect()[0]
        return repeated, int(first["__first"]), int(first[ROW])
    finally:
        groups.unpersist()


def observe_on_spark(validator: Validator, data: Path, config: JSON) -> None:
    """Fill ``validator``'s per-column states from ``data`` (the streamed snapshot) on Spark."""
    from providers.local.data.spark_engine import check_types

    settings = SparkSettings.from_config(config)
    location = check_location(str(data), settings)
    file_schema = pq.ParquetFile(data).schema_arrow
    names = [n for n in validator.state if n in file_schema.names]
    if not names or not validator.rows:
        return
    with spark_job(settings) as session:
        from pyspark.sql import functions as F

        frame = session.read.parquet(location).select(
            *[F.col(f"`{n}`") for n in names], F.col("_metadata.row_index").alias(ROW)
        )
        check_types(frame, file_schema, names, f"data {data.name}")
        mapped = frame.mapInArrow(_batch_states(validator, names), "state binary")
        parts = [pickle.loads(row["state"]) for row in mapped.collect()]
        found = {n: _unique(frame, n) for n in names if validator.state[n].spec.unique}
    for error, _ in parts:
        if error:
            raise PermanentError(error)
    for name in names:
        state = validator.state[name]
        for _, states in parts:
            _merge(state, states[name])
        _placed(state, validator.place)
        if state.spec.unique:
            state.unique = FoundDuplicates(found[name])
