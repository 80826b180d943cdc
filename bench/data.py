"""Benchmark Dataset snapshots with full validation against pandera, and the bounded-memory case.

Generates tables of N rows (an int64 id, two floats, an int, a categorical string, a
patterned code string and a timestamp) as CSV and parquet in a temporary directory. For
each size and format it measures, each in its own child process (so each peak RSS is its
own, read from getrusage in the child):

- ours: a Dataset snapshot through the local provider's handler: stream, convert, check
  types, nullability, uniqueness, ranges, allowed values, a regex, row count and null
  fractions, write the parquet snapshot;
- pandera (the peer): read the same file with pandas, then validate a DataFrameSchema
  with the same checks (types, nullable, unique, in_range, isin, str_matches, row count).

It prints rows/s, peak RSS and the ratio (target: ours >= 3x pandera's rows/s; ours under
2 GB peak RSS at 10M rows). ``--bad-tail 2GB`` instead writes a CSV of that size whose last
row is bad and shows that the snapshot streams it in bounded memory and names the line.
When ``bench/features_bench.py`` exists, its ``run(rows, workdir)`` is timed too.

    .venv/bin/python bench/data.py --rows 1000000            # about a minute
    .venv/bin/python bench/data.py --rows 1000000 10000000   # several minutes
    .venv/bin/python bench/data.py --bad-tail 2GB

A benchmark, not a test: it prints figures next to their targets and exits 0.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CITIES = ["paris", "oslo", "rome", "lima", "kyiv", "pune", "baku", "doha"]
SCHEMA = [
    {"name": "id", "type": "int", "nullable": False, "unique": True},
    {"name": "amount", "type": "float", "min": -10, "max": 10},
    {"name": "score", "type": "float", "nullable": False, "min": 0, "max": 100},
    {"name": "count", "type": "int", "nullable": False, "min": 0, "max": 1000},
    {"name": "city", "type": "string", "nullable": False, "allowed": CITIES},
    {"name": "code", "type": "string", "nullable": False, "regex": r"AB-\d{6}"},
    {"name": "seen", "type": "timestamp", "nullable": False},
]
RATIO_TARGET = 3.0
RSS_TARGET_MB = 2048
CHUNK = 1_000_000


def generate(rows: int, directory: Path) -> dict[str, Path]:
    """The table as CSV and parquet, written a million rows at a time."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    rng = np.random.default_rng(7)
    paths = {"csv": directory / f"t{rows}.csv", "parquet": directory / f"t{rows}.parquet"}
    writer = csv_writer = None
    start = np.datetime64("2024-01-01T00:00:00", "us")
    for offset in range(0, rows, CHUNK):
        n = min(CHUNK, rows - offset)
        ids = np.arange(offset, offset + n, dtype=np.int64)
        amount = np.clip(rng.normal(0, 2, n), -9.99, 9.99)
        amount[rng.random(n) < 0.01] = np.nan
        table = pa.table(
            {
                "id": ids,
                "amount": pa.array(amount, from_pandas=True),
                "score": rng.uniform(0, 100, n),
                "count": rng.integers(0, 1000, n),
                "city": pa.array(np.array(CITIES)[rng.integers(0, len(CITIES), n)]),
                "code": pa.array([f"AB-{i % 1_000_000:06d}" for i in ids.tolist()]),
                "seen": pa.array(start + ids * 1_000_000, pa.timestamp("us")),
            }
        )
        if writer is None:
            writer = pq.ParquetWriter(paths["parquet"], table.schema)
            csv_writer = pacsv.CSVWriter(paths["csv"], table.schema)
        writer.write_table(table)
        assert csv_writer is not None
        csv_writer.write_table(table)
    assert writer is not None and csv_writer is not None
    writer.close()
    csv_writer.close()
    return paths


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_ours(path: Path, fmt: str) -> dict[str, Any]:
    # the handler's modules first, as in the CLI (they choose Arrow's allocator), then the
    # rest: imports are not what is measured
    from providers.local.dataset import DatasetHandler  # isort: skip

    import pyarrow as pa

    import providers.local.data.formats
    import providers.local.data.snapshot  # noqa: F401
    from providers.base import ApplyRequest, PermanentError, ResourceContext
    from providers.local.settings import LocalSettings
    from reconciler.kinds.data import DatasetSpec

    pa.scalar(0)  # pyarrow imports pandas on its first conversion of a Python value, when installed
    root = path.parent
    spec = DatasetSpec.model_validate(
        {
            "source": {"uri": f"file://{path.name}", "format": fmt},
            "schema": SCHEMA,
            "validation": {"minRows": 1, "maxNullFraction": {"*": 0.05}},
        }
    )
    document = {"metadata": {}, "spec": spec.model_dump(mode="json", by_alias=True)}
    workdir = Path(tempfile.mkdtemp(dir=root))
    handler = DatasetHandler(LocalSettings.from_config({"dataDir": str(workdir)}, root))
    ctx = ResourceContext.of(f"Dataset/bench-{fmt}", "bench", root)
    started = time.perf_counter()
    error = None
    rows = 0
    try:
        response = handler.create(ApplyRequest(ctx, document, None, {}, None, {}))
        rows = int(response.outputs["rows"])
    except PermanentError as exc:
        error = str(exc)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": rows, "peak_rss_mb": peak_rss_mb(), "error": error}


