"""The local engine against a reference computed here with numpy and pandas.

One fixture of 5,000 rows (missing values, skewed categories, a temporal split, missing
labels), materialised in batches of 700 rows. Every fitted parameter must be within a
relative 1e-12 of the reference, every table must hold the reference's rows in the
snapshot's order with the same column types, and the statistics must match numpy's.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from providers.local.data.features import FeatureSpec, parse_spec
from providers.local.data.features_build import materialise

ROWS = 5_000
SPLIT_FROM = "2024-03-01"
RELATIVE = 1e-12
MASK64 = (1 << 64) - 1
FEATURES: list[dict[str, Any]] = [
    {"name": "num", "transforms": [{"type": "fillna", "strategy": "median"}, "standardize"]},
    {"name": "spend", "transforms": ["log1p", "minmax"]},
    {"name": "kind", "transforms": [{"type": "onehot", "maxCategories": 4}]},
    {"name": "site", "transforms": [{"type": "onehot", "maxCategories": 3, "other": False}]},
    {"name": "shop", "transforms": [{"type": "hash", "buckets": 16}]},
    {"name": "ts", "transforms": [{"type": "datetime", "parts": ["month", "dayofweek", "hour"]}]},
    {
        "name": "capped",
        "column": "num",
        "transforms": [
            {"type": "fillna", "strategy": "mean"},
            {"type": "clip", "min": 40, "max": 60},
            {"type": "bucketize", "boundaries": [45, 50, 55]},
        ],
    },
    {"name": "count", "transforms": [{"type": "fillna", "strategy": "mode"}]},
    {"name": "flag", "transforms": []},
]


def snapshot(seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = dt.datetime(2024, 1, 1)
    weights = 1 / np.arange(1, 9)
    frame = pd.DataFrame(
        {
            "id": np.arange(ROWS, dtype=np.int64) * 3 + 11,
            "ts": [start + dt.timedelta(seconds=int(s)) for s in rng.integers(0, 90 * 86400, ROWS)],
            "num": np.where(rng.random(ROWS) < 0.1, np.nan, rng.normal(50, 8, ROWS)),
            "spend": rng.lognormal(2, 1.5, ROWS),
            "kind": rng.choice([f"k{i}" for i in range(8)], ROWS, p=weights / weights.sum()),
            "site": rng.integers(1, 7, ROWS),
            "shop": rng.integers(-500, 500, ROWS),
            "count": pd.array(rng.poisson(3, ROWS), dtype="Int64"),
            "flag": rng.random(ROWS) < 0.4,
            "label": pd.array(rng.integers(0, 2, ROWS), dtype="Int64"),
        }
    )
    frame.loc[rng.random(ROWS) < 0.05, "kind"] = None
    frame.loc[rng.random(ROWS) < 0.05, "count"] = pd.NA
    frame.loc[rng.random(ROWS) < 0.03, "label"] = pd.NA
    return frame


def splitmix64(value: int) -> int:
    z = (value + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def top(values: pd.Series, limit: int) -> list[Any]:
    counts = values.dropna().value_counts()
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [value for value, _ in ordered[:limit]]


def reference(frame: pd.DataFrame) -> tuple[dict[str, dict[str, Any]], pd.DataFrame]:
    """The fitted values, and every row's features, computed from the training rows."""
    validation = frame["ts"] >= pd.Timestamp(SPLIT_FROM)
    train = frame[~validation & frame["label"].notna()]
    median = float(np.median(train["num"].dropna()))
    filled = train["num"].fillna(median)
    mean, std = float(filled.mean()), float(np.sqrt(np.mean((filled - filled.mean()) ** 2)))
    logs = np.log1p(train["spend"])
    fitted = {
        "num": {"fill": median, "mean": mean, "std": std},
        "spend": {"min": float(logs.min()), "max": float(logs.max())},
        "kind": {"categories": top(train["kind"], 4)},
        "site": {"categories": top(train["site"], 3)},
        "capped": {"fill": float(train["num"].mean())},
        "count": {"fill": top(train["count"], 1)[0]},
    }
    out = pd.DataFrame({"id": frame["id"]})
    out["num"] = (frame["num"].fillna(median) - mean) / std
    spend = np.log1p(frame["spend"])
    out["spend"] = (spend - logs.min()) / (logs.max() - logs.min())
    kinds = fitted["kind"]["categories"]
    for value in kinds:
        out[f"kind__{value}"] = (frame["kind"] == value).astype(float)
    out["kind__other"] = (~frame["kind"].isin(kinds)).astype(float)
    for value in fitted["site"]["categories"]:
        out[f"site__{value}"] = (frame["site"] == value).astype(float)
    out["shop"] = [splitmix64(v & MASK64) % 16 for v in frame["shop"]]
    out["ts_month"] = frame["ts"].dt.month
    out["ts_dayofweek"] = frame["ts"].dt.day_of_week
    out["ts_hour"] = frame["ts"].dt.hour
    capped = frame["num"].fillna(fitted["capped"]["fill"]).clip(40, 60)
    out["capped"] = np.searchsorted([45.0, 50.0, 55.0], capped, side="right")
    out["count"] = frame["count"].fillna(fitted["count"]["fill"]).astype(float)
    out["flag"] = frame["flag"].astype(float)
    features = [c for c in out.columns if c != "id"]
    out = out.astype({c: np.float32 for c in features})
    out["label"] = frame["label"]
    out["split"] = np.where(validation, "validation", "train")
    return fitted, out[frame["label"].notna().to_numpy()]


