"""Column statistics of a materialised FeatureSet (stats.json), kept for skew and drift checks.

One ``ColumnStats`` per column and split, fed batch by batch: count (non-missing), nulls,
mean, std (ddof 0), min, max and quantiles p01..p99 for numbers; the most frequent values
for categories (strings, booleans, and columns a onehot or hash reads); min and max for
times. Count, nulls, mean, std, min and max are exact. Quantiles are exact up to
``QUANTILE_SAMPLE`` rows in the snapshot; above that they come from a systematic sample
(every k-th row of the snapshot, k = ceil(rows / QUANTILE_SAMPLE)), which ``stats.json``
records as ``quantileStride``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]
import pyarrow.compute as pc  # type: ignore[import-untyped,unused-ignore]

from providers.base import JSON
from providers.local.data.features import FLOATS, FeatureSpec, is_numeric_type, one_array
from providers.local.data.features_fit import CategoryCounter, Moments

QUANTILES = {
    "p01": 0.01,
    "p05": 0.05,
    "p25": 0.25,
    "p50": 0.5,
    "p75": 0.75,
    "p95": 0.95,
    "p99": 0.99,
}
QUANTILE_SAMPLE = 200_000
#: a sample of whole numbers within this span has its quantiles read from its counts
FEW_VALUES = 1 << 16
TOP_CATEGORIES = 20
CATEGORY_CAP = 100_000  # distinct values counted before giving up on top categories


def _number(value: float) -> float | None:
    return value if math.isfinite(value) else None


class ColumnStats:
    """Statistics of one column in one split, fed batch by batch."""

    def __init__(self, categorical: bool, binary: bool = False) -> None:
        self.categorical = categorical
        self.binary = binary  # every value 0 or 1, never missing: a onehot output column
        self.count = 0
        self.nulls = 0
        self.moments = Moments()
        self.low, self.high = math.inf, -math.inf
        self.sample: list[FLOATS] = []
        self.counter = CategoryCounter(cap=CATEGORY_CAP) if categorical else None
        self.temporal: list[Any] = []
        self.kind: pa.DataType | None = None

    def add(self, values: pa.Array, sampled: npt.NDArray[np.intp]) -> None:
        """values of this split's rows in a batch; sampled: the positions kept for quantiles."""
        if pa.types.is_dictionary(values.type) and not (
            self.counter is not None
            and not values.dictionary.null_count  # nulls is_null would not see
            and (
                pa.types.is_string(values.type.value_type)
                or pa.types.is_large_string(values.type.value_type)
            )
        ):
            values = values.dictionary_decode()  # else the counter takes the dictionary
        self.kind = values.type.value_type if pa.types.is_dictionary(values.type) else values.type
        self.nulls += values.null_count
        self.count += len(values) - values.null_count
        if self.counter is not None:
            self.counter.add(values)
        if is_numeric_type(values.type):
            self._add_numbers(values, sampled)
        elif pa.types.is_temporal(values.type) and self.count:
            bounds = pc.min_max(values)
            self.temporal += [bounds["min"].as_py(), bounds["max"].as_py()]

    def _add_numbers(self, values: pa.Array, sampled: npt.NDArray[np.intp]) -> None:
        """Moments, bounds and the quantile sample, in numpy (in place where it can be)."""
        if not pa.types.is_floating(values.type):
            values = pc.cast(values, pa.float64())
        x = values.to_numpy(zero_copy_only=False)  # missing values as NaN
        if not x.size:
            return
        picked = x[sampled]
        if self.binary and not values.null_count:
            self._add_binary(x, picked)
            return
        low, high = x.min(), x.max()  # NaN when a value is missing: then they are left out
        if np.isnan(low) or np.isnan(high):
            picked = picked[~np.isnan(picked)]
            nan = np.isnan(x)
            missing = int(np.count_nonzero(nan))
            self.nulls += missing - values.null_count  # NaN counts as missing
            self.count -= missing - values.null_count
            x = x[~nan]
            if x.size:
                low, high = x.min(), x.max()
        self.sample.append(picked.astype(np.float64))
        if not x.size:
            return
        y = x.astype(np.float64)  # a copy of our own, worked on in place
        mean = float(y.mean())
        self.low, self.high = min(self.low, float(low)), max(self.high, float(high))
        y -= mean
        np.square(y, out=y)
        self.moments.merge(y.size, mean, float(y.sum()))

    def _add_binary(self, x: npt.NDArray[Any], picked: npt.NDArray[Any]) -> None:
        """A batch of zeros and ones: one count gives its bounds, mean and squared
        deviations (k ones in n: mean k/n, as summing them gives, and k(1 - k/n)^2 +
        (n - k)(k/n)^2, equal to summing the squares up to rounding), a quarter of the
        passes over the values."""
        n, ones = x.size, int(np.count_nonzero(x))
        mean = ones / n
        self.sample.append(picked.astype(np.float64))
        self.low = min(self.low, 0.0 if ones < n else 1.0)
        self.high = max(self.high, 1.0 if ones else 0.0)
        self.moments.merge(n, mean, ones * (1 - mean) ** 2 + (n - ones) * mean**2)

    def result(self) -> JSON:
        out: JSON = {"count": self.count, "nulls": self.nulls}
        if self.kind is not None and is_numeric_type(self.kind):
            sample = np.concatenate(self.sample) if self.sample else np.zeros(0)
            out.update(
                mean=_number(self.moments.mean) if self.count else None,
                std=_number(self.moments.std) if self.count else None,
                min=_number(self.low),
                max=_number(self.high),
                quantiles=dict(zip(QUANTILES, quantiles(sample), strict=True)),
            )
        elif self.temporal:
            known = [t for t in self.temporal if t is not None]
            out.update(min=str(min(known)), max=str(max(known)))
        if self.counter is not None:
            if self.counter.overflow:
                out["topCategories"] = None
                out["distinct"] = f"more than {CATEGORY_CAP}"
            else:
                out["distinct"] = self.counter.distinct
                out["topCategories"] = [
                    {"value": v if isinstance(v, str | int | float | bool) else str(v), "count": c}
                    for v, c in self.counter.top(TOP_CATEGORIES)
                ]
        return out


