"""The champion gate with ``registry: {type: mlflow}``: the whole CLI against the real
``mlflow server`` of the registry tests, with the real trainer on the quickstart.

The first apply registers and promotes the champion in MLflow; a deliberately worse
second configuration is registered as version 2, but alias ``champion`` stays on version 1
(the champion was downloaded from MLflow and scored on the new split). Version 2's tags
and its package in MLflow carry the model card that says why, and the next plan lists it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import CopyExample
from tests.e2e.test_evaluation_gates import JOB, job_outputs, make_worse, pipeform, quick
from tests.integration.mlflow_server import MlflowServer

pytestmark = pytest.mark.slow

MODEL = "expense-model"


def use_mlflow(root: Path, url: str) -> None:
    path = root / "pipeform.yaml"
    text = path.read_text()
    assert "  registry:\n    type: local\n" in text
    path.write_text(
        text.replace(
            "  registry:\n    type: local\n",
            f'  registry:\n    type: mlflow\n    trackingUri: "{url}"\n',
        )
    )


def test_a_worse_model_is_registered_in_mlflow_but_the_alias_stays(
    mlflow_server: MlflowServer, copy_example: CopyExample, tmp_path: Path
) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server.url, registry_uri=mlflow_server.url)
    root = copy_example()
    quick(root)
    use_mlflow(root, mlflow_server.url)
    first = pipeform(root, "apply", "--auto-approve")
    assert first.returncode == 0, first.stdout + first.stderr
    assert client.get_model_version_by_alias(MODEL, "champion").version == "1"
    assert not (root / ".pipeform" / "data" / "registry").exists()  # nothing registered locally

    make_worse(root)
    second = pipeform(root, "apply", "--auto-approve")
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"registered {MODEL} v2; not promoted: auc" in second.stdout
    assert client.get_model_version_by_alias(MODEL, "champion").version == "1"
    versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{MODEL}'"))
    assert versions == [1, 2]
    tags = client.get_model_version(MODEL, "2").tags
    assert tags["pipeform.promoted"] == "false"
    assert tags["pipeform.promotion"].startswith("not promoted: auc")
    assert "alias 'champion' stays on v1" in tags["pipeform.promotion"]
    outputs = job_outputs(root)
    assert outputs["modelVersion"] == 2 and outputs["modelUri"] == f"models:/{MODEL}/2"
    assert outputs["promotion"]["status"] == "not-promoted"

    # the model card is in the MLflow registry version (its package), and says why
    downloaded = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=client.get_model_version_download_uri(MODEL, "2"),
            dst_path=str(tmp_path / "v2"),
            tracking_uri=mlflow_server.url,
        )
    )
    card = json.loads(
        (downloaded / tags["pipeform.model_card"].removeprefix("package/")).read_text()
    )
    comparison = card["promotion"]["champion"]
    assert comparison["champion_version"] == 1
    assert comparison["champion_scored"] == "scored on this run's validation split"
    assert comparison["new_value"] < comparison["champion_value"] - 0.01
    assert card["promotion"]["reason"] == tags["pipeform.promotion"]
    assert (downloaded / "model_card.md").read_text().startswith(f"# Model card: {MODEL}")

    planned = pipeform(root, "plan", "--json")
    assert planned.returncode == 0, planned.stderr
    (job,) = [c for c in json.loads(planned.stdout)["resource_changes"] if c["address"] == JOB]
    assert job["change"]["actions"] == ["no-op"]
    assert f"{MODEL} v2 -> alias champion: not promoted by the champion gate" in job["waiting"]
