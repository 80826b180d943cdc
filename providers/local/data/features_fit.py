"""Fitting feature transforms on the training rows, streaming over batches.

``fit_params(spec, train_batches)`` returns the ``transform.json`` document: every
feature's transforms with their fitted values (standardize mean/std, minmax min/max,
fillna fill value, learned onehot categories) and the output column names. It only
ever sees the batches ``train_batches`` yields, the training split, so no statistic can
come from validation rows. A transform is fitted on the output of the fitted transforms
before it, so a feature with two fitted transforms (fillna median, then standardize)
needs two passes; the number of passes is the longest run of fitted transforms.

Statistics: mean and population standard deviation (ddof 0, as scikit-learn's
StandardScaler) merged across batches (Chan et al.); median and numeric mode exact over
the collected training values; categories counted exactly, most frequent first, ties
broken by the smaller value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]
import pyarrow.compute as pc  # type: ignore[import-untyped,unused-ignore]

from providers.base import JSON
from providers.local.data.features import (
    DATETIME_PARTS,
    FLOATS,
    TRANSFORM_CODE_VERSION,
    FeatureError,
    FeatureSpec,
    category_label,
    chain_values,
    from_numeric,
    is_numeric_type,
    keeps_dictionary,
    numeric,
    one_array,
)

TrainBatches = Callable[[list[str]], Iterator[pa.Table]]
SMALL_SPAN = 1 << 16  # integers counted by bincount when max - min is below this


def needs_fit(transform: JSON) -> bool:
    kind = transform["type"]
    if kind in ("standardize", "minmax"):
        return True
    if kind == "fillna":
        return transform.get("strategy") is not None
    return kind == "onehot" and transform.get("vocabulary") is None


class Moments:
    """Count, mean and sum of squared deviations, mergeable across batches."""

    def __init__(self) -> None:
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0

    def add(self, x: FLOATS) -> None:
        nan = np.isnan(x)
        if nan.any():
            x = x[~nan]
        if x.size:
            mean = float(x.mean())
            deviations = np.square(x - mean)
            self.merge(x.size, mean, float(deviations.sum()))

    def merge(self, count: int, mean: float, m2: float) -> None:
        """Fold in another batch's count, mean and sum of squared deviations (Chan et al.)."""
        if not count:
            return
        total = self.count + count
        delta = mean - self.mean
        self.mean += delta * count / total
        self.m2 += m2 + delta * delta * self.count * count / total
        self.count = total

    @property
    def std(self) -> float:
        return float(np.sqrt(self.m2 / self.count)) if self.count else 0.0


class CategoryCounter:
    """Exact counts of the non-missing values; past ``cap`` distinct values it gives up.

    Each batch is counted in one call (``bincount`` for integers of a small span, Arrow's
    ``value_counts`` for the rest); the counts wait as Arrow arrays and are summed per
    value (``dictionary_encode``, then ``bincount``) when they pile up, so a column of many
    distinct values costs no Python loop.
    """

    def __init__(self, cap: int | None = None) -> None:
        self.cap = cap
        self._overflow = False
        self._values: list[pa.Array] = []  # after a merge, [0] holds each value once
        self._counts: list[pa.Array] = []
        self._rows = 0  # entries in _values

    def add(self, values: pa.Array) -> None:
        if self._overflow:
            return
        if pa.types.is_dictionary(values.type):
            found, counts = _dictionary_counts(values)
        else:
            found, counts = _small_integer_counts(values) or _value_counts(values)
        self._values.append(found)
        self._counts.append(counts)
        self._rows += len(found)
        if self._rows > 2 * max(4096, self.cap or 0):
            self._merge()

    def _merge(self) -> None:
        if len(self._values) > 1:
            encoded = pc.dictionary_encode(pa.concat_arrays(self._values))
            sums = np.bincount(
                encoded.indices.to_numpy(),
                weights=pa.concat_arrays(self._counts).to_numpy(),
                minlength=len(encoded.dictionary),
            )  # float64 sums of integer counts: exact below 2**53
            self._values = [encoded.dictionary]
            self._counts = [pa.array(sums.astype(np.int64))]
            self._rows = len(encoded.dictionary)
        if self.cap is not None and self._rows > self.cap:
            self._overflow, self._values, self._counts, self._rows = True, [], [], 0

    @property
    def overflow(self) -> bool:
        """Whether more than ``cap`` distinct values were seen (and so none are kept)."""
        self._merge()
        return self._overflow

    @property
    def distinct(self) -> int:
        """How many distinct non-missing values were seen."""
        self._merge()
        return self._rows

    def top(self, limit: int) -> list[tuple[Any, int]]:
        """The ``limit`` most frequent values with their counts, ties broken by the value."""
        self._merge()
        if not self._values:
            return []
        counted = pa.table({"values": self._values[0], "counts": self._counts[0]})
        head = counted.sort_by([("counts", "descending"), ("values", "ascending")])[:limit]
        return list(zip(head["values"].to_pylist(), head["counts"].to_pylist(), strict=True))


