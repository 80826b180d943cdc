"""The artifacts bucket (providers.aws.artifacts) against moto_server, through the real CLI.

The quickstart applies with an artifacts bucket: the snapshot, the feature tables, the
transform, the checkpoints and the package land under content-addressed keys; a second
apply sends nothing; the trainer's CLI trains from a RunConfig whose inputs are only s3://
(the local copies deleted) and refuses a table whose bytes changed; a bucket that does not
exist and an endpoint that does not answer are one clear error each.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.aws import moto
from tests.aws.test_s3_quickstart import pipeform, s3
from tests.conftest import CopyExample
from tests.integration.servers import free_port

pytestmark = pytest.mark.slow

BUCKET = "pipeform-artifacts"
PREFIX = "team/ml"


def with_artifacts(root: Path, endpoint: str, bucket: str = BUCKET) -> None:
    """The quickstart with providers.aws.artifacts set, and a short training."""
    block = (
        f"    aws:\n      region: us-east-1\n      endpointUrl: {endpoint}\n"
        f"      artifacts:\n        bucket: {bucket}\n        prefix: {PREFIX}\n"
    )
    workspace = root / "pipeform.yaml"
    workspace.write_text(workspace.read_text().replace("  providers:\n", "  providers:\n" + block))
    training = root / "training.yaml"
    training.write_text(training.read_text().replace("epochs: 20", "epochs: 4"))


def listing(server: moto.MotoServer) -> dict[str, tuple[str, str]]:
    """Every object in the bucket: key -> (ETag, LastModified)."""
    found = s3(server).list_objects_v2(Bucket=BUCKET).get("Contents") or []
    return {o["Key"]: (o["ETag"], str(o["LastModified"])) for o in found}


def outputs(root: Path, address: str) -> Any:
    shown = pipeform("state", "show", address, cwd=root)
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)["outputs"]


def trainer_cli(config: Path, server: moto.MotoServer) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "CUDA_VISIBLE_DEVICES": "",
        **moto.CREDENTIALS,
    }
    return subprocess.run(
        [sys.executable, "-m", "trainer", "run", "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_artifacts_are_stored_content_addressed_and_the_trainer_reads_them_from_s3(
    copy_example: CopyExample, aws: moto.MotoServer, tmp_path: Path
) -> None:
    root = copy_example()
    with_artifacts(root, aws.url)
    s3(aws).create_bucket(Bucket=BUCKET)

    done = pipeform("apply", "--auto-approve", cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr
    dataset = outputs(root, "Dataset/rand-hie")
    features = outputs(root, "FeatureSet/hie-features")
    job = outputs(root, "TrainingJob/expense-model")
    assert job["status"] == "succeeded"
    base = f"s3://{BUCKET}/{PREFIX}"
    assert dataset["uri"] == f"{base}/snapshots/sha256/{dataset['sha256']}.parquet"
    for split in ("train", "validation"):
        table = features[split]
        digest = table["sha256"].removeprefix("sha256:")
        assert table["uri"] == f"{base}/features/sha256/{digest}.parquet"
    assert job["packageUri"].startswith(f"{base}/packages/sha256/")

    keys = listing(aws)
    expected = [
        f"{PREFIX}/snapshots/sha256/{dataset['sha256']}.parquet",
        features["train"]["uri"].removeprefix(f"s3://{BUCKET}/"),
        features["validation"]["uri"].removeprefix(f"s3://{BUCKET}/"),
        features["transform"]["uri"].removeprefix(f"s3://{BUCKET}/"),
        job["packageUri"].removeprefix(f"s3://{BUCKET}/") + "metadata.json",
        job["packageUri"].removeprefix(f"s3://{BUCKET}/") + "model.safetensors",
    ]
    assert [k for k in expected if k not in keys] == []
    checkpoints = [k for k in keys if k.startswith(f"{PREFIX}/checkpoints/expense-model/")]
    assert any(k.endswith(".pt") for k in checkpoints)
    assert any(k.endswith(".pt.sha256") for k in checkpoints)

    # the run's config names s3:// locations only, and no credential
    config_path = next((root / ".pipeform" / "data" / "runs").rglob("config.json"))
    config = json.loads(config_path.read_text())
    assert config["version"] >= 3  # s3:// locations need version 3 or later
    assert config["inputs"]["train"]["path"] == features["train"]["uri"]
    assert config["checkpoint"]["dir"].startswith(f"{base}/checkpoints/expense-model/")
    assert moto.CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in config_path.read_text()

    # a second apply is a no-op and sends nothing
    again = pipeform("apply", "--auto-approve", cwd=root)
    assert again.returncode == 0, again.stdout + again.stderr
    assert listing(aws) == keys
    assert pipeform("plan", "--detailed-exitcode", cwd=root).returncode == 0

    # the trainer's CLI on that config, with the local feature tables gone: it reads s3
    shutil.rmtree(Path(features["dir"]))
    retrain = dict(config, run_id="retrain-from-s3", output_dir=str(tmp_path / "retrain"))
    retrain["checkpoint"] = dict(config["checkpoint"], dir=f"{base}/checkpoints/cli/")
    retrain["registry"] = None
    retrain_config = tmp_path / "retrain.json"
    retrain_config.write_text(json.dumps(retrain))
    trained = trainer_cli(retrain_config, aws)
    assert trained.returncode == 0, trained.stderr
    result = json.loads((tmp_path / "retrain" / "result.json").read_text())
    assert result["status"] == "succeeded"
    assert result["package_uri"] == job["packageUri"] or result["package_uri"].startswith(
        f"{base}/packages/sha256/"
    )
    assert any(k.startswith(f"{PREFIX}/checkpoints/cli/") for k in listing(aws))

    # a feature table edited in the bucket: refused before training (exit 3)
    key = features["train"]["uri"].removeprefix(f"s3://{BUCKET}/")
    s3(aws).put_object(Bucket=BUCKET, Key=key, Body=b"not the table")
    retrain["output_dir"] = str(tmp_path / "tampered")
    retrain_config.write_text(json.dumps(retrain))
    refused = trainer_cli(retrain_config, aws)
    assert refused.returncode == 3, refused.stderr
    assert f"the train table {features['train']['uri']} has sha256" in refused.stderr


@pytest.mark.parametrize("problem", ["missing bucket", "wrong endpoint"])
def test_a_missing_bucket_or_a_wrong_endpoint_is_one_clear_error(
    copy_example: CopyExample, aws: moto.MotoServer, problem: str
) -> None:
    root = copy_example()
    endpoint = aws.url if problem == "missing bucket" else f"http://127.0.0.1:{free_port()}"
    with_artifacts(root, endpoint, bucket="no-such-bucket")
    done = pipeform("apply", "--auto-approve", cwd=root)
    assert done.returncode == 1
    expected = "the bucket does not exist" if problem == "missing bucket" else "cannot reach the S3"
    text = done.stdout + done.stderr
    assert text.count(expected) == 1, text
    assert "providers.aws.artifacts.bucket" in text or "providers.aws.endpointUrl" in text
    assert "Traceback" not in text
