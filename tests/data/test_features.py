"""FeatureSet transforms, splits and materialisation (providers.local.data.features*)."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from providers.local.data.features import FeatureError, apply_transform, parse_spec
from providers.local.data.features_build import materialise

TEMPORAL = {"type": "temporal", "column": "t", "validationFrom": 1}


@dataclass
class Built:
    directory: Path
    manifest: dict[str, Any]

    @property
    def train(self) -> pa.Table:
        return pq.read_table(self.directory / "train.parquet")

    @property
    def validation(self) -> pa.Table:
        return pq.read_table(self.directory / "validation.parquet")

    @property
    def params(self) -> dict[str, Any]:
        return json.loads((self.directory / "transform.json").read_text())

    @property
    def stats(self) -> dict[str, Any]:
        return json.loads((self.directory / "stats.json").read_text())

    def transform(self, feature: str) -> list[dict[str, Any]]:
        return next(f for f in self.params["features"] if f["name"] == feature)["transforms"]


def spec_of(
    features: list[dict[str, Any]],
    split: dict[str, Any] | None = None,
    entity: list[str] | None = None,
    label: str = "y",
) -> dict[str, Any]:
    return {
        "dataset": "d",
        "entity": entity or ["id"],
        "label": {"column": label},
        "features": features,
        "split": split or TEMPORAL,
    }


def build(
    tmp_path: Path,
    table: pa.Table,
    features: list[dict[str, Any]],
    split: dict[str, Any] | None = None,
    *,
    entity: list[str] | None = None,
    batch_rows: int = 4,
    name: str = "out",
) -> Built:
    source = tmp_path / f"{name}.parquet"
    pq.write_table(table, source)
    directory = tmp_path / name
    directory.mkdir()
    spec = parse_spec(spec_of(features, split, entity))
    manifest = materialise(spec, source, "ds-test", "fs-test", directory, batch_rows=batch_rows)
    return Built(directory, manifest)


def table(**columns: Any) -> pa.Table:
    n = len(next(iter(columns.values())))
    base: dict[str, Any] = {"id": list(range(n)), "y": [i % 2 for i in range(n)]}
    return pa.table({**base, **columns})


def column(t: pa.Table, name: str) -> list[Any]:
    return t[name].to_pylist()


def f32(values: list[float]) -> list[float]:
    return [float(np.float32(v)) for v in values]


# --- each transform against hand-computed values ----------------------------------------


def test_passthrough_casts_bool_int_and_float_to_float32(tmp_path: Path) -> None:
    t = table(t=[0, 0, 1], b=[True, False, True], i=[3, 4, 5], x=[0.5, 1.25, 2.0])
    built = build(
        tmp_path,
        t,
        [
            {"name": "b", "transforms": []},
            {"name": "i"},
            {"name": "x", "transforms": ["passthrough"]},
        ],
    )
    assert [built.train.schema.field(n).type for n in ("b", "i", "x")] == [pa.float32()] * 3
    assert column(built.train, "b") == [1.0, 0.0]
    assert column(built.train, "i") == [3.0, 4.0]
    assert column(built.validation, "x") == [2.0]
    assert built.manifest["features"] == ["b", "i", "x"]
    assert column(built.train, "y") == [0, 1] and built.train.schema.field("y").type == pa.int64()


def test_standardize_uses_train_mean_and_population_std(tmp_path: Path) -> None:
    t = table(t=[0, 0, 0, 0, 1], x=[1.0, 2.0, 3.0, 4.0, 7.0])
    built = build(tmp_path, t, [{"name": "x", "transforms": ["standardize"]}], batch_rows=3)
    std = math.sqrt(1.25)  # ddof 0 over 1, 2, 3, 4
    assert built.transform("x")[0]["mean"] == pytest.approx(2.5, abs=1e-15)
    assert built.transform("x")[0]["std"] == pytest.approx(std, rel=1e-15)
    assert column(built.train, "x") == pytest.approx(f32([(v - 2.5) / std for v in (1, 2, 3, 4)]))
    assert column(built.validation, "x") == pytest.approx([(7 - 2.5) / std], rel=1e-6)


def test_standardize_of_a_constant_keeps_std_one(tmp_path: Path) -> None:
    t = table(t=[0, 0, 1], x=[5.0, 5.0, 8.0])
    built = build(tmp_path, t, [{"name": "x", "transforms": ["standardize"]}])
    assert built.transform("x")[0] == {"type": "standardize", "mean": 5.0, "std": 1.0}
    assert column(built.train, "x") == [0.0, 0.0] and column(built.validation, "x") == [3.0]


def test_minmax_scales_by_the_train_range_and_constant_gives_zero(tmp_path: Path) -> None:
    t = table(t=[0, 0, 0, 1], x=[2.0, 4.0, 6.0, 8.0], k=[3, 3, 3, 9])
    built = build(
        tmp_path,
        t,
        [{"name": "x", "transforms": ["minmax"]}, {"name": "k", "transforms": ["minmax"]}],
    )
    assert column(built.train, "x") == [0.0, 0.5, 1.0]
    assert column(built.validation, "x") == [1.5]
    assert column(built.train, "k") == [0.0, 0.0, 0.0]


def test_log1p_and_clip(tmp_path: Path) -> None:
    t = table(t=[0, 0, 0, 1], x=[0.0, 1.0, 9.0, 99.0])
    built = build(
        tmp_path,
        t,
        [
            {"name": "lx", "column": "x", "transforms": ["log1p"]},
            {"name": "cx", "column": "x", "transforms": [{"type": "clip", "min": 0.5, "max": 5.0}]},
            {"name": "lo", "column": "x", "transforms": [{"type": "clip", "min": 2.0}]},
        ],
    )
    assert column(built.train, "lx") == pytest.approx(f32([0.0, math.log(2), math.log(10)]))
    assert column(built.validation, "lx") == pytest.approx([math.log(100)], rel=1e-6)
    assert column(built.train, "cx") == [0.5, 1.0, 5.0] and column(built.validation, "cx") == [5.0]
    assert column(built.train, "lo") == [2.0, 2.0, 9.0]


def test_log1p_refuses_values_at_or_below_minus_one_naming_feature_and_value(
    tmp_path: Path,
) -> None:
    t = table(t=[0, 0, 1], x=[0.0, -3.5, 1.0])
    with pytest.raises(FeatureError, match=r"feature 'spend'.*log1p.*-3\.5"):
        build(tmp_path, t, [{"name": "spend", "column": "x", "transforms": ["log1p"]}])


def test_bucketize_gives_the_bucket_index(tmp_path: Path) -> None:
    t = table(t=[0, 0, 0, 0, 0, 1], x=[-1.0, 0.0, 5.0, 10.0, 11.0, 3.0])
    built = build(
        tmp_path, t, [{"name": "x", "transforms": [{"type": "bucketize", "boundaries": [0, 10]}]}]
    )
    assert column(built.train, "x") == [0.0, 1.0, 1.0, 2.0, 2.0]
    assert column(built.validation, "x") == [1.0]


def test_onehot_with_a_vocabulary_and_other_bucket(tmp_path: Path) -> None:
    t = table(t=[0, 0, 0, 1], c=["a", "b", None, "zzz"])
    built = build(
        tmp_path, t, [{"name": "c", "transforms": [{"type": "onehot", "vocabulary": ["b", "a"]}]}]
    )
    assert built.manifest["features"] == ["c__b", "c__a", "c__other"]
    assert built.train.select(["c__b", "c__a", "c__other"]).to_pylist() == [
        {"c__b": 0.0, "c__a": 1.0, "c__other": 0.0},
        {"c__b": 1.0, "c__a": 0.0, "c__other": 0.0},
        {"c__b": 0.0, "c__a": 0.0, "c__other": 1.0},  # missing goes to other
    ]
    assert column(built.validation, "c__other") == [1.0]


def test_learned_onehot_keeps_the_most_frequent_with_ties_broken_by_value(tmp_path: Path) -> None:
    values = ["b", "b", "b", "c", "c", "a", "a", "d", "c", "c"]
    t = table(t=[0] * 8 + [1, 1], c=values)
    spec = [{"name": "c", "transforms": [{"type": "onehot", "maxCategories": 2}]}]
    built = build(tmp_path, t, spec, batch_rows=3)
    # b: 3, then a and c tie at 2 (c's other rows are validation rows): a wins by value
    assert built.transform("c")[0]["categories"] == ["b", "a"]
    assert built.manifest["features"] == ["c__b", "c__a", "c__other"]
    assert column(built.train, "c__other") == [0, 0, 0, 1, 1, 0, 0, 1]
    no_other = build(
        tmp_path,
        t,
        [{"name": "c", "transforms": [{"type": "onehot", "maxCategories": 2, "other": False}]}],
        name="o2",
    )
    assert no_other.manifest["features"] == ["c__b", "c__a"]


def test_onehot_of_integers_names_columns_by_value(tmp_path: Path) -> None:
    t = table(t=[0, 0, 0, 1], site=[3, 1, 3, 1])
    built = build(tmp_path, t, [{"name": "site", "transforms": ["onehot"]}])
    assert built.manifest["features"] == ["site__3", "site__1", "site__other"]
    assert column(built.validation, "site__1") == [1.0]


def test_fnv1a_matches_the_published_test_vectors() -> None:
    from providers.local.data.features_hash import _fnv1a

    got = _fnv1a(pa.array(["", "a", "foobar"]))
    assert [int(v) for v in got] == [0xCBF29CE484222325, 0xAF63DC4C8601EC8C, 0x85944171F73967E8]


def test_hash_buckets_are_stable_across_processes(tmp_path: Path) -> None:
    t = table(t=[0, 0, 0, 1], c=["apple", "pear", "apple", "fig"])
    built = build(tmp_path, t, [{"name": "c", "transforms": [{"type": "hash", "buckets": 7}]}])
    here = column(built.train, "c") + column(built.validation, "c")
    assert here[0] == here[2] and all(0 <= v < 7 and v == int(v) for v in here)
    code = (
        "import pyarrow as pa; from providers.local.data.features_hash import column_hash;"
        "print([int(h % 7) for h in column_hash(pa.array(['apple','pear','apple','fig']))])"
    )
    other = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "123"},
    )
    assert json.loads(other.stdout) == here


def test_fillna_value_and_strategies(tmp_path: Path) -> None:
    t = table(
        t=[0, 0, 0, 0, 0, 1],
        x=[1.0, None, 2.0, 10.0, 2.0, None],
        s=["u", None, "v", "v", "u", None],
    )
    built = build(
        tmp_path,
        t,
        [
            {"name": "const", "column": "x", "transforms": [{"type": "fillna", "value": -1}]},
            {"name": "mean", "column": "x", "transforms": [{"type": "fillna", "strategy": "mean"}]},
            {
                "name": "median",
                "column": "x",
                "transforms": [{"type": "fillna", "strategy": "median"}],
            },
            {"name": "mode", "column": "x", "transforms": [{"type": "fillna", "strategy": "mode"}]},
            {
                "name": "s",
                "transforms": [
                    {"type": "fillna", "strategy": "mode"},
                    {"type": "onehot", "vocabulary": ["u", "v"], "other": False},
                ],
            },
        ],
    )
    assert column(built.train, "const") == [1.0, -1.0, 2.0, 10.0, 2.0]
    assert column(built.train, "mean")[1] == pytest.approx(3.75)
    assert column(built.train, "median")[1] == 2.0 and column(built.validation, "median") == [2.0]
    assert column(built.train, "mode")[1] == 2.0
    assert built.transform("s")[0]["fill"] == "u"  # u and v tie at 2: u by value
    assert column(built.validation, "s__u") == [1.0]


def test_datetime_parts(tmp_path: Path) -> None:
    moments = [dt.datetime(2024, 3, 5, 14, 30), dt.datetime(2023, 12, 31, 23, 59)]
    t = table(
        t=[0, 1],
        ts=pa.array(moments, pa.timestamp("us")),
        d=pa.array([dt.date(2024, 3, 5), dt.date(2020, 2, 29)]),
    )
    parts = ["year", "month", "day", "dayofweek", "dayofyear", "hour", "minute"]
    built = build(
        tmp_path,
        t,
        [
            {"name": "ts", "transforms": [{"type": "datetime", "parts": parts}]},
            {"name": "d", "transforms": [{"type": "datetime", "parts": ["year", "dayofyear"]}]},
        ],
    )
    assert built.manifest["features"] == [f"ts_{p}" for p in parts] + ["d_year", "d_dayofyear"]
    assert built.train.select([f"ts_{p}" for p in parts]).to_pylist()[0] == {
        "ts_year": 2024,
        "ts_month": 3,
        "ts_day": 5,
        "ts_dayofweek": 1,  # a Tuesday
        "ts_dayofyear": 65,
        "ts_hour": 14,
        "ts_minute": 30,
    }
    assert column(built.validation, "ts_dayofyear") == [365.0]
    assert column(built.validation, "d_dayofyear") == [60.0]


def test_an_expanding_transform_must_come_last() -> None:
    with pytest.raises(FeatureError, match="onehot makes several columns"):
        parse_spec(spec_of([{"name": "c", "transforms": ["onehot", "standardize"]}]))


# --- splits ----------------------------------------------------------------------------


def test_temporal_split_on_timestamps(tmp_path: Path) -> None:
    days = [
        dt.datetime(2023, 12, 30),
        dt.datetime(2023, 12, 31, 23),
        dt.datetime(2024, 1, 1),
        dt.datetime(2024, 2, 1),
    ]
    t = table(ts=pa.array(days, pa.timestamp("ms")), x=[1.0, 2.0, 3.0, 4.0])
    built = build(
        tmp_path,
        t,
        [{"name": "x"}],
        {"type": "temporal", "column": "ts", "validationFrom": "2024-01-01"},
    )
    assert column(built.train, "x") == [1.0, 2.0] and column(built.validation, "x") == [3.0, 4.0]


def test_random_split_is_seeded_and_stable_when_rows_are_added(tmp_path: Path) -> None:
    split = {"type": "random", "validationFraction": 0.25, "seed": 7}
    small = table(x=[float(i) for i in range(2000)])
    first = build(tmp_path, small, [{"name": "x"}], split, batch_rows=300, name="a")
    validation_ids = set(column(first.validation, "id"))
    assert 400 < len(validation_ids) < 600
    again = build(tmp_path, small, [{"name": "x"}], split, batch_rows=300, name="b")
    assert set(column(again.validation, "id")) == validation_ids
    grown = table(x=[float(i) for i in range(3000)])
    more = build(tmp_path, grown, [{"name": "x"}], split, batch_rows=300, name="c")
    assert {i for i in column(more.validation, "id") if i < 2000} == validation_ids
    reseeded = build(tmp_path, small, [{"name": "x"}], {**split, "seed": 8}, name="d")
    assert set(column(reseeded.validation, "id")) != validation_ids


# --- guarantees ------------------------------------------------------------------------


def test_no_statistic_leaks_from_validation_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    train_x = rng.normal(10, 2, 500)
    train_x[::7] = np.nan
    train_c = rng.choice(["a", "b", "c"], 500, p=[0.5, 0.3, 0.2])
    n_val = 300  # more validation rows than train rows of some categories, all extreme
    t = table(
        t=[0] * 500 + [1] * n_val,
        x=list(train_x) + [1e9] * n_val,
        m=list(train_x) + [-1e9] * n_val,
        c=list(train_c) + ["zzz"] * n_val,
    )
    built = build(
        tmp_path,
        t,
        [
            {"name": "x", "transforms": [{"type": "fillna", "strategy": "median"}, "standardize"]},
            {"name": "m", "transforms": [{"type": "fillna", "strategy": "mean"}, "minmax"]},
            {"name": "c", "transforms": [{"type": "onehot", "maxCategories": 3}]},
        ],
        batch_rows=64,
    )
    known = train_x[~np.isnan(train_x)]
    median = float(np.median(known))
    filled = np.where(np.isnan(train_x), median, train_x)
    fill_x, standardize = built.transform("x")
    assert fill_x["fill"] == median
    assert standardize["mean"] == pytest.approx(float(filled.mean()), rel=1e-12)
    assert standardize["std"] == pytest.approx(float(filled.std()), rel=1e-12)
    fill_m, minmax = built.transform("m")
    assert fill_m["fill"] == pytest.approx(float(known.mean()), rel=1e-12)
    assert (minmax["min"], minmax["max"]) == (float(known.min()), float(known.max()))
    assert built.transform("c")[0]["categories"] == ["a", "b", "c"]  # never "zzz"
    assert built.stats["features"]["x"]["train"]["mean"] == pytest.approx(0.0, abs=1e-6)


def test_saved_params_applied_to_validation_rows_give_the_materialised_table(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(1)
    n = 400
    t = table(
        t=[int(v) for v in rng.integers(0, 2, n)],
        x=[None if i % 9 == 0 else float(v) for i, v in enumerate(rng.normal(0, 5, n))],
        c=[str(v) for v in rng.choice(list("abcdefg"), n)],
        ts=pa.array(
            [dt.datetime(2024, 1, 1) + dt.timedelta(hours=int(h)) for h in rng.integers(0, 9000, n)]
        ),
    )
    built = build(
        tmp_path,
        t,
        [
            {
                "name": "x",
                "transforms": [
                    {"type": "fillna", "strategy": "median"},
                    {"type": "clip", "min": -8},
                    "standardize",
                ],
            },
            {"name": "c", "transforms": [{"type": "onehot", "maxCategories": 4}]},
            {"name": "h", "column": "c", "transforms": [{"type": "hash", "buckets": 16}, "minmax"]},
            {
                "name": "ts",
                "transforms": [{"type": "datetime", "parts": ["month", "dayofweek", "hour"]}],
            },
        ],
        batch_rows=50,
    )
    params = json.loads((built.directory / "transform.json").read_text())
    rows = t.filter(pc.greater_equal(t["t"], 1))
    served = apply_transform(params, rows).cast(built.validation.schema)
    assert served.equals(built.validation)
    assert served.num_rows == built.manifest["rows"]["validation"]


def test_two_materialisations_write_identical_tables(tmp_path: Path) -> None:
    t = table(t=[0, 0, 1, 1, 0], x=[1.0, 2.0, 3.0, None, 5.0], c=["a", "b", "a", "c", "b"])
    features = [
        {"name": "x", "transforms": [{"type": "fillna", "value": 0}, "standardize"]},
        {"name": "c", "transforms": ["onehot"]},
    ]
    one = build(tmp_path, t, features, name="one")
    two = build(tmp_path, t, features, name="two")
    for split in ("train", "validation"):
        assert (one.directory / f"{split}.parquet").read_bytes() == (
            two.directory / f"{split}.parquet"
        ).read_bytes()
    assert one.manifest["sha256"] == two.manifest["sha256"]
    assert (one.directory / "transform.json").read_bytes() == (
        two.directory / "transform.json"
    ).read_bytes()


def test_stats_describe_features_sources_and_label(tmp_path: Path) -> None:
    t = table(t=[0] * 5 + [1], x=[1.0, 2.0, 3.0, 4.0, None, 6.0], c=["a", "b", "a", "a", "b", "b"])
    t = t.set_column(1, "y", pa.array([0, 1, 1, None, 0, 1]))
    built = build(
        tmp_path,
        t,
        [
            {"name": "x", "transforms": [{"type": "fillna", "value": 0}]},
            {"name": "c", "transforms": ["onehot"]},
        ],
    )
    stats = built.stats
    assert stats["rows"] == {"train": 4, "validation": 1}
    assert stats["droppedNullLabel"] == {"train": 1, "validation": 0}
    source_x = stats["sources"]["x"]["train"]
    assert (source_x["count"], source_x["nulls"], source_x["min"], source_x["max"]) == (
        3,
        1,
        1.0,
        3.0,
    )
    assert source_x["quantiles"]["p50"] == 2.0 and source_x["mean"] == 2.0
    assert stats["sources"]["c"]["train"]["topCategories"] == [
        {"value": "a", "count": 2},
        {"value": "b", "count": 2},
    ]
    assert (
        stats["features"]["x"]["train"]["max"] == 3.0
        and stats["features"]["x"]["validation"]["mean"] == 6.0
    )
    assert stats["label"]["train"]["count"] == 4


# --- bad input -------------------------------------------------------------------------


def test_a_missing_column_names_the_feature_and_the_column(tmp_path: Path) -> None:
    t = table(t=[0, 1], x=[1.0, 2.0])
    with pytest.raises(FeatureError, match=r"feature 'income' reads column 'incme'.*ds-test"):
        build(tmp_path, t, [{"name": "income", "column": "incme"}])


def test_a_non_unique_entity_is_refused(tmp_path: Path) -> None:
    t = table(t=[0, 0, 1], x=[1.0, 2.0, 3.0]).set_column(0, "id", pa.array([5, 6, 5]))
    with pytest.raises(
        FeatureError, match=r"entity key \(id\) is not unique.*\(5,\) appears 2 times"
    ):
        build(tmp_path, t, [{"name": "x"}])


def test_missing_values_left_after_transforms_are_refused(tmp_path: Path) -> None:
    t = table(t=[0, 0, 1], x=[1.0, None, 3.0])
    with pytest.raises(FeatureError, match=r"feature 'x'.*missing values.*fillna"):
        build(tmp_path, t, [{"name": "x", "transforms": ["standardize"]}])


def test_a_string_column_needs_a_categorical_transform(tmp_path: Path) -> None:
    t = table(t=[0, 1], c=["a", "b"])
    with pytest.raises(
        FeatureError, match=r"feature 'c': standardize needs numbers.*onehot or hash"
    ):
        build(tmp_path, t, [{"name": "c", "transforms": ["standardize"]}])


def test_applying_params_of_another_code_version_is_refused() -> None:
    with pytest.raises(FeatureError, match="version 0"):
        apply_transform(
            {"version": 0, "features": [], "entity": [], "label": "y"}, pa.table({"y": [1]})
        )


@pytest.mark.parametrize(
    "values",
    [
        [0.0, 1.0, 1.0, 0.0, 0.0],  # onehot
        [float(h) for h in range(24)] * 3 + [5.0],  # hours
        [1e9 + 2 * k for k in (0, 1, 1, 2, 0, 2, 2)],  # far from zero, a step of two
        [-3.0, 7.0, 7.0, 7.0, 40000.0],
        [0.5, 1.0, 2.0],  # not whole numbers: np.quantile itself
        [4.0],
    ],
)
def test_quantiles_of_few_whole_values_are_numpys_to_the_last_bit(values: list[float]) -> None:
    from providers.local.data.features_stats import QUANTILES, quantiles

    rng = np.random.default_rng(len(values))
    sample = rng.permutation(np.asarray(values * 37, dtype=np.float64))
    assert quantiles(sample) == [float(v) for v in np.quantile(sample, list(QUANTILES.values()))]
    assert quantiles(np.zeros(0)) == [None] * len(QUANTILES)


def test_a_chain_of_numeric_transforms_gives_what_converting_at_each_step_gives() -> None:
    from providers.local.data import features as f

    def stepwise(name: str, transforms: list[dict[str, Any]], values: pa.Array) -> Any:
        current: Any = values
        for t in transforms:  # every result made Arrow values before the next transform
            current = f.APPLY[t["type"]](name, t, current)
            if isinstance(current, np.ndarray):
                current = f.from_numeric(current)
        return current

    values = pa.array([3.5, None, -0.5, 12.0, float("nan"), 0.0])
    chains = [
        [
            {"type": "fillna", "fill": 1.0, "strategy": "median"},
            {"type": "clip", "min": 0.0},
            {"type": "log1p"},
            {"type": "standardize", "mean": 0.7, "std": 0.3},
        ],
        [
            {"type": "fillna", "value": None},
            {"type": "minmax", "min": -1.0, "max": 9.0},
            {"type": "hash", "buckets": 8},
        ],
        [{"type": "clip", "max": 4.0}, {"type": "onehot", "categories": [4.0, 0.0]}],
        [{"type": "passthrough"}, {"type": "bucketize", "boundaries": [0.0, 5.0]}],
    ]
    for transforms in chains:
        got, want = f.apply_chain("x", transforms, values), stepwise("x", transforms, values)
        if isinstance(want, dict):
            assert isinstance(got, dict)
            assert {k: v.to_pylist() for k, v in got.items()} == {
                k: v.to_pylist() for k, v in want.items()
            }
        else:
            assert not isinstance(got, dict)
            assert got.type == want.type and got.to_pylist() == want.to_pylist(), transforms


@pytest.mark.parametrize(
    "encoded",
    [
        pa.DictionaryArray.from_arrays(
            pa.array([2, 0, None, 1, 2, 0], pa.int32()), pa.array(["b", "a", "zz"])
        ),
        pa.DictionaryArray.from_arrays(pa.array([0, None, 1, 1], pa.int32()), pa.array(["a", "a"])),
        pa.DictionaryArray.from_arrays(
            pa.array([None, None], pa.int32()), pa.array([], pa.string())
        ),
        pa.DictionaryArray.from_arrays(pa.array([0, 1, 1], pa.int32()), pa.array([None, "a"])),
    ],
    ids=["plain", "repeated-value", "empty-dictionary", "null-in-dictionary"],
)
def test_dictionary_encoded_columns_give_what_their_decoded_values_give(
    encoded: pa.DictionaryArray,
) -> None:
    from providers.local.data.features import apply_chain
    from providers.local.data.features_fit import CategoryCounter
    from providers.local.data.features_hash import column_hash

    decoded = encoded.dictionary_decode()
    for transforms in (
        [{"type": "onehot", "categories": ["a", "zz", "q"], "other": True}],
        [{"type": "hash", "buckets": 7}],
    ):
        got, want = apply_chain("k", transforms, encoded), apply_chain("k", transforms, decoded)
        if isinstance(want, dict):
            assert isinstance(got, dict)
            assert {k: v.to_pylist() for k, v in got.items()} == {
                k: v.to_pylist() for k, v in want.items()
            }
        else:
            assert not isinstance(got, dict) and got.to_pylist() == want.to_pylist()
    assert column_hash(encoded).tolist() == column_hash(decoded).tolist()
    counted, plain = CategoryCounter(), CategoryCounter()
    counted.add(encoded)
    plain.add(decoded)
    assert (counted.distinct, counted.top(5)) == (plain.distinct, plain.top(5))


@pytest.mark.parametrize(
    "shares",
    [(0.3, 0.0, 1.0, 0.9), (1.0, 1.0), (0.0,)],
    ids=["a batch of only zeros, one of only ones", "only ones", "only zeros"],
)
def test_a_onehot_columns_statistics_from_its_count_are_those_of_its_values(
    shares: tuple[float, ...],
) -> None:
    from providers.local.data.features_stats import ColumnStats

    rng = np.random.default_rng(3)
    batches = [
        (rng.random(n) < p).astype(np.float32)
        for n, p in zip((1000, 700, 50, 333), shares, strict=False)
    ]
    counted, summed = ColumnStats(False, binary=True), ColumnStats(False)
    for values in batches:
        sampled = np.arange(0, len(values), 3)
        counted.add(pa.array(values), sampled)
        summed.add(pa.array(values), sampled)
    got, want = counted.result(), summed.result()
    assert got["quantiles"] == want["quantiles"]
    assert (got["count"], got["min"], got["max"], got["mean"]) == (
        want["count"],
        want["min"],
        want["max"],
        want["mean"],
    )
    assert got["std"] == pytest.approx(want["std"], rel=1e-14)
    every = np.concatenate(batches).astype(np.float64)
    assert got["std"] == pytest.approx(float(every.std()), rel=1e-14)
