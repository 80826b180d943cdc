"""FeatureSets materialised on a real Spark standalone cluster equal the local engine's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.spark.conftest import Cluster, free_port, require_engine, spark_env
from trainer.config import SEGMENT_PREFIX

TARGET = "FeatureSet/hie-features"
#: means and standard deviations: Spark sums in another order than the local engine
RELATIVE = 1e-9
PIPEFORM = str(Path(sys.executable).parent / "pipeform")


def pipeform(tree: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PIPEFORM, *args], cwd=tree, env=spark_env(),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def use_spark(tree: Path, master: str, wait: int = 120, rest_port: int = 0) -> None:
    path = tree / "pipeform.yaml"
    rest = f'spark.master.rest.port: "{rest_port}", ' if rest_port else ""
    conf = f", conf: {{{rest}spark.sql.shuffle.partitions: '2'}}"  # 200 tiny tasks take long
    engine = f'engine: {{type: spark, master: "{master}", driverHost: 127.0.0.1, executorWaitSeconds: {wait}{conf}}}'
    text = path.read_text().replace(
        "      maxConcurrentJobs: 1\n", f"      maxConcurrentJobs: 1\n      {engine}\n"
    )
    assert engine in text
    path.write_text(text)


DATASET = ".pipeform/data/datasets/rand-hie"


def without_time(report: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in report.items() if k != "createdAt"}


def materialisation(tree: Path) -> Path:
    (directory,) = (tree / ".pipeform/data/features/hie-features").glob("fs-*")
    return directory


def close(spark: object, local: object, where: str) -> None:
    if isinstance(local, dict):
        assert isinstance(spark, dict) and spark.keys() == local.keys(), where
        for key in local:
            close(spark[key], local[key], f"{where}.{key}")
    elif isinstance(local, list):
        assert isinstance(spark, list) and len(spark) == len(local), where
        for i, (s, item) in enumerate(zip(spark, local, strict=True)):
            close(s, item, f"{where}[{i}]")
    elif isinstance(local, float):
        assert spark == pytest.approx(local, rel=RELATIVE), where
    else:
        assert spark == local, where


@pytest.fixture(scope="module")
def trees(
    copy_example, spark_cluster: Cluster
) -> tuple[Path, Path, subprocess.CompletedProcess[str]]:
    local, spark = copy_example(), copy_example()
    use_spark(spark, spark_cluster.master, wait=15, rest_port=spark_cluster.rest_port)
    assert pipeform(local, "apply", "--auto-approve", "--target", TARGET).returncode == 0
    applied = pipeform(spark, "apply", "--auto-approve", "--target", TARGET)
    assert applied.returncode == 0, applied.stderr[-3000:]
    return local, spark, applied


def test_quickstart_on_the_cluster_equals_the_local_engine(trees) -> None:
    local, spark, applied = trees
    assert "spark: stage" in applied.stderr + applied.stdout  # the status tracker's progress
    ours, theirs = materialisation(spark), materialisation(local)
    assert ours.name == theirs.name  # same content address: retrain planning sees no change
    for split in ("train", "validation"):
        a, b = pq.read_table(ours / f"{split}.parquet"), pq.read_table(theirs / f"{split}.parquet")
        assert a.schema == b.schema and a.num_rows == b.num_rows > 0
        assert a.equals(b)  # same rows, same order, same split, same column types
        assert (ours / f"{split}.parquet").read_bytes() == (
            theirs / f"{split}.parquet"
        ).read_bytes()
    close(json.loads((ours / "transform.json").read_text()),
          json.loads((theirs / "transform.json").read_text()), "transform")  # fmt: skip
    assert json.loads((ours / "stats.json").read_text()) == json.loads(
        (theirs / "stats.json").read_text()
    )
    reports = [
        json.loads(next((t / DATASET).glob("snapshots/ds-*/report.json")).read_text())
        for t in (spark, local)
    ]  # the Dataset was validated on the cluster: the same checks, summary and verdict
    assert [without_time(r) for r in reports] == [without_time(reports[1])] * 2
    assert reports[0]["passed"] and len(reports[0]["checks"]) > 50
    manifest = json.loads((ours / "manifest.json").read_text())
    expected = json.loads((theirs / "manifest.json").read_text())
    assert manifest.keys() == expected.keys()
    differ = ("created", "transformDigest")  # transform.json's means differ in the last bits
    assert {k: v for k, v in manifest.items() if k not in differ} == {
        k: v for k, v in expected.items() if k not in differ
    }
    assert manifest["segments"] == ["site", "female", "child"]  # the quickstart's segments
    train = pq.read_table(ours / "train.parquet")
    assert [n for n in train.column_names if n.startswith(SEGMENT_PREFIX)] == [
        SEGMENT_PREFIX + c for c in manifest["segments"]
    ]


def test_plan_names_the_spark_engine(trees, spark_cluster: Cluster) -> None:
    _, spark, _ = trees
    data = spark / "data" / "randhie.csv"
    data.write_text("".join(data.read_text().splitlines(keepends=True)[:-1]))  # a new snapshot
    planned = pipeform(spark, "plan", "--target", TARGET)
    assert f"runs on spark ({spark_cluster.master})" in planned.stdout, planned.stdout
    lines = planned.stdout.splitlines()
    dataset = next(x for x in lines if "Dataset/rand-hie" in x and "will be re-snapshotted" in x)
    assert f"rules checked on spark ({spark_cluster.master})" in dataset, planned.stdout


def test_a_worker_killed_mid_materialisation_fails_cleanly_and_the_next_apply_converges(
    trees, spark_cluster: Cluster
) -> None:
    _, spark, _ = trees
    # the Dataset first (an earlier test changed its data), so the worker dies in the
    # FeatureSet's materialisation, not in the Dataset's checks
    taken = pipeform(spark, "apply", "--auto-approve", "--target", "Dataset/rand-hie")
    assert taken.returncode == 0, (taken.stdout + taken.stderr)[-3000:]
    before = materialisation(spark)
    kept = {p.name: p.read_bytes() for p in before.iterdir()}
    features = spark / "features.yaml"
    features.write_text(features.read_text().replace("validationFrom: 4", "validationFrom: 3"))
    apply = subprocess.Popen(
        [PIPEFORM, "apply", "--auto-approve", "--target", TARGET],
        cwd=spark, env=spark_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert apply.stdout is not None
    seen = []
    for line in apply.stdout:
        seen.append(line)
        if "spark: stage" in line:
            spark_cluster.kill_worker()
            break
    output = "".join(seen) + apply.stdout.read()
    assert apply.wait(timeout=240) == 1, output[-3000:]
    assert "lost every executor" in output, output[:3000]
    assert "Traceback" not in output and "\tat " not in output, output[:3000]
    assert {p.name: p.read_bytes() for p in before.iterdir()} == kept  # previous one kept
    assert [p.name for p in before.parent.iterdir() if p.name.startswith(".")] == []

    spark_cluster.start_worker()
    spark_cluster.wait_registered()
    again = pipeform(spark, "apply", "--auto-approve", "--target", TARGET)
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    assert pipeform(spark, "plan", "--target", TARGET, "--detailed-exitcode").returncode == 0


def test_an_unreachable_master_is_one_clear_error(copy_example) -> None:
    require_engine()
    tree = copy_example()
    master = f"spark://127.0.0.1:{free_port()}"
    use_spark(tree, master)
    result = pipeform(tree, "apply", "--auto-approve", "--target", TARGET)
    assert result.returncode == 1
    output = result.stderr + result.stdout
    assert f"the Spark master {master} does not answer" in output
    assert "Traceback" not in output and "\tat " not in output


def test_a_column_spark_reads_as_another_type_is_one_clear_error(tmp_path: Path) -> None:
    require_engine()
    from providers.local.data.features import FeatureError, parse_spec
    from providers.local.data.spark_engine import SparkSettings, materialise_spark

    source = tmp_path / "data.parquet"
    pq.write_table(
        pa.table({"id": pa.array(range(100), pa.int64()),
                  "clicks": pa.array(range(100), pa.uint32()),
                  "label": pa.array([i % 2 for i in range(100)], pa.int64())}),
        source,
    )  # fmt: skip
    spec = parse_spec(
        {"dataset": "d", "entity": ["id"], "label": {"column": "label"},
         "features": [{"name": "clicks", "transforms": ["standardize"]}]}
    )  # fmt: skip
    out = tmp_path / "out"
    out.mkdir()
    settings = SparkSettings(master="local[1]", driver_host="127.0.0.1")
    with pytest.raises(
        FeatureError, match=r"'clicks' .* is uint32 in parquet, which Spark reads as bigint"
    ):
        materialise_spark(spec, source, "ds-1", "fs-1", out, settings)
    assert list(out.iterdir()) == []


def test_failing_dataset_checks_on_the_cluster_fail_as_on_the_local_engine(
    copy_example, spark_cluster: Cluster
) -> None:
    local, spark = copy_example(), copy_example()
    use_spark(spark, spark_cluster.master, rest_port=spark_cluster.rest_port)
    for tree in (local, spark):  # zper repeats across years; ages above 60 exist
        data = tree / "data.yaml"
        text = data.read_text()
        changed = text.replace(
            "{name: zper, type: int, nullable: false,",
            "{name: zper, type: int, nullable: false, unique: true,",
        )
        changed = changed.replace(
            "min: 0, max: 120, description: age", "min: 0, max: 60, description: age"
        )
        assert changed.count("unique: true") == 1 and "max: 60" in changed
        data.write_text(changed)
    results = [
        pipeform(t, "apply", "--auto-approve", "--target", "Dataset/rand-hie")
        for t in (local, spark)
    ]

    def failure(result: subprocess.CompletedProcess[str]) -> list[str]:
        assert result.returncode == 1, result.stderr[-3000:]
        output = result.stdout + result.stderr
        assert "Traceback" not in output and "\tat " not in output, output[-3000:]
        assert "log4j" not in output, output[-3000:]  # the driver JVM's console: its log
        lines = output.splitlines()
        start = next(i for i, line in enumerate(lines) if "failed validation" in line)
        return lines[start : start + 3]

    expected = failure(results[0])
    assert failure(results[1]) == expected
    assert (
        "column zper: unique: 14,278 repeated value(s), first 125024 on line 2 and line 3"
        in expected[1]
    )
    reports = [
        without_time(json.loads(next((t / DATASET).glob("reports/*-failed.json")).read_text()))
        for t in (local, spark)
    ]
    assert reports[0] == reports[1] and reports[0]["passed"] is False