def reference_spec() -> FeatureSpec:
    return parse_spec(
        {
            "dataset": "d",
            "entity": ["id"],
            "label": {"column": "label"},
            "features": FEATURES,
            "split": {"type": "temporal", "column": "ts", "validationFrom": SPLIT_FROM},
        }
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    tmp = tmp_path_factory.mktemp("reference")
    frame = snapshot()
    source = tmp / "snapshot.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), source)
    spec = reference_spec()
    (tmp / "out").mkdir()
    materialise(spec, source, "ds-ref", "fs-ref", tmp / "out", batch_rows=700)
    return tmp / "out", frame


def fitted_values(directory: Path) -> dict[str, dict[str, Any]]:
    params = json.loads((directory / "transform.json").read_text())
    values: dict[str, dict[str, Any]] = {}
    for feature in params["features"]:
        merged: dict[str, Any] = {}
        for transform in feature["transforms"]:
            merged.update({k: transform[k] for k in ("fill", "mean", "std", "min", "max")
                           if k in transform and transform.get("strategy", True)})  # fmt: skip
            if transform["type"] == "onehot":
                merged["categories"] = transform["categories"]
        values[feature["name"]] = merged
    return values


def test_fitted_parameters_are_the_references_within_1e_12(
    built: tuple[Path, pd.DataFrame],
) -> None:
    directory, frame = built
    expected, _ = reference(frame)
    got = fitted_values(directory)
    for name, values in expected.items():
        for key, value in values.items():
            if isinstance(value, float):
                assert got[name][key] == pytest.approx(value, rel=RELATIVE, abs=0), (name, key)
            else:
                assert got[name][key] == value, (name, key)


def test_tables_hold_the_references_rows_in_order_with_its_types(
    built: tuple[Path, pd.DataFrame],
) -> None:
    directory, frame = built
    _, rows = reference(frame)
    for split in ("train", "validation"):
        table = pq.read_table(directory / f"{split}.parquet")
        want = rows[rows["split"] == split].drop(columns="split")
        assert table.column_names == list(want.columns)
        assert table.schema.field("id").type == pa.int64()
        assert table.schema.field("label").type == pa.int64()
        assert all(table.schema.field(c).type == pa.float32() for c in want.columns[1:-1])
        assert table["id"].to_pylist() == want["id"].tolist()  # the snapshot's order
        assert table["label"].to_pylist() == want["label"].tolist()
        for column in want.columns[1:-1]:
            np.testing.assert_allclose(
                table[column].to_numpy(), want[column].to_numpy(), rtol=1e-6, atol=1e-6,
                err_msg=f"{split}.{column}",
            )  # fmt: skip


def test_statistics_are_numpys(built: tuple[Path, pd.DataFrame]) -> None:
    directory, frame = built
    _, rows = reference(frame)
    stats = json.loads((directory / "stats.json").read_text())
    train = rows[rows["split"] == "train"]
    source = frame[(frame["ts"] < pd.Timestamp(SPLIT_FROM)) & frame["label"].notna()]["num"]
    for got, values, nulls in (
        (stats["features"]["num"]["train"], train["num"].to_numpy(np.float64), 0),
        (stats["sources"]["num"]["train"], source.dropna().to_numpy(), int(source.isna().sum())),
    ):
        assert (got["count"], got["nulls"]) == (len(values), nulls)
        for key, value in (
            ("mean", values.mean()),
            ("std", values.std()),
            ("min", values.min()),
            ("max", values.max()),
        ):
            assert got[key] == pytest.approx(float(value), rel=RELATIVE), key
        assert got["quantiles"]["p25"] == pytest.approx(float(np.quantile(values, 0.25)))
    kinds = stats["sources"]["kind"]["train"]
    counts = frame.loc[source.index, "kind"].value_counts()
    assert kinds["distinct"] == len(counts)
    assert kinds["topCategories"][0] == {"value": counts.index[0], "count": int(counts.iloc[0])}


def test_a_streamed_snapshot_gives_the_same_files_as_a_held_one(
    built: tuple[Path, pd.DataFrame], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Held in memory (the fixture: a small snapshot) or read again for every pass (as a
    snapshot larger than IN_MEMORY_BYTES is), the same tables, fit and statistics."""
    from providers.local.data import features_source

    directory, _ = built
    source = directory.parent / "snapshot.parquet"
    held = features_source.Source.open(reference_spec(), source).table
    assert held is not None  # held there, its onehot strings (kind) dictionary-encoded
    assert [c for c in held.column_names if pa.types.is_dictionary(held[c].type)] == ["kind"]
    monkeypatch.setattr(features_source, "IN_MEMORY_BYTES", 0)
    spec = reference_spec()
    assert features_source.Source.open(spec, source).table is None  # streamed here
    materialise(spec, source, "ds-ref", "fs-ref", tmp_path, batch_rows=700)
    for name in ("train.parquet", "validation.parquet", "transform.json", "stats.json"):
        assert (tmp_path / name).read_bytes() == (directory / name).read_bytes(), name