def quantiles(sample: FLOATS) -> list[float | None]:
    """``np.quantile``'s linear quantiles (QUANTILES) of the sample, None when it is empty.

    A sample of whole numbers within FEW_VALUES of each other (onehot's 0 and 1, hours,
    hash buckets, labels: 16 of the bench's 21 number columns) gives the same values from
    its counts, a ``bincount`` instead of partitioning the sample (0.3 against 3.5 ms for
    160,000 values)."""
    if not sample.size:
        return [None] * len(QUANTILES)
    low, high = float(sample.min()), float(sample.max())
    if high - low < FEW_VALUES and sample[:64].round().tolist() == sample[:64].tolist():
        codes = sample - low
        whole = codes.astype(np.intp)
        if np.array_equal(whole, codes):
            return _quantiles_of_counts(low, np.cumsum(np.bincount(whole)), sample.size)
    return [float(v) for v in np.quantile(sample, list(QUANTILES.values()))]


def _quantiles_of_counts(low: float, ends: npt.NDArray[np.intp], n: int) -> list[float | None]:
    """The linear quantiles of n values, ``ends[k]`` of which are at most ``low + k``,
    computed as ``np.quantile`` computes them (its virtual index, gamma and lerp), so that
    the figures are the same to the last bit."""
    virtual = (n - 1) * np.asarray(list(QUANTILES.values()))
    before = np.floor(virtual)
    gamma = virtual - before
    lower = low + np.searchsorted(ends, before.astype(np.intp), side="right").astype(np.float64)
    upper = low + np.searchsorted(
        ends, np.minimum(before.astype(np.intp) + 1, n - 1), side="right"
    ).astype(np.float64)
    diff = upper - lower
    lerp = np.where(gamma >= 0.5, upper - diff * (1 - gamma), lower + diff * gamma)
    return [float(v) for v in lerp]


