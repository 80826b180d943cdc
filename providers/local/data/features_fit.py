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
    apply_chain,
    category_label,
    is_numeric_type,
    numeric,
)

TrainBatches = Callable[[list[str]], Iterator[pa.Table]]


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
        x = x[~np.isnan(x)]
        if not x.size:
            return
        mean = float(x.mean())
        m2 = float(np.square(x - mean).sum())
        total = self.count + x.size
        delta = mean - self.mean
        self.mean += delta * x.size / total
        self.m2 += m2 + delta * delta * self.count * x.size / total
        self.count = total

    @property
    def std(self) -> float:
        return float(np.sqrt(self.m2 / self.count)) if self.count else 0.0


class CategoryCounter:
    """Exact counts of the non-missing values; past ``cap`` distinct values it gives up."""

    def __init__(self, cap: int | None = None) -> None:
        self.counts: dict[Any, int] = {}
        self.cap = cap
        self.overflow = False

    def add(self, values: pa.Array) -> None:
        if self.overflow:
            return
        if pa.types.is_dictionary(values.type):
            values = values.dictionary_decode()
        counted = pc.value_counts(values)
        for value, count in zip(
            counted.field("values").to_pylist(), counted.field("counts").to_pylist(), strict=True
        ):
            if value is None or value != value:  # missing, or NaN
                continue
            self.counts[value] = self.counts.get(value, 0) + count
        if self.cap is not None and len(self.counts) > self.cap:
            self.overflow, self.counts = True, {}

    def top(self, limit: int) -> list[tuple[Any, int]]:
        return sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))[:limit]


class _Fitter(Protocol):
    def add(self, values: pa.Array) -> None: ...
    def result(self) -> JSON: ...


class _StandardizeFit:
    def __init__(self, feature: str, transform: JSON) -> None:
        self.feature, self.moments = feature, Moments()

    def add(self, values: pa.Array) -> None:
        self.moments.add(numeric(values, self.feature, "standardize"))

    def result(self) -> JSON:
        _require(self.moments.count, self.feature, "standardize")
        std = self.moments.std
        return {"mean": self.moments.mean, "std": std if std > 0 else 1.0}


class _MinMaxFit:
    def __init__(self, feature: str, transform: JSON) -> None:
        self.feature = feature
        self.low, self.high, self.count = np.inf, -np.inf, 0

    def add(self, values: pa.Array) -> None:
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

    def add(self, values: pa.Array) -> None:
        self.kind = values.type
        if not is_numeric_type(values.type):
            if self.strategy != "mode":
                raise FeatureError(
                    f"feature {self.feature!r}: fillna strategy {self.strategy} needs numbers, "
                    f"but the values are {values.type}; use strategy: mode or a value"
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

    def add(self, values: pa.Array) -> None:
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
                values = apply_chain(name, fitted[name], batch[feature.column].combine_chunks())
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
