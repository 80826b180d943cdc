"""Every fitted transform and the seeded random split on Spark local[2] equal the local engine's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.spark.conftest import require_engine

SPEC = {
    "dataset": "d",
    "entity": ["user", "day"],
    "label": {"column": "label"},
    "split": {"type": "random", "validationFraction": 0.3, "seed": 7},
    "segments": ["city", "day"],
    "features": [
        {"name": "amount", "transforms": [{"type": "fillna", "strategy": "median"}, "standardize"]},
        {"name": "score", "transforms": [{"type": "fillna", "strategy": "mean"}, "minmax"]},
        {"name": "city", "transforms": [{"type": "fillna", "strategy": "mode"},
                                        {"type": "onehot", "maxCategories": 4}]},
        {"name": "visits", "transforms": [{"type": "fillna", "strategy": "mode"}, "log1p"]},
        {"name": "shop", "transforms": [{"type": "hash", "buckets": 16}]},
        {"name": "seen", "transforms": [{"type": "datetime", "parts": ["month", "hour"]}]},
    ],
}  # fmt: skip


def snapshot(path: Path, rows: int = 5000) -> None:
    rng = np.random.default_rng(3)
    missing = rng.random(rows) < 0.1
    pq.write_table(
        pa.table({
            "user": pa.array([f"u{i % 1000}" for i in range(rows)]),
            "day": pa.array(np.arange(rows) // 1000, pa.int64()),
            "amount": pa.array(rng.normal(10, 3, rows), mask=missing),
            "score": pa.array(rng.random(rows) * 100, mask=rng.random(rows) < 0.05),
            "city": pa.array([["oslo", "rome", "lima", "kyiv", "pune", None][i % 6] for i in range(rows)]),
            "visits": pa.array(rng.integers(0, 9, rows), mask=rng.random(rows) < 0.05),
            "shop": pa.array(rng.integers(0, 300, rows)),
            "seen": pa.array(1_700_000_000 + rng.integers(0, 10**7, rows), pa.timestamp("s")),
            "label": pa.array((rng.random(rows) < 0.4).astype(np.int64), mask=rng.random(rows) < 0.02),
        }),
        path,
        row_group_size=1500,  # several Spark partitions
    )  # fmt: skip


def test_every_transform_and_the_random_split_match_the_local_engine(tmp_path: Path) -> None:
    require_engine()
    from providers.local.data.features import parse_spec
    from providers.local.data.features_build import materialise
    from providers.local.data.spark_engine import SparkSettings, materialise_spark

    source = tmp_path / "data.parquet"
    snapshot(source)
    local, spark = tmp_path / "local", tmp_path / "spark"
    local.mkdir(), spark.mkdir()
    spec = parse_spec(SPEC)
    expected = materialise(spec, source, "ds-1", "fs-1", local, batch_rows=131_072)
    settings = SparkSettings(master="local[2]", driver_host="127.0.0.1",
                             conf=(("spark.sql.files.maxPartitionBytes", "16384"),))  # fmt: skip
    got = materialise_spark(spec, source, "ds-1", "fs-1", spark, settings)
    assert got["rows"] == expected["rows"] and got["sha256"] == expected["sha256"]
    for split in ("train", "validation"):
        assert pq.read_table(spark / f"{split}.parquet").equals(
            pq.read_table(local / f"{split}.parquet")
        )
    ours = json.loads((spark / "transform.json").read_text())
    theirs = json.loads((local / "transform.json").read_text())
    for a, b in zip(ours["features"], theirs["features"], strict=True):
        for x, y in zip(a["transforms"], b["transforms"], strict=True):
            assert x.keys() == y.keys()
            for key in x:
                if isinstance(y[key], float):
                    assert x[key] == pytest.approx(y[key], rel=1e-9), (a["name"], key)
                else:
                    assert x[key] == y[key], (a["name"], key)
    assert json.loads((spark / "stats.json").read_text()) == json.loads(
        (local / "stats.json").read_text()
    )
    assert sorted(p.name for p in spark.iterdir()) == sorted(p.name for p in local.iterdir())
