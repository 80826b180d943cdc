"""The quickstart with its data in s3:// (moto_server), end to end through the real CLI.

The Dataset's source is an object in the emulator, read by the local provider's data plane
through pyarrow's S3 filesystem with the Workspace's providers.aws settings; the snapshot,
the features and the training stay local. A second apply changes nothing, and a new version
of the object plans the re-snapshot and the retrain downstream.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.aws import moto
from tests.conftest import CopyExample, run_cli

pytestmark = pytest.mark.slow

BUCKET = "pipeform-quickstart"
KEY = "hie/randhie.csv"


def pipeform(*args: str, cwd: Path) -> Any:
    env = {**os.environ, **moto.CREDENTIALS, "QUICKSTART_METRICS_TOKEN": "s3-demo", "NO_COLOR": "1"}
    return run_cli(*args, cwd=cwd, env=env, timeout=900)


def s3(server: moto.MotoServer) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id=moto.CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=moto.CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def s3_variant(root: Path, server: moto.MotoServer) -> bytes:
    """Move the quickstart's table into a versioned bucket and point the specs at it."""
    data = (root / "data" / "randhie.csv").read_bytes()
    client = s3(server)
    client.create_bucket(Bucket=BUCKET)
    client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    client.put_object(Bucket=BUCKET, Key=KEY, Body=data)
    (root / "data" / "randhie.csv").unlink()  # only the object is left to read
    dataset = root / "data.yaml"
    text = dataset.read_text().replace("file://data/randhie.csv", f"s3://{BUCKET}/{KEY}")
    dataset.write_text(text)
    training = root / "training.yaml"
    training.write_text(training.read_text().replace("epochs: 20", "epochs: 4"))
    workspace = root / "pipeform.yaml"
    block = f"    aws:\n      region: us-east-1\n      endpointUrl: {server.url}\n"
    workspace.write_text(workspace.read_text().replace("  providers:\n", "  providers:\n" + block))
    return data


def changes(root: Path) -> dict[str, tuple[list[str], str]]:
    planned = pipeform("plan", "--json", cwd=root)
    assert planned.returncode in (0, 2), planned.stderr
    plan = json.loads(planned.stdout)
    return {
        c["address"]: (c["change"]["actions"], c.get("reason_detail") or c["action_reason"])
        for c in plan["resource_changes"]
        if c["change"]["actions"] != ["no-op"]
    }


def test_s3_data_applies_trains_and_replans_only_when_the_object_changes(
    copy_example: CopyExample, aws: moto.MotoServer
) -> None:
    root = copy_example()
    data = s3_variant(root, aws)

    done = pipeform("apply", "--auto-approve", cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr
    shown = pipeform("state", "show", "Dataset/rand-hie", cwd=root)
    outputs = json.loads(shown.stdout)["outputs"]
    assert outputs["rows"] == 20190
    assert outputs["fingerprint"].startswith("s3:")
    manifest = json.loads((root / outputs["path"]).with_name("manifest.json").read_text())
    version = s3(aws).head_object(Bucket=BUCKET, Key=KEY)["VersionId"]
    assert manifest["source"]["objects"][0]["versionId"] == version
    assert len(manifest["source"]["contentSha256"]) == 64
    job = json.loads(pipeform("state", "show", "TrainingJob/expense-model", cwd=root).stdout)
    assert job["outputs"]["status"] == "succeeded"

    again = pipeform("plan", "--detailed-exitcode", cwd=root)
    assert again.returncode == 0, again.stdout + again.stderr  # nothing to do

    # a new version of the object: one changed cell
    lines = data.decode().splitlines(keepends=True)
    lines[1] = lines[1].replace(",", ", ", 1)
    s3(aws).put_object(Bucket=BUCKET, Key=KEY, Body="".join(lines).encode())
    planned = changes(root)
    assert planned["Dataset/rand-hie"][0] == ["update"]
    assert "source changed (s3:" in planned["Dataset/rand-hie"][1]
    assert "FeatureSet/hie-features" in planned
    assert "TrainingJob/expense-model" in planned