def _value_counts(values: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Each distinct non-missing value and its count (Arrow's hash-based value_counts)."""
    counted = pc.value_counts(values)
    found, counts = counted.field("values"), counted.field("counts")
    known = pc.is_valid(found)
    if pa.types.is_floating(found.type):
        known = pc.and_(known, pc.invert(pc.is_nan(found)))  # NaN is missing too
    return found.filter(known), counts.filter(known)


def _dictionary_counts(values: pa.Array) -> tuple[pa.Array, pa.Array]:
    """value_counts of a dictionary array: its indices counted by ``bincount``, so each
    distinct value is compared once, not once per row (a dictionary that repeats a value, or
    holds a null, is decoded and counted as plain values)."""
    dictionary = values.dictionary
    if dictionary.null_count or pc.count_distinct(dictionary).as_py() != len(dictionary):
        return _value_counts(values.dictionary_decode())
    indices = values.indices
    codes = (indices.drop_null() if indices.null_count else indices).to_numpy()
    counts = np.bincount(codes.astype(np.intp, copy=False), minlength=len(dictionary))
    seen = np.flatnonzero(counts)
    found, counted = dictionary.take(pa.array(seen)), pa.array(counts[seen], type=pa.int64())
    if pa.types.is_floating(found.type):  # NaN is missing too
        known = pc.invert(pc.is_nan(found))
        found, counted = found.filter(known), counted.filter(known)
    return found, counted


def _small_integer_counts(values: pa.Array) -> tuple[pa.Array, pa.Array] | None:
    """value_counts of integers within a span of SMALL_SPAN, by ``bincount``: labels, codes,
    ids of shops (ten times faster than hashing); None for other values."""
    if not pa.types.is_integer(values.type) or len(values) == values.null_count:
        return None
    x = (values.drop_null() if values.null_count else values).to_numpy()
    low, high = int(x.min()), int(x.max())
    if high - low >= SMALL_SPAN:
        return None
    counts = np.bincount((x - low).astype(np.intp, copy=False), minlength=high - low + 1)
    seen = np.flatnonzero(counts)
    return pa.array(seen + low, type=values.type), pa.array(counts[seen], type=pa.int64())


class _Fitter(Protocol):
    def add(self, values: pa.Array | FLOATS) -> None: ...
    def result(self) -> JSON: ...


class _StandardizeFit:
    def __init__(self, feature: str, transform: JSON) -> None:
        self.feature, self.moments = feature, Moments()

    def add(self, values: pa.Array | FLOATS) -> None:
        self.moments.add(numeric(values, self.feature, "standardize"))

    def result(self) -> JSON:
        _require(self.moments.count, self.feature, "standardize")
        std = self.moments.std
        return {"mean": self.moments.mean, "std": std if std > 0 else 1.0}


class _MinMaxFit:
    def __init__(self, feature: str, transform: JSON) -> None:
        self.feature = feature
        self.low, self.high, self.count = np.inf, -np.inf, 0

    def add(self, values: pa.Array | FLOATS) -> None:
        x = numeric(values, self.feature, "minmax")
        x = x[~np.isnan(x)]
        if x.size:
            self.low, self.high = min(self.low, float(x.min())), max(self.high, float(x.max()))
            self.count += x.size

    def result(self) -> JSON:
        _require(self.count, self.feature, "minmax")
        return {"min": self.low, "max": self.high}


class _FillFit:
    """fillna's strategy: mean, median or mode of the training values."""

    def __init__(self, feature: str, transform: JSON) -> None:
        self.feature, self.strategy = feature, str(transform["strategy"])
        self.moments, self.chunks = Moments(), list[FLOATS]()
        self.counter = CategoryCounter()
        self.kind: pa.DataType | None = None

    def add(self, values: pa.Array | FLOATS) -> None:
        self.kind = pa.float64() if isinstance(values, np.ndarray) else values.type
        if not is_numeric_type(self.kind):
            if self.strategy != "mode":
                raise FeatureError(
                    f"feature {self.feature!r}: fillna strategy {self.strategy} needs numbers, "
                    f"but the values are {self.kind}; use strategy: mode or a value"
                )
            self.counter.add(values)
            return
        x = numeric(values, self.feature, "fillna")
        if self.strategy == "mean":
            self.moments.add(x)
        else:
            self.chunks.append(x[~np.isnan(x)])

    def result(self) -> JSON:
        if self.kind is not None and not is_numeric_type(self.kind):
            top = self.counter.top(1)
            _require(len(top), self.feature, "fillna")
            return {"fill": top[0][0]}
        if self.strategy == "mean":
            _require(self.moments.count, self.feature, "fillna")
            return {"fill": self.moments.mean}
        x = np.concatenate(self.chunks) if self.chunks else np.zeros(0)
        _require(x.size, self.feature, "fillna")
        if self.strategy == "median":
            return {"fill": float(np.median(x))}
        values, counts = np.unique(x, return_counts=True)
        mode = float(values[int(np.argmax(counts))])  # ties: the smallest value
        integral = self.kind is not None and pa.types.is_integer(self.kind)
        return {"fill": int(mode) if integral else mode}


class _OneHotFit:
    def __init__(self, feature: str, transform: JSON) -> None:
        self.feature, self.limit = feature, int(transform.get("maxCategories") or 50)
        self.counter = CategoryCounter()

    def add(self, values: pa.Array | FLOATS) -> None:
        if isinstance(values, np.ndarray):
            values = from_numeric(values)
        if pa.types.is_temporal(values.type):
            raise FeatureError(
                f"feature {self.feature!r}: onehot needs categories, not {values.type} "
                "values; use datetime to take parts of a time"
            )
        self.counter.add(values)

    def result(self) -> JSON:
        return {"categories": [value for value, _ in self.counter.top(self.limit)]}


def _require(count: int, feature: str, transform: str) -> None:
    if not count:
        raise FeatureError(
            f"feature {feature!r}: {transform} has no non-missing training values to learn "
            "from; check the column and the split"
        )


FITTERS: dict[str, Callable[[str, JSON], _Fitter]] = {
    "standardize": _StandardizeFit,
    "minmax": _MinMaxFit,
    "fillna": _FillFit,
    "onehot": _OneHotFit,
}


def _settled(transform: JSON) -> JSON:
    """A transform that needs no fitting, with the fields apply reads filled in."""
    out = dict(transform)
    if out["type"] == "onehot":
        out["categories"] = list(out.get("vocabulary") or [])
        out.setdefault("other", True)
    return out


def fit_params(spec: FeatureSpec, train_batches: TrainBatches) -> JSON:
    """The transform.json document, fitted on the batches of the training split."""
    fitted: dict[str, list[JSON]] = {f.name: [] for f in spec.features}
    while True:
        pending = {}
        for feature in spec.features:
            done = fitted[feature.name]
            while len(done) < len(feature.transforms) and not needs_fit(
                feature.transforms[len(done)]
            ):
                done.append(_settled(feature.transforms[len(done)]))
            if len(done) < len(feature.transforms):
                transform = feature.transforms[len(done)]
                pending[feature.name] = (
                    feature,
                    FITTERS[transform["type"]](feature.name, transform),
                )
        if not pending:
            break
        columns = list(dict.fromkeys(f.column for f, _ in pending.values()))
        for batch in train_batches(columns):
            for name, (feature, fitter) in pending.items():
                column = one_array(batch[feature.column])
                chain = [*fitted[name], *feature.transforms[len(fitted[name]) :][:1]]
                values = chain_values(name, fitted[name], column, keeps_dictionary(chain, column))
                assert not isinstance(values, dict)
                fitter.add(values)
        for name, (feature, fitter) in pending.items():
            transform = feature.transforms[len(fitted[name])]
            fitted[name].append({**_settled(transform), **fitter.result()})
    return _document(spec, fitted)


def output_names(name: str, transforms: list[JSON]) -> list[str]:
    last = transforms[-1] if transforms else {"type": "passthrough"}
    if last["type"] == "onehot":
        names = [f"{name}__{category_label(c)}" for c in last["categories"]]
        return names + ([f"{name}__other"] if last.get("other", True) else [])
    if last["type"] == "datetime":
        return [f"{name}_{part}" for part in last["parts"] if part in DATETIME_PARTS]
    return [name]


def _document(spec: FeatureSpec, fitted: dict[str, list[JSON]]) -> JSON:
    features, outputs = [], list[str]()
    taken = {c: f"entity column {c!r}" for c in spec.entity} | {spec.label: "the label column"}
    for feature in spec.features:
        names = output_names(feature.name, fitted[feature.name])
        for name in names:
            if name in taken:
                raise FeatureError(
                    f"feature {feature.name!r} makes the column {name!r}, which clashes with "
                    f"{taken[name]}; rename the feature (name: {feature.name}_x, column: "
                    f"{feature.column})"
                )
            taken[name] = f"feature {feature.name!r}"
        outputs += names
        features.append(
            {
                "name": feature.name,
                "column": feature.column,
                "transforms": fitted[feature.name],
                "outputs": names,
            }
        )
    return {
        "version": TRANSFORM_CODE_VERSION,
        "entity": list(spec.entity),
        "label": spec.label,
        "features": features,
        "outputs": outputs,
    }
