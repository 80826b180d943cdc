"""Benchmark FeatureSet materialisation: rows per second and peak memory, against pandas.

Generates a snapshot parquet of N rows (an int64 id, a timestamp over two years, a
numeric column with 5% missing values, a skewed positive column, a 30-value string
category and an int64 category, a 0/1 label) and materialises a FeatureSet over it in a
child process, so the peak RSS reported is that run's own:

  num    fillna median -> standardize        (two fitting passes)
  spend  log1p -> minmax
  kind   onehot, learned, 10 categories + other
  shop   hash into 64 buckets
  ts     datetime: month, dayofweek, hour
  split  temporal at 2024-07-01

The peer is the same work written the usual in-memory way with pandas (read the parquet,
fit on the train rows, get_dummies, write both tables), also in its own child process.
Target: peak RSS under 2 GB at 10,000,000 rows (the materialiser streams in batches).

    .venv/bin/python bench/features_bench.py --rows 1000000
    .venv/bin/python bench/features_bench.py --rows 10000000 --no-peer
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CHUNK = 1_000_000
TARGET_RSS_MB = 2048
SPLIT_FROM = "2024-07-01"
SPEC: dict[str, Any] = {
    "dataset": "bench",
    "entity": ["id"],
    "label": {"column": "label"},
    "split": {"type": "temporal", "column": "ts", "validationFrom": SPLIT_FROM},
    "features": [
        {"name": "num", "transforms": [{"type": "fillna", "strategy": "median"}, "standardize"]},
        {"name": "spend", "transforms": ["log1p", "minmax"]},
        {"name": "kind", "transforms": [{"type": "onehot", "maxCategories": 10}]},
        {"name": "shop", "transforms": [{"type": "hash", "buckets": 64}]},
        {
            "name": "ts",
            "transforms": [{"type": "datetime", "parts": ["month", "dayofweek", "hour"]}],
        },
    ],
}


def generate(rows: int, path: Path, seed: int = 0) -> None:
    """Write the synthetic snapshot, CHUNK rows at a time."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    kinds = pa.array([f"kind-{i:02d}" for i in range(30)])
    start = np.datetime64("2023-01-01T00:00:00", "s").astype(np.int64)
    span = 2 * 365 * 24 * 3600
    writer = None
    try:
        for first in range(0, rows, CHUNK):
            n = min(CHUNK, rows - first)
            num = rng.normal(50, 10, n)
            weights = 1 / np.arange(1, 31)
            table = pa.table(
                {
                    "id": np.arange(first, first + n, dtype=np.int64),
                    "ts": pa.array(start + rng.integers(0, span, n), pa.timestamp("s")),
                    "num": pa.array(num, mask=rng.random(n) < 0.05),
                    "spend": rng.lognormal(3, 1, n),
                    "kind": pa.DictionaryArray.from_arrays(
                        rng.choice(30, n, p=weights / weights.sum()).astype(np.int32), kinds
                    ).cast(pa.string()),
                    "shop": rng.integers(0, 5000, n),
                    "label": (rng.random(n) < 0.3).astype(np.int64),
                }
            )
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()


def _child_pipeform(source: Path, out: Path) -> dict[str, Any]:
    from providers.local.data.features import parse_spec
    from providers.local.data.features_build import materialise

    out.mkdir()
    manifest = materialise(parse_spec(SPEC), source, "ds-bench", "fs-bench", out)
    return {"rows": manifest["rows"], "features": len(manifest["features"])}