class SplitStats:
    """Statistics of named columns in the train and validation splits."""

    def __init__(self, categorical: dict[str, bool], binary: frozenset[str] = frozenset()) -> None:
        self.columns = {
            name: {split: ColumnStats(flag, name in binary) for split in ("train", "validation")}
            for name, flag in categorical.items()
        }

    def add(
        self, split: str, table: pa.Table, sampled: np.ndarray[Any, np.dtype[np.bool_]]
    ) -> None:
        """This split's rows of a batch; sampled marks the rows kept for quantiles."""
        positions = np.flatnonzero(sampled)
        for name, per_split in self.columns.items():
            per_split[split].add(one_array(table[name]), positions)

    def result(self) -> JSON:
        return {
            name: {split: stats.result() for split, stats in per_split.items()}
            for name, per_split in self.columns.items()
        }


def is_categorical(kind: pa.DataType, read_by_category_transform: bool) -> bool:
    if pa.types.is_dictionary(kind):
        return True
    if read_by_category_transform:
        return not pa.types.is_temporal(kind)
    return bool(
        pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_boolean(kind)
    )


class FeatureSetStats:
    """The statistics of one materialisation (stats.json): its source columns, output
    features and label, per split."""

    def __init__(self, spec: FeatureSpec, schema: pa.Schema, rows: int) -> None:
        read_by_category = {
            f.column
            for f in spec.features
            if any(t["type"] in ("onehot", "hash") for t in f.transforms)
        }
        self.label = spec.label
        self.sources = SplitStats(
            {
                c: is_categorical(schema.field(c).type, c in read_by_category)
                for c in spec.source_columns()
            }
        )
        self.outputs = SplitStats({})
        self.labels = SplitStats({spec.label: True})
        self.stride = max(1, -(-rows // QUANTILE_SAMPLE))
        self.counts = {"train": 0, "validation": 0}
        self._sources_result: JSON | None = None

    def sources_counted(self) -> None:
        """Every source row is counted: work out their figures now (on the caller's thread)."""
        self._sources_result = self.sources.result()

    def expect_outputs(self, params: JSON) -> None:
        """The output feature columns (known once the transforms are fitted: ``params`` is
        transform.json); onehot's are zeros and ones."""
        binary = frozenset(
            name
            for feature in params["features"]
            if feature["transforms"] and feature["transforms"][-1]["type"] == "onehot"
            for name in feature["outputs"]
        )
        self.outputs = SplitStats({name: False for name in params["outputs"]}, binary)

    def sampled(self, start: int, stop: int) -> npt.NDArray[np.bool_]:
        """Which of the snapshot's rows start..stop are in the quantile sample."""
        flags = np.zeros(stop - start, dtype=bool)
        flags[-start % self.stride :: self.stride] = True  # rows whose number k divides
        return flags

    def add(
        self, split: str, sources: pa.Table | None, part: pa.Table, sampled: npt.NDArray[np.bool_]
    ) -> None:
        """This split's rows of a batch: its source columns (None: counted apart) and its
        table rows."""
        self.counts[split] += part.num_rows
        if sources is not None:
            self.sources.add(split, sources, sampled)
        self.outputs.add(split, part, sampled)
        self.labels.add(split, part, sampled)

    def result(self, dropped: dict[str, int]) -> JSON:
        """stats.json; dropped: each split's rows left out for a missing label."""
        return {
            "version": 1,
            "rows": self.counts,
            "droppedNullLabel": dropped,
            "quantileStride": self.stride,
            "label": self.labels.result()[self.label],
            "features": self.outputs.result(),
            "sources": (
                self.sources.result() if self._sources_result is None else self._sources_result
            ),
        }
