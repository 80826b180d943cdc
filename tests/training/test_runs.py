"""Training runs through the TrainingJob handler: train, register, record, retry, stop.

What a user notices: a model version in the registry with the alias moved, outputs that
describe the run, a retried create that does not train twice, a kill that costs one
attempt and resumes from a checkpoint, maxDuration that stops the whole process group, a
gate that fails the apply and leaves the registry alone.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from providers.base import ApplyResponse, PermanentError
from providers.local import executor
from tests.training.conftest import Bench

CONTRACT_KEYS = {
    "runId",
    "status",
    "metrics",
    "modelVersion",
    "modelUri",
    "promoted",
    "promotion",
    "modelCard",
    "package",
    "durationSeconds",
    "featureSet",
    "runs",
    "aliasHistory",
}


def record(bench: Bench, run_id: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((bench.job_dir() / run_id / "run.json").read_text())
    return data


def checkpointed(run_dir: Path) -> bool:
    """The trainer reported a finished checkpoint (its JSON progress line)."""
    log = run_dir / "logs" / "trainer.log"
    return log.is_file() and '"event": "checkpoint"' in log.read_text(errors="replace")


def wait_for(condition: Any, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


@pytest.mark.slow
def test_a_run_trains_registers_and_records_its_outputs(
    bench: Bench, trainer: dict[str, Any]
) -> None:
    applied = bench.apply(bench.doc(**trainer["fast"]))
    out = applied.outputs
    assert set(out) == CONTRACT_KEYS
    assert out["status"] == "succeeded" and out["modelVersion"] == 1
    assert out["featureSet"] == bench.featureset["id"]
    assert 0.6 < out["metrics"]["auc"] <= 1.0  # the synthetic label is learnable
    versions = bench.registry_versions()
    assert [v.version for v in versions] == [1] and versions[0].run_id == out["runId"]
    assert "champion" in versions[0].aliases
    assert (Path(out["package"])).is_dir()
    (run,) = out["runs"]
    assert run["id"] == out["runId"] and run["status"] == "succeeded" and run["attempt"] == 1
    assert run["resources"] == {
        "cpu": 1.0,
        "memoryGiB": 1.0,
        "gpus": 0,
        "gpuType": None,
        "workers": 1,
        "nodes": 1,
    }
    assert out["durationSeconds"] == pytest.approx(run["durationSeconds"])
    config = bench.job_dir() / out["runId"] / "config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    lineage = json.loads(config.read_text())["lineage"]
    assert lineage["address"] == "TrainingJob/churn-model"
    assert lineage["spec_hash"].startswith("sha256:")
    assert (
        bench.read(applied).observed
        == applied.observed
        == {
            "runId": out["runId"],
            "status": "succeeded",
            "modelVersion": 1,
        }
    )


@pytest.mark.slow
def test_a_retried_create_adopts_and_a_new_hyperparameter_trains_a_new_version(
    bench: Bench, trainer: dict[str, Any]
) -> None:
    doc = bench.doc(**trainer["fast"])
    first = bench.apply(doc)
    again = bench.apply(doc)  # a create retried after a crash: the state never recorded it
    assert again.outputs["runId"] == first.outputs["runId"]
    assert len(bench.run_dirs()) == 1
    hp = {**doc["spec"]["hyperparameters"], "learningRate": 0.02}
    second = bench.apply(bench.doc(**trainer["fast"], hyperparameters=hp), first, doc)
    assert second.outputs["runId"] != first.outputs["runId"]
    assert second.outputs["modelVersion"] == 2
    assert [r["id"] for r in second.outputs["runs"]] == [
        first.outputs["runId"],
        second.outputs["runId"],
    ]
    champion = [v.version for v in bench.registry_versions() if "champion" in v.aliases]
    assert champion == [2]


@pytest.mark.slow
def test_a_failed_gate_fails_the_apply_and_leaves_the_champion(
    bench: Bench, trainer: dict[str, Any]
) -> None:
    doc = bench.doc(**trainer["fast"])
    first = bench.apply(doc)
    gated = bench.doc(**trainer["fast"], gates=[{"metric": "auc", "min": 0.999}])
    with pytest.raises(PermanentError) as failed:
        bench.apply(gated, first, doc)
    message = str(failed.value)
    assert "failed its evaluation gates: auc 0." in message and "(gate: min 0.999)" in message
    assert "nothing was registered" in message
    versions = bench.registry_versions()
    assert [v.version for v in versions] == [1]
    assert "champion" in versions[0].aliases  # the alias did not move
    newest = max(bench.run_dirs(), key=lambda p: record(bench, p.name)["createdAt"])
    assert record(bench, newest.name)["status"] == "gated"


@pytest.mark.slow
def test_max_duration_stops_the_whole_process_group(bench: Bench, trainer: dict[str, Any]) -> None:
    doc = bench.doc(**trainer["slow"], maxDuration="3s")
    started = time.monotonic()
    with pytest.raises(PermanentError) as failed:
        bench.apply(doc)
    assert time.monotonic() - started < 3 + executor.GRACE_SECONDS + 5
    assert "timed out after 3s (maxDuration); raise spec.maxDuration" in str(failed.value)
    (run_dir,) = bench.run_dirs()
    run = record(bench, run_dir.name)
    assert run["status"] == "timed-out"
    assert run["attempts"][-1]["status"] == "timed-out"
    assert not executor.group_alive(run["attempts"][-1]["pid"])
    assert bench.registry_versions() == []


@pytest.mark.slow
def test_a_killed_trainer_is_retried_from_its_checkpoint(
    bench: Bench, trainer: dict[str, Any]
) -> None:
    doc = bench.doc(**trainer["resumable"], retries=2)
    outcome: dict[str, Any] = {}

    def apply() -> None:
        try:
            outcome["response"] = bench.apply(doc)
        except Exception as exc:  # reported by the assertions below
            outcome["error"] = exc

    worker = threading.Thread(target=apply)
    worker.start()
    wait_for(lambda: bench.run_dirs() and checkpointed(bench.run_dirs()[0]), timeout=120)
    run_id = bench.run_dirs()[0].name
    os.kill(record(bench, run_id)["pid"], signal.SIGKILL)
    worker.join(180)
    assert "error" not in outcome, outcome.get("error")
    response: ApplyResponse = outcome["response"]
    assert response.outputs["runId"] == run_id  # the same run, resumed
    assert [(r["attempt"], r["status"]) for r in response.outputs["runs"]] == [
        (1, "failed"),
        (2, "succeeded"),
    ]
    assert response.outputs["runs"][0]["durationSeconds"] > 0
    result = json.loads((bench.job_dir() / run_id / "result.json").read_text())
    assert result["resumed_from"], "the second attempt started over instead of resuming"
    assert result["epochs"] == 300


def test_a_tampered_feature_table_fails_before_training(bench: Bench, fake: dict[str, Any]) -> None:
    table = Path(bench.featureset["train"]["path"])
    table.write_bytes(table.read_bytes() + b"\0")
    with pytest.raises(PermanentError) as failed:
        bench.apply(bench.doc(**fake["fast"]))
    assert "was changed after it was materialised" in str(failed.value)
    assert "pipeform apply --replace FeatureSet/churn-features" in str(failed.value)
    assert bench.run_dirs() == []


def test_deleting_keeps_registered_versions_and_succeeds_twice(
    bench: Bench, fake: dict[str, Any]
) -> None:
    applied = bench.apply(bench.doc(**fake["fast"]))
    bench.delete(applied)
    assert not bench.job_dir().exists()
    assert bench.read(applied).exists is False
    assert [v.version for v in bench.registry_versions()] == [1]
    bench.delete(applied)
    bench.delete(None)