def _child_pandas(source: Path, out: Path) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    out.mkdir()
    frame = pd.read_parquet(source)
    valid = frame["ts"] >= pd.Timestamp(SPLIT_FROM)
    train = frame[~valid]
    result = pd.DataFrame({"id": frame["id"]})
    median = train["num"].median()
    filled = frame["num"].fillna(median)
    result["num"] = (filled - filled[~valid].mean()) / filled[~valid].std(ddof=0)
    spend = np.log1p(frame["spend"])
    low, high = spend[~valid].min(), spend[~valid].max()
    result["spend"] = (spend - low) / (high - low)
    top = train["kind"].value_counts().index[:10]
    kind = frame["kind"].where(frame["kind"].isin(top), "other")
    result = pd.concat([result, pd.get_dummies(kind, prefix="kind", prefix_sep="__")], axis=1)
    result["shop"] = pd.util.hash_pandas_object(frame["shop"], index=False) % 64
    for part, values in (
        ("month", frame["ts"].dt.month),
        ("dayofweek", frame["ts"].dt.dayofweek),
        ("hour", frame["ts"].dt.hour),
    ):
        result[f"ts_{part}"] = values
    result = result.astype({c: "float32" for c in result.columns if c != "id"})
    result["label"] = frame["label"]
    result[~valid].to_parquet(out / "train.parquet")
    result[valid].to_parquet(out / "validation.parquet")
    return {"rows": {"train": int((~valid).sum()), "validation": int(valid.sum())}}


def _child(kind: str, source: Path, out: Path) -> None:
    started = time.perf_counter()
    result = (_child_pipeform if kind == "pipeform" else _child_pandas)(source, out)
    result["seconds"] = time.perf_counter() - started
    result["peakRssMB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def _measure(kind: str, source: Path, out: Path) -> dict[str, Any]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        kind,
        str(source),
        str(out),
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
    if done.returncode:
        raise SystemExit(f"{kind} run failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run(rows: int, workdir: Path, peer: bool = True) -> dict[str, Any]:
    """Generate N rows under workdir, materialise them, and return the figures."""
    workdir.mkdir(parents=True, exist_ok=True)
    source = workdir / f"snapshot-{rows}.parquet"
    if not source.exists():
        generate(rows, source)
    figures: dict[str, Any] = {"rows": rows, "sourceMB": source.stat().st_size / 2**20}
    ours = _measure("pipeform", source, workdir / f"pipeform-{time.time_ns()}")
    figures["pipeform"] = {**ours, "rowsPerSecond": rows / ours["seconds"]}
    if peer:
        theirs = _measure("pandas", source, workdir / f"pandas-{time.time_ns()}")
        figures["pandas"] = {**theirs, "rowsPerSecond": rows / theirs["seconds"]}
    return figures


def _print(figures: dict[str, Any]) -> None:
    ours = figures["pipeform"]
    verdict = "ok" if ours["peakRssMB"] < TARGET_RSS_MB else "OVER TARGET"
    print(f"rows: {figures['rows']:,} (snapshot {figures['sourceMB']:.0f} MiB)")
    print(
        f"pipeform: {ours['seconds']:.1f} s, {ours['rowsPerSecond']:,.0f} rows/s, "
        f"peak RSS {ours['peakRssMB']:.0f} MiB (target < {TARGET_RSS_MB} MiB: {verdict}), "
        f"{ours['features']} output columns, rows {ours['rows']}"
    )
    if "pandas" in figures:
        theirs = figures["pandas"]
        print(
            f"pandas:   {theirs['seconds']:.1f} s, {theirs['rowsPerSecond']:,.0f} rows/s, "
            f"peak RSS {theirs['peakRssMB']:.0f} MiB"
        )
        print(
            f"ratios (pandas / pipeform): time {theirs['seconds'] / ours['seconds']:.2f}x, "
            f"peak memory {theirs['peakRssMB'] / ours['peakRssMB']:.2f}x"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--no-peer", action="store_true", help="skip the pandas peer")
    parser.add_argument(
        "--child", nargs=3, metavar=("KIND", "SOURCE", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.child:
        kind, source, out = args.child
        _child(kind, Path(source), Path(out))
        return
    if args.workdir is not None:
        _print(run(args.rows, args.workdir, peer=not args.no_peer))
        return
    with tempfile.TemporaryDirectory(prefix="features-bench-") as tmp:
        _print(run(args.rows, Path(tmp), peer=not args.no_peer))


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
