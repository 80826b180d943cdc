"""The Spark side of ``bench/features_bench.py``: a Spark child, and a standalone cluster.

``measure_spark(master, source, out)`` materialises the bench's FeatureSet with the Spark
engine in a child process and returns its seconds, rows and peak memory: the driver's,
Python and its JVM (the JVM is stopped before the child exits, so that its peak counts as
a child's); a standalone worker's executors are not counted. ``start_cluster`` starts a
master and one 2-core worker on 127.0.0.1 as plain processes (``stop_cluster`` ends
them). Run it through the features bench:

    PYTHONPATH=$PWD .venv/bin/python bench/features_bench.py --rows 1000000 --spark --start-cluster
"""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _child_spark(master: str, source: Path, out: Path) -> None:
    started = time.perf_counter()
    from bench.features_bench import SPEC
    from providers.local.data.features import parse_spec
    from providers.local.data.spark_engine import SparkSettings, materialise_spark

    ready = time.perf_counter()
    out.mkdir()
    settings = SparkSettings(master=master, driver_host="127.0.0.1")
    manifest = materialise_spark(parse_spec(SPEC), source, "ds-bench", "fs-bench", out, settings)
    seconds = time.perf_counter() - ready  # the Spark session's start included
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
    figures = {"seconds": seconds, "startup": ready - started, "rows": manifest["rows"]}
    print(json.dumps({**figures, "peakRssMB": peak / 1024}))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _env() -> dict[str, str]:
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1", PYSPARK_PYTHON=sys.executable)
    env["PYTHONPATH"] = str(REPO)
    return env


def start_cluster(logs: Path) -> tuple[str, list[subprocess.Popen[bytes]]]:
    """A standalone master and one worker (2 cores, 2 GiB) on 127.0.0.1: (master URL, processes)."""
    import pyspark

    spark_class = str(Path(pyspark.__file__).parent / "bin" / "spark-class")
    port = _free_port()
    master = f"spark://127.0.0.1:{port}"
    commands = [
        ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
         "--webui-port", str(_free_port())],
        ["org.apache.spark.deploy.worker.Worker", master, "--host", "127.0.0.1",
         "--webui-port", str(_free_port()), "--cores", "2", "--memory", "2g"],
    ]  # fmt: skip
    logs.mkdir(parents=True, exist_ok=True)
    processes = []
    for i, command in enumerate(commands):
        log = (logs / f"spark-{i}.log").open("wb")
        processes.append(
            subprocess.Popen([spark_class, *command], env=_env(), stdout=log, stderr=log)
        )
        time.sleep(8)
    return master, processes


def stop_cluster(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in reversed(processes):
        process.terminate()
        process.wait()


def measure_spark(master: str, source: Path, out: Path) -> dict[str, Any]:
    from bench.features_bench import measure

    command = [sys.executable, str(Path(__file__).resolve()), "--child", master, str(source)]
    return measure([*command, str(out)], f"spark {master}", env=_env())


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    if sys.argv[1:2] == ["--child"]:
        _child_spark(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
    else:
        from bench import features_bench

        features_bench.main([*sys.argv[1:], "--spark"])