def run_pandera(path: Path, fmt: str) -> dict[str, Any]:
    import pandas as pd
    import pandera.pandas as pa

    started = time.perf_counter()
    if fmt == "csv":
        frame = pd.read_csv(
            path,
            dtype={
                "id": "int64",
                "amount": "float64",
                "score": "float64",
                "count": "int64",
                "city": "str",
                "code": "str",
            },
            parse_dates=["seen"],
        )
    else:
        frame = pd.read_parquet(path)
    schema = pa.DataFrameSchema(
        {
            "id": pa.Column("int64", nullable=False, unique=True),
            "amount": pa.Column("float64", pa.Check.in_range(-10, 10), nullable=True),
            "score": pa.Column("float64", pa.Check.in_range(0, 100)),
            "count": pa.Column("int64", pa.Check.in_range(0, 1000)),
            "city": pa.Column(str, pa.Check.isin(CITIES)),
            "code": pa.Column(str, pa.Check.str_matches(r"^AB-\d{6}$")),
            "seen": pa.Column("datetime64[ns]", nullable=False, coerce=True),
        },
        checks=[pa.Check(lambda df: len(df) >= 1, element_wise=False)],
    )
    schema.validate(frame, lazy=True)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": len(frame), "peak_rss_mb": peak_rss_mb(), "error": None}


def child(kind: str, path: Path, fmt: str) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter; its figures come back as JSON."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(path), fmt],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def bench_size(rows: int, directory: Path, formats: list[str], peer: bool) -> None:
    started = time.perf_counter()
    paths = generate(rows, directory)
    size = paths["csv"].stat().st_size / 1e6
    print(
        f"\n{rows:,} rows (CSV {size:,.0f} MB), generated in {time.perf_counter() - started:.1f}s"
    )
    for fmt in formats:
        ours = child("ours", paths[fmt], fmt)
        if ours.get("error"):
            print(f"  {fmt:8} ours failed: {ours['error']}")
            continue
        ours_rate = rows / ours["seconds"]
        print(f"  {fmt:8} ours     {ours['seconds']:7.2f}s  {ours_rate:12,.0f} rows/s  "
              f"peak RSS {ours['peak_rss_mb']:7,.0f} MB (target < {RSS_TARGET_MB:,} MB)")  # fmt: skip
        if not peer:
            continue
        theirs = child("pandera", paths[fmt], fmt)
        if theirs.get("error"):
            print(f"  {fmt:8} pandera failed: {theirs['error']}")
            continue
        rate = rows / theirs["seconds"]
        print(f"  {fmt:8} pandera  {theirs['seconds']:7.2f}s  {rate:12,.0f} rows/s  "
              f"peak RSS {theirs['peak_rss_mb']:7,.0f} MB")  # fmt: skip
        print(
            f"  {fmt:8} ratio    {ours_rate / rate:.2f}x pandera's rows/s (target >= {RATIO_TARGET}x)"
        )
    features(rows, directory)


