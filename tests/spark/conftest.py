"""A real Spark standalone master and one worker on 127.0.0.1, started once per session.

Without java or pyspark the tests skip, except under CI=true, where they fail: CI
installs both (.ci/apt-packages, the spark extra).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def require_engine() -> None:
    missing = [
        what
        for what, found in (
            ("java", shutil.which("java") is not None),
            ("pyspark", _has_pyspark()),
        )
        if not found
    ]
    if missing:
        message = f"the spark engine's tests need {', '.join(missing)}"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI installs them: .ci/apt-packages, pip .[spark])")
        pytest.skip(message)


def _has_pyspark() -> bool:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return False
    return True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def spark_env() -> dict[str, str]:
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1", PYSPARK_PYTHON=sys.executable)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _spark_class() -> str:
    import pyspark

    return str(Path(pyspark.__file__).parent / "bin" / "spark-class")


def _wait_port(port: int, what: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), 1):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{what} did not listen on {port}: {log.read_text()[-2000:]}")


@dataclass
class Cluster:
    master: str
    logs: Path
    rest_port: int = 0  # the master's REST server, which tells its Spark version
    ui_port: int = 0  # the master's web UI, whose /json lists the alive workers
    worker: subprocess.Popen[bytes] | None = None
    worker_port: int = 0

    def start_worker(self) -> None:
        self.worker_port = free_port()
        log = self.logs / f"worker-{self.worker_port}.log"
        self.worker = subprocess.Popen(
            [_spark_class(), "org.apache.spark.deploy.worker.Worker", self.master,
             "--host", "127.0.0.1", "--port", str(self.worker_port),
             "--webui-port", str(free_port()), "--cores", "1", "--memory", "1g"],
            env=spark_env(), stdout=log.open("wb"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        _wait_port(self.worker_port, "the Spark worker", self.worker, log)

    def wait_registered(self) -> None:
        """Until the master lists an alive worker (a worker just started registers late)."""
        deadline = time.monotonic() + 60
        url = f"http://127.0.0.1:{self.ui_port}/json/"
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        while time.monotonic() < deadline:
            try:
                with direct.open(url, timeout=5) as response:
                    if json.loads(response.read()).get("aliveworkers", 0) > 0:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"no Spark worker registered with {self.master} in 60 s")

    def kill_worker(self) -> None:
        """SIGKILL the worker and its executors (its process group)."""
        assert self.worker is not None
        os.killpg(self.worker.pid, 9)
        self.worker.wait()
        self.worker = None


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require_engine()
    logs = tmp_path_factory.mktemp("spark-logs")
    port, rest, ui = free_port(), free_port(), free_port()
    env = dict(spark_env(), SPARK_MASTER_OPTS=f"-Dspark.master.rest.port={rest}")
    master = subprocess.Popen(
        [_spark_class(), "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
         "--port", str(port), "--webui-port", str(ui)],
        env=env, stdout=(logs / "master.log").open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    _wait_port(port, "the Spark master", master, logs / "master.log")
    _wait_port(rest, "the Spark master's REST server", master, logs / "master.log")
    cluster = Cluster(f"spark://127.0.0.1:{port}", logs, rest_port=rest, ui_port=ui)
    try:
        cluster.start_worker()
        yield cluster
    finally:
        if cluster.worker is not None:
            os.killpg(cluster.worker.pid, 15)
            cluster.worker.wait()
        os.killpg(master.pid, 15)
        master.wait()
