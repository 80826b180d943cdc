"""What a run measures about itself reaches the Pushgateway: step times, checkpoints and
resource use (trainer.telemetry), pushed by the real trainer to a recording gateway."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.registry.test_pushmetrics import Gateway, gateway  # noqa: F401 (a fixture)
from tests.trainer.conftest import result_of
from trainer.config import EXIT_FAILED, EXIT_OK

Factory = Any
Runner = Any


def metrics_to(url: str) -> dict[str, Any]:
    return {"pushgateway_url": url, "job": "churn"}


def test_a_run_pushes_its_step_times_checkpoints_and_resource_use(
    gateway: Gateway,  # noqa: F811
    config_factory: Factory,
    run_inprocess: Runner,
) -> None:
    started = time.time()
    config = config_factory("ok", metrics=metrics_to(gateway.url))
    assert run_inprocess(config) == EXIT_OK
    steps = result_of(config)["steps"]
    assert steps > 10
    samples = gateway.samples()
    # every step in the histogram, cumulative buckets ending at the step count
    assert samples[("pipeform_training_batch_seconds_count", ())] == steps
    assert samples[("pipeform_training_batch_seconds_bucket", (("le", "+Inf"),))] == steps
    buckets = sorted(
        (float(labels[0][1]), value)
        for (name, labels), value in samples.items()
        if name == "pipeform_training_batch_seconds_bucket"
    )
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)
    total = samples[("pipeform_training_batch_seconds_sum", ())]
    assert 0 < total < time.time() - started
    # the newest good checkpoint is the one written when training finished
    assert samples[("pipeform_training_last_checkpoint_step", ())] == steps
    written = samples[("pipeform_training_last_checkpoint_timestamp_seconds", ())]
    assert started <= written <= time.time()
    assert samples[("pipeform_training_checkpoint_failures", (("stage", "write"),))] == 0
    assert samples[("pipeform_training_checkpoint_failures", (("stage", "resume"),))] == 0
    assert samples[("pipeform_training_cpu_seconds", ())] > 0
    assert samples[("pipeform_training_peak_memory_bytes", ())] > 50 * 2**20  # torch alone
    assert ("pipeform_training_gpu_memory_peak_ratio", ()) not in samples  # a CPU run


def test_checkpoints_that_cannot_be_used_or_written_are_counted(
    gateway: Gateway,  # noqa: F811
    config_factory: Factory,
    run_inprocess: Runner,
) -> None:
    config = config_factory("damaged", metrics=metrics_to(gateway.url))
    checkpoints = Path(config["checkpoint"]["dir"])
    checkpoints.mkdir(parents=True)
    (checkpoints / "ckpt-000099999.pt").write_bytes(b"not a checkpoint")
    assert run_inprocess(config) == EXIT_OK
    samples = gateway.samples()
    assert samples[("pipeform_training_checkpoint_failures", (("stage", "resume"),))] == 1
    assert samples[("pipeform_training_checkpoint_failures", (("stage", "write"),))] == 0

    config = config_factory("unwritable", metrics=metrics_to(gateway.url))
    blocked = Path(config["checkpoint"]["dir"])
    blocked.parent.mkdir(parents=True)
    blocked.write_text("a file where the checkpoint directory should be")
    assert run_inprocess(config) == EXIT_FAILED
    samples = gateway.samples()
    assert samples[("pipeform_training_checkpoint_failures", (("stage", "write"),))] == 1
    assert samples[("pipeform_training_run_succeeded", ())] == 0
    assert ("pipeform_training_last_checkpoint_step", ()) not in samples


def test_the_champion_gate_pushes_the_performance_delta(
    gateway: Gateway,  # noqa: F811
    config_factory: Factory,
    run_inprocess: Runner,
    tmp_path: Path,
) -> None:
    registry = {
        "type": "local",
        "uri": str(tmp_path / "registry"),
        "model": "churn",
        "alias": "champion",
        "champion": {"metric": "auc", "margin": 0.01},
    }
    champion = config_factory("champion", registry=registry, metrics=metrics_to(gateway.url))
    assert run_inprocess(champion) == EXIT_OK
    assert not [key for key in gateway.samples() if key[0] == "pipeform_training_champion_delta"]
    worse = config_factory(
        "worse",
        registry=registry,
        metrics=metrics_to(gateway.url),
        run_id="run-test-2",
        hyperparameters={"epochs": 1, "learning_rate": 0.00001},
    )
    assert run_inprocess(worse) == EXIT_OK
    result = result_of(worse)
    assert result["promoted"] is False
    delta = gateway.samples()[("pipeform_training_champion_delta", (("metric", "auc"),))]
    card = json.loads(Path(result["model_card"]).read_text())
    assert delta == card["promotion"]["champion"]["delta"] < -0.01
