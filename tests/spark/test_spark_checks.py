"""What the spark engine checks before it starts: one clear error each, exit 1."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.spark.conftest import Cluster, require_engine, spark_env
from tests.spark.test_spark_features import PIPEFORM, pipeform, use_spark


class FakeMasterRest(BaseHTTPRequestHandler):
    """A standalone master's REST server as Spark 3.5.1 answers a status request (we have
    no Spark 3.5 here: nothing can be downloaded but PyPI packages of one version)."""

    def do_GET(self) -> None:
        body = json.dumps(
            {"action": "SubmissionStatusResponse", "serverSparkVersion": "3.5.1",
             "submissionId": "pipeform-version-check", "success": False}
        ).encode()  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def old_master() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeMasterRest)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()


def test_the_real_master_reports_pyspark_s_version(spark_cluster: Cluster) -> None:
    import pyspark

    from providers.local.data.spark_session import SparkSettings, master_version

    conf = (("spark.master.rest.port", str(spark_cluster.rest_port)),)
    settings = SparkSettings(master=spark_cluster.master, conf=conf)
    assert master_version(settings) == pyspark.__version__


def test_a_master_of_another_spark_version_is_one_clear_error(
    copy_example, old_master: int
) -> None:
    require_engine()
    import pyspark

    tree = copy_example()
    # one port answers both: the master's TCP check and its REST server
    use_spark(tree, f"spark://127.0.0.1:{old_master}", rest_port=old_master)
    result = pipeform(tree, "apply", "--auto-approve", "--target", "Dataset/rand-hie")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    assert f"runs Spark 3.5.1, but this machine's pyspark is {pyspark.__version__}" in output, (
        output[-3000:]
    )
    assert "pip install 'pyspark==3.5.1'" in output
    assert "Traceback" not in output


def test_a_java_too_old_for_pyspark_is_one_clear_error(copy_example, tmp_path: Path) -> None:
    require_engine()
    java = tmp_path / "jdk" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text("#!/bin/sh\necho 'openjdk version \"11.0.22\" 2024-01-16' >&2\n")
    java.chmod(0o755)
    tree = copy_example()
    use_spark(tree, "local[1]")
    result = subprocess.run(
        [PIPEFORM, "apply", "--auto-approve", "--target", "Dataset/rand-hie"], cwd=tree,
        env=dict(spark_env(), JAVA_HOME=str(java.parent.parent)),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    assert "needs Java 17 or newer, but" in output and "is Java 11" in output, output[-3000:]
    assert "Traceback" not in output


def test_s3_inputs_need_the_hadoop_aws_jars(tmp_path: Path) -> None:
    require_engine()
    import pyspark

    from providers.local.data.features import parse_spec
    from providers.local.data.spark_engine import materialise_spark
    from providers.local.data.spark_session import (
        SparkEngineError,
        SparkSettings,
        check_location,
    )

    jars = Path(pyspark.__file__).parent / "jars"
    assert not list(jars.glob("hadoop-aws-*.jar"))  # pyspark from PyPI lacks the S3A connector
    (hadoop,) = jars.glob("hadoop-client-api-*.jar")
    version = hadoop.stem.removeprefix("hadoop-client-api-")
    spec = parse_spec(
        {"dataset": "d", "entity": ["id"], "label": {"column": "label"},
         "features": [{"name": "x"}]}
    )  # fmt: skip
    plain = SparkSettings(master="local[1]")
    with pytest.raises(SparkEngineError, match=rf"org\.apache\.hadoop:hadoop-aws:{version}"):
        materialise_spark(spec, Path("s3://bucket/snap.parquet"), "ds", "fs", tmp_path, plain)
    package = (("spark.jars.packages", f"org.apache.hadoop:hadoop-aws:{version}"),)
    with_jars = SparkSettings(master="local[1]", conf=package)
    assert check_location("s3://bucket/snap.parquet", with_jars) == "s3a://bucket/snap.parquet"
    assert check_location(str(tmp_path / "a.parquet"), plain) == str(tmp_path / "a.parquet")


def test_the_plan_says_which_engine_runs_each_resource(copy_example) -> None:
    tree = copy_example()
    use_spark(tree, "local[1]")
    planned = pipeform(tree, "plan")
    assert planned.returncode == 0, planned.stderr[-3000:]
    lines = planned.stdout.splitlines()

    def line(address: str) -> str:
        return next(x for x in lines if address in x)

    assert "rules checked on spark (local[1])" in line("Dataset/rand-hie"), planned.stdout
    assert "runs on spark (local[1])" in line("FeatureSet/hie-features"), planned.stdout
    assert "spark" not in line("TrainingJob/expense-model")  # it trains here
