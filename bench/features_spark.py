"""FeatureSet materialisation on Spark beside the local engine and the pandas peer.

The snapshot and FeatureSet of ``bench/features_bench.py`` (same generator, same spec),
materialised by: the local engine, the pandas peer, Spark ``local[2]`` and, with
``--master spark://...``, a standalone cluster (``--start-cluster`` starts a master and
one worker on 127.0.0.1 for the run). Each in a child process; peak memory is the
driver's (Python and its JVM); a standalone worker's executors are not counted.

    .venv/bin/python bench/features_spark.py --rows 1000000 --start-cluster
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _child_spark(master: str, source: Path, out: Path) -> None:
    from bench.features_bench import SPEC
    from providers.local.data.features import parse_spec
    from providers.local.data.spark_engine import SparkSettings, materialise_spark

    out.mkdir()
    started = time.perf_counter()
    settings = SparkSettings(master=master, driver_host="127.0.0.1")
    manifest = materialise_spark(parse_spec(SPEC), source, "ds-bench", "fs-bench", out, settings)
    seconds = time.perf_counter() - started
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    if gateway is not None:  # let the JVM exit, so that its peak counts as a child's
        gateway.shutdown()
        SparkContext._gateway = None
        time.sleep(2)
    peak = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    )
    print(json.dumps({"seconds": seconds, "rows": manifest["rows"], "peakRssMB": peak / 1024}))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_cluster(logs: Path) -> tuple[str, list[subprocess.Popen[bytes]]]:
    import pyspark

    spark_class = str(Path(pyspark.__file__).parent / "bin" / "spark-class")
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1", PYSPARK_PYTHON=sys.executable)
    env["PYTHONPATH"] = str(REPO)
    port = _free_port()
    master = f"spark://127.0.0.1:{port}"
    commands = [
        ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
         "--webui-port", str(_free_port())],
        ["org.apache.spark.deploy.worker.Worker", master, "--host", "127.0.0.1",
         "--webui-port", str(_free_port()), "--cores", "2", "--memory", "2g"],
    ]  # fmt: skip
    processes = []
    for i, command in enumerate(commands):
        log = (logs / f"spark-{i}.log").open("wb")
        processes.append(subprocess.Popen([spark_class, *command], env=env, stdout=log, stderr=log))
        time.sleep(8)
    return master, processes


def _measure_spark(master: str, source: Path, out: Path) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", master, str(source)]
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1", PYTHONPATH=str(REPO))
    done = subprocess.run(
        [*command, str(out)], capture_output=True, text=True, cwd=REPO, env=env, check=False
    )
    if done.returncode:
        raise SystemExit(f"spark {master} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> None:
    from bench import features_bench

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--master", default=None, help="a standalone master to measure too")
    parser.add_argument("--start-cluster", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("MASTER", "SOURCE"), help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args(argv)
    if args.child:
        _child_spark(args.child[0], Path(args.child[1]), Path(rest[0]))
        return
    with tempfile.TemporaryDirectory(prefix="features-spark-") as tmp:
        work = Path(tmp)
        figures = features_bench.run(args.rows, work)
        source = work / f"snapshot-{args.rows}.parquet"
        processes: list[subprocess.Popen[bytes]] = []
        masters = ["local[2]"]
        try:
            if args.start_cluster:
                master, processes = _start_cluster(work)
                masters.append(master)
            elif args.master:
                masters.append(args.master)
            rows = {"local engine": figures["pipeform"], "pandas peer": figures["pandas"]}
            for master in masters:
                result = _measure_spark(master, source, work / f"spark-{time.time_ns()}")
                rows[f"spark {master}"] = result
        finally:
            for process in reversed(processes):
                process.terminate()
                process.wait()
    print(f"rows: {args.rows:,}")
    for name, result in rows.items():
        print(
            f"{name:32s} {result['seconds']:7.1f} s {args.rows / result['seconds']:>12,.0f} "
            f"rows/s  peak RSS {result['peakRssMB']:6.0f} MiB"
        )


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
