"""The MLflow registry against a real ``mlflow server`` (SQLite store, served artifacts).

The server starts once per session (10-20 s); each test uses its own model name.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.mlflow_server import MlflowServer, stop_process_group
from trainer.config import RegistryTarget
from trainer.registry import ModelVersion, open_registry
from trainer.registry.local import RegistryError, RegistryLookupError, package_digest
from trainer.registry.mlflow import MlflowRegistry, shown_uri

pytestmark = pytest.mark.slow

LINEAGE = {  # the shape of the trainer's package metadata.json
    "run_id": "run-1",
    "lineage": {
        "address": "TrainingJob/churn",
        "featureset": "FeatureSet/churn@fs-0123",
        "dataset_snapshots": ["ds-abc"],
        "git_commit": None,
    },
    "config": {"hyperparameters": {"learning_rate": 0.01, "epochs": 3}, "model": {"type": "mlp"}},
    "metrics": {"auc": 0.91, "loss": 0.25},
    "training": {"history": [{"epoch": 1, "loss": 0.3}]},
}


def register(registry: MlflowRegistry, package: Path, model: str, run_id: str) -> ModelVersion:
    return registry.register(package, model, run_id=run_id, tags={"team": "risk"}, lineage=LINEAGE)


def files(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


def test_register_uploads_the_package_and_records_lineage(
    mlflow_server: MlflowServer, package: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    registry = open_registry(RegistryTarget(type="mlflow", uri=mlflow_server.url, model="churn"))
    assert isinstance(registry, MlflowRegistry)
    version = registry.register(
        package, "churn", run_id="run-1", tags={"team": "risk"}, lineage=LINEAGE
    )

    assert (version.model, version.version, version.uri) == ("churn", 1, "models:/churn/1")
    assert version.run_id == "run-1"
    assert version.package_sha256 == package_digest(package)
    assert version.tags == {"team": "risk"}
    assert version.lineage == LINEAGE
    # the package comes back byte for byte through the registry URI
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", mlflow_server.url)
    downloaded = mlflow.artifacts.download_artifacts(
        artifact_uri=version.uri, dst_path=str(tmp_path / "dl")
    )
    assert files(Path(downloaded)) == files(package)

    client = MlflowClient(tracking_uri=mlflow_server.url, registry_uri=mlflow_server.url)
    raw = client.get_model_version("churn", "1")
    assert raw.tags["pipeform.lineage.address"] == "TrainingJob/churn"  # shown in the UI
    assert raw.tags["pipeform.lineage.dataset_snapshots"] == '["ds-abc"]'
    assert raw.tags["pipeform.lineage.featureset"] == "FeatureSet/churn@fs-0123"
    assert not [key for key in raw.tags if key.startswith("pipeform.lineage.config")]
    run = client.get_run(raw.run_id)
    assert run.data.tags["pipeform.run_id"] == "run-1"
    assert run.data.params["hyperparameters.learning_rate"] == "0.01"
    assert run.data.metrics == {"auc": 0.91, "loss": 0.25}
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "pipeform"
    assert {a.path for a in client.list_artifacts(raw.run_id)} == {"lineage.json", "package"}


def test_versions_increment_and_registering_a_run_again_adds_nothing(
    mlflow_server: MlflowServer, package: Path
) -> None:
    from mlflow.tracking import MlflowClient

    registry = MlflowRegistry(mlflow_server.url)
    first = register(registry, package, "fraud", "fraud-run-1")
    second = register(registry, package, "fraud", "fraud-run-2")
    again = register(registry, package, "fraud", "fraud-run-1")  # a retry after a crash

    assert (first.version, second.version) == (1, 2)
    assert again == first
    assert [(v.version, v.run_id) for v in registry.versions("fraud")] == [
        (1, "fraud-run-1"),
        (2, "fraud-run-2"),
    ]
    assert registry.get("fraud").version == 2  # latest
    client = MlflowClient(tracking_uri=mlflow_server.url)
    runs = client.search_runs(
        [client.get_experiment_by_name("pipeform").experiment_id],
        filter_string="tags.`pipeform.run_id` = 'fraud-run-1'",
    )
    assert len(runs) == 1  # no second upload either


def test_a_finished_upload_is_reused_when_the_version_was_not_created(
    mlflow_server: MlflowServer, package: Path
) -> None:
    """A crash after the upload and before create_model_version: the retry reuses the run."""
    from mlflow.tracking import MlflowClient

    registry = MlflowRegistry(mlflow_server.url)
    uploaded = registry._log_run(package, "upsell-run-1", package_digest(package), LINEAGE)
    version = register(registry, package, "upsell", "upsell-run-1")

    client = MlflowClient(tracking_uri=mlflow_server.url, registry_uri=mlflow_server.url)
    assert client.get_model_version("upsell", str(version.version)).run_id == uploaded


def test_aliases_move_only_when_asked(mlflow_server: MlflowServer, package: Path) -> None:
    registry = MlflowRegistry(mlflow_server.url)
    register(registry, package, "ranker", "ranker-run-1")
    registry.set_alias("ranker", "champion", 1)
    register(registry, package, "ranker", "ranker-run-2")

    assert registry.get("ranker", alias="champion").version == 1
    assert registry.get("ranker", version=2).aliases == ()
    registry.set_alias("ranker", "champion", 2)
    assert registry.get("ranker", alias="champion").version == 2
    assert registry.get("ranker", version=1).aliases == ()
    assert [v.aliases for v in registry.versions("ranker")] == [(), ("champion",)]


def test_unknown_names_are_errors_that_list_what_exists(
    mlflow_server: MlflowServer, package: Path
) -> None:
    registry = MlflowRegistry(mlflow_server.url)
    register(registry, package, "scorer", "scorer-run-1")
    registry.set_alias("scorer", "champion", 1)

    with pytest.raises(KeyError, match=r"model 'nothing' is not registered in MLflow .*scorer"):
        registry.get("nothing")
    with pytest.raises(RegistryLookupError, match=r"no version 5 \(versions: 1\)"):
        registry.get("scorer", version=5)
    with pytest.raises(RegistryLookupError, match=r"no alias 'prod' \(aliases: champion -> 1\)"):
        registry.get("scorer", alias="prod")
    with pytest.raises(RegistryLookupError, match="no version 4"):
        registry.set_alias("scorer", "champion", 4)
    assert registry.get("scorer", alias="champion").version == 1


def test_an_unreachable_server_is_one_clear_error(
    package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.integration.mlflow_server import free_port

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    registry = MlflowRegistry(f"http://user:hunter2@127.0.0.1:{free_port()}")
    with pytest.raises(RegistryError) as caught:
        register(registry, package, "churn", "run-1")
    message = str(caught.value)
    assert "MLflow registry at http://***@127.0.0.1:" in message
    assert "is the server running?" in message
    assert "hunter2" not in message


def test_shown_uri_hides_credentials() -> None:
    assert shown_uri("at http://a:b@host:5000/x: refused") == "at http://***@host:5000/x: refused"
    assert shown_uri("https://token@host/api") == "https://***@host/api"
    assert shown_uri("http://host:5000") == "http://host:5000"


def test_the_server_listens_on_loopback_only(mlflow_server: MlflowServer) -> None:
    proc = Path("/proc/net/tcp")
    if not proc.exists():
        pytest.skip("needs Linux /proc/net/tcp")
    port = f"{mlflow_server.port:04X}"
    listening = []
    for table in (proc, Path("/proc/net/tcp6")):
        for line in table.read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and local.endswith(f":{port}"):  # 0A: LISTEN
                listening.append(local.split(":")[0])
    assert listening == ["0100007F"]  # 127.0.0.1, and no other address


def test_stopping_a_process_group_leaves_no_process() -> None:
    """What the fixture does to mlflow's uvicorn workers, on a shell with children."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, time; subprocess.Popen(['sleep', '300']); "
            "subprocess.Popen(['sleep', '301']); time.sleep(300)",
        ],
        start_new_session=True,
    )
    time.sleep(0.5)
    stop_process_group(process, grace=5)
    assert process.returncode is not None
    # what is left of the group may only be zombies waiting for init to reap them
    table = subprocess.run(
        ["ps", "-e", "-o", "pgid=,stat="], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    left = [line.split()[1] for line in table if line.split()[:1] == [str(process.pid)]]
    assert all(state.startswith("Z") for state in left), left
