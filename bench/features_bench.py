"""Benchmark FeatureSet materialisation: the local engine beside pandas (and Spark).

Generates a snapshot parquet of N rows once into a cache directory (an int64 id, a
timestamp over two years, a numeric column with 5% missing values, a skewed positive
column, a 30-value string category and an int64 category, a 0/1 label) and
materialises a FeatureSet over it:

  num    fillna median -> standardize        (two fitting passes)
  spend  log1p -> minmax
  kind   onehot, learned, 10 categories + other
  shop   hash into 64 buckets
  ts     datetime: month, dayofweek, hour
  split  temporal at 2024-07-01

Each engine runs in a child process of its own, so the peak RSS reported is that run's:

- pipeform: the local engine (``features_build.materialise``: split, fit, transform,
  the two tables, transform.json and stats.json with every column's statistics);
- pandas: the same split, fit and transform written the usual in-memory way (read the
  parquet, fit on the train rows, get_dummies, write both tables; no statistics);
- with ``--engines polars duckdb``: the same work in Polars (lazy, its streaming engine)
  and in DuckDB SQL (fit queries, then a COPY per table), the columnar engines the issue
  names (``pip install polars duckdb``; no statistics, no uniqueness check);
- with ``--spark``: the Spark engine on ``local[2]`` and on a standalone cluster
  (``--start-cluster`` starts a master and one 2-core worker on 127.0.0.1; or
  ``--master spark://...``), through ``bench/features_spark.py``.

Each child reports its start-up (imports: numpy, pyarrow, pandas and the engine's
modules; pyarrow imports pandas itself on its first conversion, so it is counted as
start-up for both) and its work, timed apart. Rows per second are over the work; the
end-to-end time (start-up + work) is printed beside it. Target: the local engine at
>= 2x pandas' rows per second, and peak RSS under 2 GB at 10,000,000 rows.

    PYTHONPATH=$PWD .venv/bin/python bench/features_bench.py                  # 1M and 10M
    PYTHONPATH=$PWD .venv/bin/python bench/features_bench.py --rows 1000000 --spark --start-cluster
    PYTHONPATH=$PWD .venv/bin/python bench/features_bench.py --rows 1000000 --repeat 7   # + warm runs
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pipeform-bench"
GENERATOR_VERSION = 1  # bump when generate() writes other rows: cached files are keyed by it
CHUNK = 1_000_000
TARGET_RSS_MB = 2048
TARGET_RATIO = 2.0
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
    weights = 1 / np.arange(1, 31)
    start = np.datetime64("2023-01-01T00:00:00", "s").astype(np.int64)
    span = 2 * 365 * 24 * 3600
    writer = None
    try:
        for first in range(0, rows, CHUNK):
            n = min(CHUNK, rows - first)
            num = rng.normal(50, 10, n)
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


def snapshot(rows: int, cache: Path = CACHE) -> Path:
    """The snapshot of ``rows`` rows, generated once into ``cache`` and reused after."""
    path = cache / f"features-v{GENERATOR_VERSION}-{rows}.parquet"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        partial = path.with_suffix(f".{os.getpid()}.partial")
        try:
            generate(rows, partial)
            partial.rename(path)  # a generation cut short never passes for a finished one
        finally:
            partial.unlink(missing_ok=True)
        print(f"(generated {rows:,} rows into {path} in {time.perf_counter() - started:.1f} s)")
    return path


def _work_pipeform(source: Path, out: Path) -> dict[str, Any]:
    from providers.local.data.features import parse_spec
    from providers.local.data.features_build import materialise

    manifest = materialise(parse_spec(SPEC), source, "ds-bench", "fs-bench", out)
    return {"rows": manifest["rows"], "features": len(manifest["features"])}


def _work_pandas(source: Path, out: Path) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

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
    rows = {"train": int((~valid).sum()), "validation": int(valid.sum())}
    return {"rows": rows, "features": len(result.columns) - 2}  # all but id and label


def _work_polars(source: Path, out: Path) -> dict[str, Any]:
    """The same work in Polars, lazily, each pass run by its streaming engine."""
    import datetime as dt

    import polars as pl

    frame = pl.scan_parquet(source)
    valid = pl.col("ts") >= pl.lit(dt.datetime.fromisoformat(SPLIT_FROM))
    train = frame.filter(~valid)
    median = train.select(pl.col("num").median()).collect(engine="streaming").item()
    filled = pl.col("num").fill_null(median)
    spend = pl.col("spend").log1p()
    fitted = train.select(
        mean=filled.mean(), std=filled.std(ddof=0), low=spend.min(), high=spend.max()
    ).collect(engine="streaming")
    mean, std, low, high = (fitted.item(0, c) for c in ("mean", "std", "low", "high"))
    counted = train.group_by("kind").len().sort(["len", "kind"], descending=[True, False])
    top = counted.head(10).collect(engine="streaming")["kind"].to_list()
    features = [
        pl.col("id"),
        ((filled - mean) / std).alias("num"),
        ((spend - low) / (high - low)).alias("spend"),
        *[(pl.col("kind") == k).alias(f"kind__{k}") for k in top],
        (~pl.col("kind").is_in(top)).alias("kind__other"),
        (pl.col("shop").hash() % 64).alias("shop"),
        pl.col("ts").dt.month().alias("ts_month"),
        (pl.col("ts").dt.weekday() - 1).alias("ts_dayofweek"),  # Monday 0, as pandas
        pl.col("ts").dt.hour().alias("ts_hour"),
    ]
    columns = [f.cast(pl.Float32) if i else f for i, f in enumerate(features)] + [pl.col("label")]
    frame.filter(~valid).select(columns).sink_parquet(out / "train.parquet")
    frame.filter(valid).select(columns).sink_parquet(out / "validation.parquet")
    split = frame.select(valid.sum().alias("v"), pl.len().alias("n")).collect(engine="streaming")
    validation = int(split.item(0, "v"))
    rows = {"train": int(split.item(0, "n")) - validation, "validation": validation}
    return {"rows": rows, "features": len(columns) - 2}


def _work_duckdb(source: Path, out: Path) -> dict[str, Any]:
    """The same work in DuckDB SQL: three fitting queries, then a COPY per table."""
    import duckdb

    con = duckdb.connect()
    table = f"read_parquet('{source}')"
    train, valid = f"ts < TIMESTAMP '{SPLIT_FROM}'", f"ts >= TIMESTAMP '{SPLIT_FROM}'"
    (median,) = con.execute(f"SELECT median(num) FROM {table} WHERE {train}").fetchone() or ()
    filled = f"coalesce(num, {median!r})"
    mean, std, low, high = (
        con.execute(
            f"SELECT avg({filled}), stddev_pop({filled}), min(ln(1 + spend)), max(ln(1 + spend)) "
            f"FROM {table} WHERE {train}"
        ).fetchone()
        or ()
    )
    top = [
        row[0]
        for row in con.execute(
            f"SELECT kind, count(*) AS n FROM {table} WHERE {train} GROUP BY kind "
            "ORDER BY n DESC, kind LIMIT 10"
        ).fetchall()
    ]
    quoted = ", ".join(f"'{k}'" for k in top)
    features = [
        f"({filled} - {mean!r}) / {std!r} AS num",
        f"(ln(1 + spend) - {low!r}) / {high - low!r} AS spend",
        *[f"(kind = '{k}') AS \"kind__{k}\"" for k in top],
        f"(kind NOT IN ({quoted})) AS kind__other",
        "hash(shop) % 64 AS shop",
        "month(ts) AS ts_month",
        "isodow(ts) - 1 AS ts_dayofweek",
        "hour(ts) AS ts_hour",
    ]
    select = ", ".join(
        ["id"]
        + [f"CAST({f.rsplit(' AS ', 1)[0]} AS FLOAT) AS {f.rsplit(' AS ', 1)[1]}" for f in features]
        + ["label"]
    )
    rows = {}
    for split, where in (("train", train), ("validation", valid)):
        con.execute(
            f"COPY (SELECT {select} FROM {table} WHERE {where}) TO '{out / split}.parquet' "
            "(FORMAT parquet)"
        )
        (rows[split],) = con.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone() or ()
    return {"rows": rows, "features": len(features)}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _child(kind: str, source: Path, out: Path, repeat: int = 1) -> None:
    started = time.perf_counter()
    import numpy  # noqa: F401
    import pandas  # noqa: F401
    import pyarrow.compute
    import pyarrow.parquet  # noqa: F401

    if kind == "pipeform":
        import providers.local.data.features_build  # noqa: F401
    elif kind in ("polars", "duckdb"):
        __import__(kind)
    work = {
        "pipeform": _work_pipeform,
        "pandas": _work_pandas,
        "polars": _work_polars,
        "duckdb": _work_duckdb,
    }[kind]
    startup = time.perf_counter() - started
    runs = []
    for run in range(repeat):  # the first run in a fresh process, then warm ones
        ready, cpu = time.perf_counter(), _cpu_seconds()
        where = out if run == 0 else out.with_name(f"{out.name}-{run}")
        where.mkdir()
        result = work(source, where)
        runs.append((time.perf_counter() - ready, _cpu_seconds() - cpu))
    result["seconds"], result["cpu"] = runs[0]
    if repeat > 1:  # the warm runs' median: steadier than one run on a shared machine
        warm = sorted(runs[1:])
        result["warmSeconds"], result["warmCpu"] = warm[len(warm) // 2]
    result["startup"] = startup
    result["peakRssMB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def measure(command: list[str], what: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one child; its last line of output is its figures (JSON)."""
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, check=False)
    if done.returncode:
        raise SystemExit(f"{what} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _read_through(path: Path) -> None:
    """Read the file once, so that each child finds it in the page cache (this machine's
    host reclaims idle page cache: without it, whichever child ran first paid the disk)."""
    with path.open("rb") as file:
        while file.read(16 << 20):
            pass


def _measure(kind: str, source: Path, out: Path, repeat: int = 1) -> dict[str, Any]:
    _read_through(source)
    script = str(Path(__file__).resolve())
    command = [sys.executable, script, "--child", kind, str(source), str(out)]
    result = measure([*command, "--repeat", str(repeat)], kind)
    rows = sum(result["rows"].values())
    return {**result, "rowsPerSecond": rows / result["seconds"]}


def run(
    rows: int,
    workdir: Path,
    peer: bool = True,
    spark: list[str] | None = None,
    repeat: int = 1,
    engines: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Materialise the cached snapshot of N rows under workdir; return the figures."""
    workdir.mkdir(parents=True, exist_ok=True)
    source = snapshot(rows)
    figures: dict[str, Any] = {"rows": rows, "sourceMB": source.stat().st_size / 2**20}
    figures["pipeform"] = _measure(
        "pipeform", source, workdir / f"pipeform-{time.time_ns()}", repeat
    )
    if peer:
        figures["pandas"] = _measure("pandas", source, workdir / f"pandas-{time.time_ns()}", repeat)
    for engine in engines:  # the columnar engines the issue names, doing the same work
        figures[engine] = _measure(engine, source, workdir / f"{engine}-{time.time_ns()}", repeat)
    if spark:
        from bench import features_spark

        for master in spark:
            result = features_spark.measure_spark(
                master, source, workdir / f"spark-{time.time_ns()}"
            )
            figures[f"spark {master}"] = {**result, "rowsPerSecond": rows / result["seconds"]}
    return figures


def _print(figures: dict[str, Any]) -> None:
    print(f"\nrows: {figures['rows']:,} (snapshot {figures['sourceMB']:.0f} MiB)")
    print(
        f"{'engine':28s} {'work s':>7s} {'rows/s':>12s} {'work CPU s':>10s} {'start-up s':>10s} "
        f"{'end to end s':>12s} {'peak RSS MiB':>12s}"
    )
    for name, result in figures.items():
        if not isinstance(result, dict):
            continue
        startup, cpu = result.get("startup", 0.0), result.get("cpu")
        print(
            f"{name:28s} {result['seconds']:7.2f} {result['rowsPerSecond']:12,.0f} "
            f"{(f'{cpu:.2f}' if cpu is not None else '-'):>10s} {startup:10.2f} "
            f"{result['seconds'] + startup:12.2f} {result['peakRssMB']:12,.0f}"
        )
    ours = figures["pipeform"]
    verdict = "met" if ours["peakRssMB"] < TARGET_RSS_MB else "NOT MET"
    print(f"pipeform peak RSS {ours['peakRssMB']:,.0f} MiB (target < {TARGET_RSS_MB}: {verdict})")
    if "pandas" in figures:
        theirs = figures["pandas"]
        ratio = ours["rowsPerSecond"] / theirs["rowsPerSecond"]
        end_to_end = (theirs["seconds"] + theirs["startup"]) / (ours["seconds"] + ours["startup"])
        print(
            f"pipeform / pandas: {ratio:.2f}x the rows/s (target >= {TARGET_RATIO}x: "
            f"{'met' if ratio >= TARGET_RATIO else 'NOT MET'}), {end_to_end:.2f}x end to end, "
            f"{theirs['peakRssMB'] / ours['peakRssMB']:.2f}x less peak memory"
        )
        if "warmSeconds" in ours and "warmSeconds" in theirs:
            print(
                f"warm runs (the median of the runs after the first, in the same process): "
                f"pipeform {ours['warmSeconds']:.3f} s ({ours['warmCpu']:.3f} CPU s), pandas "
                f"{theirs['warmSeconds']:.3f} s ({theirs['warmCpu']:.3f} CPU s): "
                f"{theirs['warmSeconds'] / ours['warmSeconds']:.2f}x the rows/s"
            )
        for engine in ("polars", "duckdb"):
            if engine in figures:
                other = figures[engine]
                print(
                    f"pipeform / {engine}: {ours['rowsPerSecond'] / other['rowsPerSecond']:.2f}x "
                    "the rows/s"
                    + (
                        f", warm {other['warmSeconds'] / ours['warmSeconds']:.2f}x"
                        if "warmSeconds" in other and "warmSeconds" in ours
                        else ""
                    )
                )
        if ours["rows"] != theirs["rows"]:
            print(f"ROWS DIFFER: pipeform {ours['rows']}, pandas {theirs['rows']}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--workdir", type=Path, default=None, help="where the tables go")
    parser.add_argument("--no-peer", action="store_true", help="skip the pandas peer")
    parser.add_argument("--spark", action="store_true", help="also Spark local[2]")
    parser.add_argument("--master", default=None, help="and a standalone master: spark://...")
    parser.add_argument(
        "--start-cluster", action="store_true", help="start a master and one worker for --spark"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="materialise N times in each child process: the first run is the figure, the "
        "median of the others is printed beside it (steadier on a shared machine)",
    )
    parser.add_argument(
        "--engines",
        nargs="*",
        choices=("polars", "duckdb"),
        default=[],
        help="also the same work in Polars (streaming) and DuckDB (pip install polars duckdb)",
    )
    parser.add_argument(
        "--child", nargs=3, metavar=("KIND", "SOURCE", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.child:
        kind, source, out = args.child
        _child(kind, Path(source), Path(out), max(1, args.repeat))
        return
    with tempfile.TemporaryDirectory(prefix="features-bench-") as tmp:
        work = args.workdir or Path(tmp)
        processes: list[Any] = []
        try:
            masters = ["local[2]"] if args.spark else []
            if args.spark and args.start_cluster:
                from bench import features_spark

                master, processes = features_spark.start_cluster(work)
                masters.append(master)
            elif args.spark and args.master:
                masters.append(args.master)
            for rows in args.rows:
                _print(
                    run(
                        rows,
                        work / str(rows),
                        peer=not args.no_peer,
                        spark=masters,
                        repeat=max(1, args.repeat),
                        engines=tuple(args.engines),
                    )
                )
        finally:
            if processes:
                from bench import features_spark

                features_spark.stop_cluster(processes)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
