"""A Dataset's rules, checked in one pass over the batches as they stream into a snapshot.

``Validator.observe`` accumulates per column what the rules need (null counts, min/max,
values out of range or not allowed or not matching the pattern, with the first offender
and its place, uniqueness keys, drift histograms); ``Validator.finish`` turns that into
``Check`` results, one per rule and column, each with the observed value, the threshold
and whether it passed. Memory stays bounded: a few numbers per column, 8 bytes per row
for a ``unique`` column, a fixed sample per drift column.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]
import pyarrow.compute as pc  # type: ignore[import-untyped,unused-ignore]

from providers.base import JSON, PermanentError
from providers.local.data.drift import Histogram
from providers.local.data.header_hints import missing_columns_hint
from providers.local.data.uniq import UniqueKeys
from reconciler.kinds.data import Column, ColumnType, DataFormat, DatasetSpec

# failures are listed most important first: the data cannot be read, then its shape,
# then per-value rules, then whole-table rules
RULE_ORDER = (
    "read", "encoding", "type", "columns", "strictColumns", "nullable", "unique", "min", "max",
    "allowed", "regex", "maxNullFraction", "minRows", "maxRows", "freshness", "drift",
)  # fmt: skip
READING = ("read", "encoding", "type")
NUMERIC = {ColumnType.INT, ColumnType.FLOAT}
ORDERED = {ColumnType.INT, ColumnType.FLOAT, ColumnType.TIMESTAMP, ColumnType.DATE}


@dataclass(frozen=True)
class Check:
    rule: str
    column: str | None
    observed: Any
    threshold: Any
    passed: bool
    detail: str = ""  # the failure in words: what, where, which value

    def as_json(self) -> JSON:
        return {
            "rule": self.rule,
            "column": self.column,
            "observed": self.observed,
            "threshold": self.threshold,
            "passed": self.passed,
            **({"detail": self.detail} if self.detail else {}),
        }

    def line(self) -> str:
        if self.rule in READING and self.detail:  # the reader's message names its place
            return self.detail
        where = f"column {self.column}: " if self.column else ""
        return f"{where}{self.rule}: {self.detail or f'observed {self.observed}, allowed {self.threshold}'}"


@dataclass
class Offenders:
    """Values that broke a rule: how many, and the first one with its place."""

    count: int = 0
    first: Any = None
    where: str = ""

    def add(self, mask: Any, column: Any, row_offset: int, place: Callable[[int], str]) -> None:
        found = int(pc.sum(mask).as_py() or 0)
        if found and not self.count:
            i = int(pc.index(mask, True).as_py())
            self.first, self.where = _plain(column[i].as_py()), place(row_offset + i)
        self.count += found

    def text(self, what: str) -> str:
        return f"{self.count:,} value(s) {what}, first {self.first!r} on {self.where}"


@dataclass
class ColumnState:
    spec: Column
    nulls: int = 0
    low: Any = None
    high: Any = None
    below: Offenders = field(default_factory=Offenders)
    above: Offenders = field(default_factory=Offenders)
    outside: Offenders = field(default_factory=Offenders)
    mismatched: Offenders = field(default_factory=Offenders)
    first_null: str = ""
    unique: UniqueKeys | None = None
    allowed: Any = None
    pattern: str | None = None


class Validator:
    """Checks one snapshot's rows; ``previous`` is the prior snapshot's manifest (drift)."""

    def __init__(
        self,
        spec: DatasetSpec,
        place: Callable[[int], str],
        previous: JSON | None = None,
        now: dt.datetime | None = None,
        per_value: bool = True,
    ) -> None:
        self.spec = spec
        #: False: the per-value rules run elsewhere (spark_validate fills ``state``)
        self.per_value = per_value
        self.place = place
        self.now = now or dt.datetime.now(dt.UTC)
        self.rows = 0
        self.columns: list[str] | None = None
        self.nulls: dict[str, int] = {}
        self.state = {c.name: ColumnState(c) for c in spec.schema_}
        for column in self.state.values():
            self._prepare(column)
        drift = spec.validation.drift
        self.histograms: dict[str, Histogram] = {}
        if drift is not None:
            histograms = (previous or {}).get("histograms") or {}
            for name in drift.columns or spec.column_names():
                declared = self.state.get(name)
                numeric = declared is None or declared.spec.type in ORDERED
                self.histograms[name] = Histogram(name, numeric, drift.bins, histograms.get(name))

    def _prepare(self, state: ColumnState) -> None:
        column = state.spec
        if column.unique:
            state.unique = UniqueKeys(exact=column.type != ColumnType.STRING)
        if column.allowed is not None:
            try:
                state.allowed = pa.array(column.allowed).cast(_arrow(column.type))
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                raise PermanentError(
                    f"column {column.name}: allowed values {column.allowed} are not all "
                    f"{column.type}s; fix spec.schema"
                ) from None
        if column.regex is not None:
            state.pattern = f"^(?:{column.regex})$"

    def observe(self, batch: Any) -> None:
        if self.columns is None:
            self.columns = list(batch.schema.names)
        for i, name in enumerate(batch.schema.names):
            column = batch.column(i)
            self.nulls[name] = self.nulls.get(name, 0) + column.null_count
            if name in self.state and self.per_value:
                self._observe_column(self.state[name], column)
            if name in self.histograms:
                self.histograms[name].add(column)
        self.rows += batch.num_rows

    def _observe_column(self, state: ColumnState, column: Any) -> None:
        # each rule first counts its offenders with one kernel; the mask that finds the
        # first offender is built only in a batch that has one
        spec, offset = state.spec, self.rows
        if column.null_count and not state.first_null:
            state.first_null = self.place(offset + int(pc.index(column.is_null(), True).as_py()))
        state.nulls += column.null_count
        valid = len(column) - column.null_count
        low = high = None
        if spec.type in ORDERED and valid:
            bounds = pc.min_max(column)
            low, high = bounds["min"].as_py(), bounds["max"].as_py()
            state.low = low if state.low is None else min(state.low, low)
            state.high = high if state.high is None else max(state.high, high)
        if spec.type in NUMERIC and low is not None:  # min_max skips NaN, as less/greater do
            if spec.min is not None and low < spec.min:
                state.below.add(pc.less(column, spec.min), column, offset, self.place)
            if spec.max is not None and high is not None and high > spec.max:
                state.above.add(pc.greater(column, spec.max), column, offset, self.place)
        if state.allowed is not None:
            inside = pc.is_in(column, value_set=state.allowed, skip_nulls=True)  # null: False
            if _true_count(inside) < valid:
                outside = pc.and_kleene(pc.invert(inside), column.is_valid())
                state.outside.add(outside, column, offset, self.place)
        if state.pattern is not None:
            self._observe_pattern(state, column, offset, valid)
        if state.unique is not None:
            state.unique.add(column, offset)

    def _observe_pattern(self, state: ColumnState, column: Any, offset: int, valid: int) -> None:
        spec = state.spec
        text = column if pa.types.is_string(column.type) else column.cast(pa.string())
        try:
            matched = pc.match_substring_regex(text, state.pattern)
        except pa.ArrowInvalid as exc:
            raise PermanentError(
                f"column {spec.name}: regex {spec.regex!r} cannot be used ({exc}); "
                "write it in RE2 syntax (no look-arounds or back-references)"
            ) from None
        if _true_count(matched) < valid:  # null values match (nullable is its own rule)
            state.mismatched.add(pc.invert(matched.fill_null(True)), column, offset, self.place)

    def finish(self, value_at: Callable[[str, list[int]], list[Any]]) -> list[Check]:
        """Every rule's result; ``value_at(column, rows)`` reads written values back."""
        present = set(self.columns or [])
        checks = self._shape(present)
        for state in self.state.values():
            if state.spec.name in present:
                checks += self._column_checks(state, value_at)
        checks += self._table_checks(present)
        return checks

    def _shape(self, present: set[str]) -> list[Check]:
        declared = self.spec.column_names()
        missing = [n for n in declared if n not in present]
        detail = ""
        if missing:
            detail = f"declared column(s) missing from the source: {', '.join(missing)}"
            if self.spec.source.inferred_format() == DataFormat.CSV:
                detail += missing_columns_hint(self.columns or [], missing, self.spec.source.csv)
        checks = [
            Check("columns", None, sorted(present & set(declared)), declared, not missing, detail)
        ]
        if self.spec.strict_columns:
            extra = [n for n in (self.columns or []) if n not in set(declared)]
            checks.append(
                Check("strictColumns", None, extra, [], not extra,
                      f"column(s) not declared in the schema: {', '.join(extra)}" if extra else "")
            )  # fmt: skip
        return checks

    def _column_checks(
        self, state: ColumnState, value_at: Callable[[str, list[int]], list[Any]]
    ) -> list[Check]:
        spec, name, out = state.spec, state.spec.name, []
        out.append(Check("type", name, str(spec.type), str(spec.type), True))
        if not spec.nullable:
            detail = f"{state.nulls:,} missing value(s), first on {state.first_null}"
            out.append(
                Check(
                    "nullable", name, state.nulls, 0, not state.nulls, detail if state.nulls else ""
                )
            )
        for rule, bound, offenders, low_high, what in (
            ("min", spec.min, state.below, state.low, "below"),
            ("max", spec.max, state.above, state.high, "above"),
        ):
            if bound is not None and spec.type in NUMERIC:
                text = offenders.text(f"{what} {_number(bound)}") if offenders.count else ""
                out.append(Check(rule, name, _plain(low_high), bound, not offenders.count, text))
        if spec.allowed is not None:
            text = state.outside.text(f"not in {spec.allowed}") if state.outside.count else ""
            out.append(
                Check(
                    "allowed",
                    name,
                    state.outside.count,
                    spec.allowed,
                    not state.outside.count,
                    text,
                )
            )
        if spec.regex is not None:
            bad = state.mismatched
            text = bad.text(f"not matching {spec.regex!r}") if bad.count else ""
            out.append(Check("regex", name, bad.count, spec.regex, not bad.count, text))
        if state.unique is not None:
            dup = state.unique.duplicates(lambda rows: value_at(name, rows))
            text = ""
            if dup is not None:
                text = (
                    f"{dup.count:,} repeated value(s), first {_plain(dup.value)!r} on "
                    f"{self.place(dup.rows[0])} and {self.place(dup.rows[1])}"
                )
            out.append(Check("unique", name, dup.count if dup else 0, 0, dup is None, text))
        return out

    def _table_checks(self, present: set[str]) -> list[Check]:
        rules, rows, out = self.spec.validation, self.rows, []
        if rules.min_rows is not None:
            out.append(Check("minRows", None, rows, rules.min_rows, rows >= rules.min_rows,
                             f"{rows:,} rows, fewer than {rules.min_rows:,}"))  # fmt: skip
        if rules.max_rows is not None:
            out.append(Check("maxRows", None, rows, rules.max_rows, rows <= rules.max_rows,
                             f"{rows:,} rows, more than {rules.max_rows:,}"))  # fmt: skip
        out += self._null_fractions(present)
        if rules.freshness is not None:
            out.append(self._freshness(present))
        out += self._drift(present)
        # a passed check keeps its words only where they explain it ("no previous snapshot")
        return [
            c
            if not c.passed or c.rule == "drift"
            else Check(c.rule, c.column, c.observed, c.threshold, True)
            for c in out
        ]

    def _null_fractions(self, present: set[str]) -> list[Check]:
        limits = self.spec.validation.max_null_fraction
        names = [n for n in limits if n != "*"]
        if "*" in limits:
            names += [n for n in (self.columns or []) if n not in limits]
        out = []
        for name in names:
            limit = limits.get(name, limits.get("*", 1.0))
            if name not in present:
                out.append(
                    Check("maxNullFraction", name, None, limit, False, "the column is missing")
                )
                continue
            fraction = self.nulls.get(name, 0) / self.rows if self.rows else 0.0
            out.append(Check("maxNullFraction", name, round(fraction, 6), limit, fraction <= limit,
                             f"{fraction:.2%} of values missing, more than {limit:.2%}"))  # fmt: skip
        return out

    def _freshness(self, present: set[str]) -> Check:
        rule = self.spec.validation.freshness
        assert rule is not None
        state = self.state.get(rule.column)
        limit = f"{rule.max_age:g}s"
        if (
            rule.column not in present
            or state is None
            or state.spec.type not in (ColumnType.TIMESTAMP, ColumnType.DATE)
        ):
            return Check("freshness", rule.column, None, limit, False,
                         "the column must be present and declared as timestamp or date")  # fmt: skip
        newest = state.high
        if newest is None:
            return Check("freshness", rule.column, None, limit, False, "the column holds no values")
        if not isinstance(newest, dt.datetime):
            newest = dt.datetime.combine(newest, dt.time())
        newest = newest.replace(tzinfo=dt.UTC) if newest.tzinfo is None else newest
        age = (self.now - newest).total_seconds()
        return Check("freshness", rule.column, {"newest": newest.isoformat(), "ageSeconds": round(age, 3)},
                     limit, age <= rule.max_age,
                     f"newest value {newest.isoformat()} is {_age(age)} old, older than {_age(rule.max_age)}")  # fmt: skip

    def _drift(self, present: set[str]) -> list[Check]:
        drift = self.spec.validation.drift
        out = []
        for name, histogram in self.histograms.items():
            if drift is None or name not in present:
                continue
            psi = histogram.psi()
            if psi is None:
                reason = (
                    "no previous snapshot"
                    if histogram.previous is None
                    else "too many categories to compare"
                )
                out.append(Check("drift", name, None, drift.max_psi, True, reason))
                continue
            out.append(Check("drift", name, round(psi, 4), drift.max_psi, psi <= drift.max_psi,
                             f"PSI {psi:.3f} against the previous snapshot, above {drift.max_psi}"))  # fmt: skip
        return out

    def histograms_summary(self) -> JSON:
        return {name: h.summary() for name, h in self.histograms.items()}


def failures(checks: Sequence[Check]) -> list[Check]:
    """The failed checks, most important first."""
    rank = {rule: i for i, rule in enumerate(RULE_ORDER)}
    return sorted((c for c in checks if not c.passed), key=lambda c: rank.get(c.rule, len(rank)))


def _true_count(mask: Any) -> int:
    """How many values of a boolean array are true (nulls are not)."""
    return int(pc.sum(mask).as_py() or 0)


def _arrow(declared: ColumnType) -> Any:
    from providers.local.data.convert import arrow_type

    return arrow_type(declared)


def _plain(value: Any) -> Any:
    """A value as JSON can hold it."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def _number(value: float) -> str:
    return f"{value:g}"


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"