def features(rows: int, directory: Path) -> None:
    bench = ROOT / "bench" / "features_bench.py"
    if not bench.is_file():
        return
    spec = importlib.util.spec_from_file_location("features_bench", bench)
    if spec is None or spec.loader is None:
        return
    try:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        result = module.run(rows, directory)
    except Exception as exc:  # another helper's bench: report, never stop this one
        print(f"  features bench failed: {type(exc).__name__}: {exc}")
        return
    if isinstance(result, dict) and isinstance(result.get("pipeform"), dict):  # with its peer
        for name, figures in (("features", result["pipeform"]), ("  peer", result.get("pandas"))):
            if isinstance(figures, dict):
                print(f"  {name:8} {figures.get('rowsPerSecond', 0):12,.0f} rows/s  "
                      f"peak RSS {figures.get('peakRssMB', 0):,.0f} MB  (bench/features_bench.py)")  # fmt: skip
        return
    if not isinstance(result, dict) or "rows_per_s" not in result:
        print(f"  features bench returned {result!r} (expected rows_per_s and peak_rss_mb)")
        return
    rate, rss = result["rows_per_s"], result.get("peak_rss_mb", 0.0)
    print(f"  features {rate:12,.0f} rows/s  peak RSS {rss:,.0f} MB  (bench/features_bench.py)")


def parse_size(text: str) -> int:
    units = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "K": 10**3, "M": 10**6, "G": 10**9}
    for unit, factor in units.items():
        if text.upper().endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


def bad_tail(size: int, directory: Path) -> None:
    """A CSV of ``size`` bytes whose last row holds a string in the int column."""
    path = directory / "bad-tail.csv"
    header = ",".join(c["name"] for c in SCHEMA) + "\n"
    block = "".join(
        f"{i},{(i % 19) / 10 - 0.9},{i % 100}.5,{i % 1000},{CITIES[i % 8]},AB-{i % 1_000_000:06d},"
        f"2024-01-01T00:00:{i % 60:02d}\n"
        for i in range(100_000)
    ).encode()
    started = time.perf_counter()
    lines = 1
    with path.open("wb") as fh:
        fh.write(header.encode())
        written = len(header)
        while written < size:
            fh.write(block)
            written += len(block)
            lines += 100_000
        fh.write(b"oops,0,0,0,paris,AB-000000,2024-01-01T00:00:00\n")
    print(f"bad tail: {written / 1e9:.2f} GB CSV, {lines:,} lines + 1 bad, written in "
          f"{time.perf_counter() - started:.0f}s")  # fmt: skip
    # the bad-tail file repeats ids, so it checks everything but uniqueness
    result = child("ours-bad-tail", path, "csv")
    message = (result.get("error") or "").splitlines()
    print(f"  ours     {result.get('seconds', 0):7.1f}s  peak RSS {result.get('peak_rss_mb', 0):,.0f} MB "
          f"(target < {RSS_TARGET_MB:,} MB)")  # fmt: skip
    print("  error:   " + (message[1].strip() if len(message) > 1 else "(none!)"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--formats", nargs="+", default=["csv", "parquet"])
    parser.add_argument("--no-peer", action="store_true", help="skip pandera")
    parser.add_argument("--bad-tail", metavar="SIZE", help="for example 2GB")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, path, fmt = args.child
        if kind == "ours-bad-tail":
            SCHEMA[0]["unique"] = False
        run = run_pandera if kind == "pandera" else run_ours
        print(json.dumps(run(Path(path), fmt)))
        return
    with tempfile.TemporaryDirectory(prefix="pipeform-bench-data-") as tmp:
        if args.bad_tail:
            bad_tail(parse_size(args.bad_tail), Path(tmp))
            return
        for rows in args.rows:
            bench_size(rows, Path(tmp), args.formats, not args.no_peer)


if __name__ == "__main__":
    main()
