"""Column histograms for drift: built in one pass, stored in a snapshot's manifest, compared by PSI.

A numeric column (int, float, timestamp, date) is summarised by ``bins`` quantile bins:
the edges come from a bounded, seeded uniform sample of the column (``SAMPLE_SIZE``
values, bottom-k by random key, so memory does not grow with the rows) and the fractions
are the share of values in each bin. The next snapshot counts *all* its values into the
previous snapshot's edges and compares fractions by the population stability index
(PSI = sum (a - e) * ln(a / e), empty bins taken as ``EPSILON``). A categorical column
(string, bool) is summarised by the share of each category, up to ``MAX_CATEGORIES``;
beyond that the column is not compared (the report says so). Nulls are left out of both:
they have their own rule (maxNullFraction).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]
import pyarrow.compute as pc  # type: ignore[import-untyped,unused-ignore]

from providers.base import JSON

SAMPLE_SIZE = 32_768
MAX_CATEGORIES = 1_000
EPSILON = 1e-4


def numeric_values(column: Any) -> Any:
    """The non-null values of a numeric, timestamp or date column as float64 (numpy)."""
    column = column.drop_null() if column.null_count else column
    kind = column.type
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        column = column.cast(pa.int64()) if pa.types.is_timestamp(kind) else column.cast(pa.int32())
    return np.asarray(column.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


class Histogram:
    """One column's distribution as it streams past, against the previous one if any."""

    def __init__(self, column: str, numeric: bool, bins: int, previous: JSON | None) -> None:
        self.column = column
        self.numeric = numeric
        self.bins = bins
        self.previous = previous if previous and previous.get("numeric") == numeric else None
        self.values = 0
        self._rng = np.random.default_rng(zlib.crc32(column.encode("utf-8")))
        self._sample = np.empty(0, dtype=np.float64)
        self._keys = np.empty(0, dtype=np.float64)
        edges = (self.previous or {}).get("edges")
        self._prev_edges = np.asarray(edges, dtype=np.float64) if edges is not None else None
        self._prev_counts = np.zeros(len(edges) + 1, dtype=np.int64) if edges is not None else None
        self.categories: dict[Any, int] = {}
        self.overflow = False

    def add(self, column: Any) -> None:
        if self.numeric:
            self._add_numeric(numeric_values(column))
        else:
            self._add_categories(column)

    def _add_numeric(self, values: Any) -> None:
        values = values[~np.isnan(values)]
        self.values += len(values)
        if self._prev_edges is not None and self._prev_counts is not None:
            where = np.searchsorted(self._prev_edges, values, side="left")
            self._prev_counts += np.bincount(where, minlength=len(self._prev_counts))
        keys = self._rng.random(len(values))
        if len(self._keys) >= SAMPLE_SIZE:  # only keys below the current k-th can enter
            threshold = self._keys.max()
            keep = keys < threshold
            keys, values = keys[keep], values[keep]
        self._keys = np.concatenate([self._keys, keys])
        self._sample = np.concatenate([self._sample, values])
        if len(self._keys) > SAMPLE_SIZE:
            best = np.argpartition(self._keys, SAMPLE_SIZE)[:SAMPLE_SIZE]
            self._keys, self._sample = self._keys[best], self._sample[best]

    def _add_categories(self, column: Any) -> None:
        column = column.drop_null() if column.null_count else column
        self.values += len(column)
        if self.overflow or not len(column):
            return
        counts = pc.value_counts(column)
        for value, count in zip(
            counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True
        ):
            self.categories[value] = self.categories.get(value, 0) + count
        if len(self.categories) > MAX_CATEGORIES:
            self.overflow, self.categories = True, {}

    def summary(self) -> JSON:
        """What the manifest keeps, for the next snapshot to compare against."""
        if not self.numeric:
            total = max(self.values, 1)
            return {
                "numeric": False,
                "overflow": self.overflow,
                "fractions": {
                    str(k): v / total for k, v in sorted(self.categories.items(), key=str)
                },
            }
        if not len(self._sample):
            return {"numeric": True, "edges": [], "fractions": [1.0]}
        quantiles = np.quantile(self._sample, np.arange(1, self.bins) / self.bins)
        edges = np.unique(quantiles)
        counts = np.bincount(
            np.searchsorted(edges, self._sample, side="left"), minlength=len(edges) + 1
        )
        return {
            "numeric": True,
            "edges": [float(e) for e in edges],
            "fractions": [float(c) / len(self._sample) for c in counts],
        }

    def psi(self) -> float | None:
        """PSI of this column against the previous snapshot's; None when it cannot compare."""
        if self.previous is None:
            return None
        if self.numeric:
            if self._prev_counts is None or not self.values:
                return None
            actual = [float(c) / self.values for c in self._prev_counts]
            return population_stability(list(self.previous["fractions"]), actual)
        if self.overflow or self.previous.get("overflow"):
            return None
        before: Mapping[str, float] = self.previous.get("fractions") or {}
        total = max(self.values, 1)
        now = {str(k): v / total for k, v in self.categories.items()}
        names = sorted(set(before) | set(now))
        return population_stability(
            [before.get(n, 0.0) for n in names], [now.get(n, 0.0) for n in names]
        )


def population_stability(expected: list[float], actual: list[float]) -> float:
    """PSI between two distributions over the same bins (fractions summing to 1)."""
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, EPSILON), max(a, EPSILON)
        total += (a - e) * math.log(a / e)
    return total
