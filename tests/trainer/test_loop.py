"""Training runs end to end (in this process): determinism, early stopping, gates, tasks."""

from __future__ import annotations

import json
import os
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import CopyExample
from tests.trainer.conftest import write_table
from trainer.config import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_GATED, EXIT_OK

Factory = Callable[..., dict[str, Any]]
Runner = Callable[[dict[str, Any]], int]


def _result(config: dict[str, Any]) -> dict[str, Any]:
    return json.loads((Path(config["output_dir"]) / "result.json").read_text())


def _weights(config: dict[str, Any]) -> dict[str, torch.Tensor]:
    return load_file(str(Path(config["output_dir"]) / "package" / "model.safetensors"))


def test_same_config_gives_bit_identical_weights(
    config_factory: Factory, run_inprocess: Runner
) -> None:
    settings = {"model": {"dropout": 0.2}, "hyperparameters": {"scheduler": "onecycle"}}
    first, second = config_factory("a", **settings), config_factory("b", **settings)
    assert run_inprocess(first) == EXIT_OK
    assert run_inprocess(second) == EXIT_OK
    a, b = _weights(first), _weights(second)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[name], b[name]) for name in a)
    other = config_factory(
        "c", model={"dropout": 0.2}, hyperparameters={"scheduler": "onecycle", "seed": 4}
    )
    assert run_inprocess(other) == EXIT_OK
    assert not all(torch.equal(a[name], _weights(other)[name]) for name in a)


def test_training_learns_and_reports_every_binary_metric(
    config_factory: Factory, run_inprocess: Runner, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_factory(hyperparameters={"epochs": 4, "warmup_steps": 5})
    assert run_inprocess(config) == EXIT_OK
    result = _result(config)
    assert result["status"] == "succeeded" and result["epochs"] == 4
    assert result["metrics"]["auc"] > 0.75  # the synthetic label is learnable
    assert set(result["metrics"]) == {
        "loss",
        "accuracy",
        "precision",
        "recall",
        "f1",
        "auc",
        "logloss",
    }
    assert result["samples_per_second"] > 0 and result["first_step_seconds"] > 0
    lines = [
        json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")
    ]
    epochs = [line for line in lines if line["event"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3, 4]
    assert {"step", "loss", "metrics", "samples_per_s", "ts"} <= set(epochs[0])
    assert epochs[-1]["loss"] < epochs[0]["loss"]  # training loss goes down
    assert lines[-1]["event"] == "finished" and lines[-1]["status"] == "succeeded"


def test_early_stopping_restores_the_best_weights(
    config_factory: Factory, run_inprocess: Runner
) -> None:
    config = config_factory(
        rows=300,
        model={"hidden": [64, 64]},
        hyperparameters={
            "epochs": 15,
            "learning_rate": 0.03,
            "batch_size": 32,
            "scheduler": "constant",
            "early_stopping": {"metric": "loss", "patience": 2},
        },
    )
    assert run_inprocess(config) == EXIT_OK
    history = json.loads((Path(config["output_dir"]) / "metrics.json").read_text())["epochs"]
    losses = [epoch["metrics"]["loss"] for epoch in history]
    assert len(losses) < 15, "a small training set overfits: early stopping should stop it"
    best = min(losses)
    assert losses[-1] > best and losses[-2] > best  # patience 2: two epochs without progress
    assert _result(config)["metrics"]["loss"] == pytest.approx(best, abs=1e-7)


@pytest.mark.parametrize(
    ("task", "model", "metric", "bound"),
    [("regression", "resmlp", "r2", 0.5), ("multiclass-classification", "linear", "accuracy", 0.6)],
)
def test_other_tasks_train_to_useful_metrics(
    config_factory: Factory, run_inprocess: Runner, task: str, model: str, metric: str, bound: float
) -> None:
    config = config_factory(task=task, model={"type": model}, hyperparameters={"epochs": 4})
    assert run_inprocess(config) == EXIT_OK
    assert _result(config)["metrics"][metric] > bound


def test_failed_gate_registers_nothing(
    config_factory: Factory, run_inprocess: Runner, tmp_path: Path
) -> None:
    registry = {
        "type": "local",
        "uri": str(tmp_path / "registry"),
        "model": "m",
        "alias": "champion",
    }
    config = config_factory(gates=[{"metric": "auc", "min": 0.999}], registry=registry)
    assert run_inprocess(config) == EXIT_GATED
    result = _result(config)
    assert result["status"] == "gated" and result["model_version"] is None
    assert result["gates"][0]["passed"] is False and result["gates"][0]["value"] < 0.999
    assert (Path(config["output_dir"]) / "package" / "model.safetensors").exists()
    from trainer.registry.local import LocalRegistry

    if (tmp_path / "registry" / "registry.db").exists():
        with pytest.raises(KeyError):
            LocalRegistry(tmp_path / "registry").versions("m")


def test_passing_gates_register_and_move_the_alias(
    config_factory: Factory, run_inprocess: Runner, tmp_path: Path
) -> None:
    registry = {
        "type": "local",
        "uri": str(tmp_path / "registry"),
        "model": "churn",
        "alias": "champion",
        "tags": {"team": "growth"},
    }
    config = config_factory(
        gates=[{"metric": "auc", "min": 0.6}, {"metric": "logloss", "max": 5}], registry=registry
    )
    assert run_inprocess(config) == EXIT_OK
    result = _result(config)
    assert result["model_version"] == "1" and all(g["passed"] for g in result["gates"])
    from trainer.registry.local import LocalRegistry

    version = LocalRegistry(tmp_path / "registry").get("churn", alias="champion")
    assert version.version == 1 and version.run_id == "run-test-1"
    assert version.tags.get("team") == "growth"
    assert version.package_sha256 == result["package_sha256"]
    assert version.lineage["lineage"]["spec_hash"] == "sha256:spec"


def _tamper(path: str) -> None:
    with open(path, "ab") as stream:
        stream.write(b"\0")


@pytest.mark.parametrize("problem", ["checksum", "missing"])
def test_bad_input_stops_before_training(
    config_factory: Factory, run_inprocess: Runner, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_factory()
    validation = config["inputs"]["validation"]["path"]
    if problem == "checksum":
        _tamper(validation)
    else:
        os.unlink(validation)
    assert run_inprocess(config) == EXIT_BAD_INPUT
    out = Path(config["output_dir"])
    assert not (out / "checkpoints").exists() or not any((out / "checkpoints").iterdir())
    assert not (out / "package").exists()
    result = _result(config)
    assert result["status"] == "failed" and result["steps"] == 0
    assert "validation table" in result["error"]
    stderr = capsys.readouterr().err
    assert "trainer: error: the validation table" in stderr and "Traceback" not in stderr


def test_a_failure_writes_result_json_without_secrets(
    config_factory: Factory, run_inprocess: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "leaky_model.py").write_text(
        "import os\n\ndef build(n_inputs, n_outputs, config):\n"
        "    raise ValueError('cannot reach ' + os.environ['WANDB_API_KEY'])\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("WANDB_API_KEY", "s3cr3t-value-42")
    config = config_factory(model={"type": "custom", "entrypoint": "leaky_model:build"})
    assert run_inprocess(config) == EXIT_FAILED
    text = (Path(config["output_dir"]) / "result.json").read_text()
    assert "s3cr3t-value-42" not in text
    assert json.loads(text)["error"] == "ValueError: cannot reach ***"
    sys.modules.pop("leaky_model", None)


def test_metrics_are_pushed_at_the_end_of_every_run(
    config_factory: Factory, run_inprocess: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []
    fake = types.ModuleType("trainer.pushmetrics")
    fake.push_run_metrics = lambda target, **kwargs: calls.append({"job": target.job, **kwargs})  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "trainer.pushmetrics", fake)
    metrics = {
        "pushgateway_url": "http://127.0.0.1:9",
        "job": "churn",
        "prior_counts": {"succeeded": 2},
    }
    assert run_inprocess(config_factory("ok", metrics=metrics)) == EXIT_OK
    gated = config_factory("gated", metrics=metrics, gates=[{"metric": "auc", "min": 1.5}])
    assert run_inprocess(gated) == EXIT_GATED
    assert [c["status"] for c in calls] == ["succeeded", "gated"]
    assert calls[0]["job"] == "churn" and calls[0]["prior_counts"] == {"succeeded": 2}
    assert calls[0]["metrics"]["auc"] > 0.5 and calls[0]["samples_per_second"] > 0


@pytest.mark.slow
def test_trains_on_the_quickstart_data(
    tmp_path: Path, run_inprocess: Runner, copy_example: CopyExample
) -> None:
    """The RAND HIE person-years, years 1-3 vs 4-5: an MLP reaches a validation AUC near 0.75."""
    import numpy as np
    import pandas as pd

    frame = pd.read_csv(copy_example() / "data" / "randhie.csv")
    columns = [
        "logc",
        "idp",
        "lpi",
        "fmde",
        "xage",
        "female",
        "child",
        "black",
        "linc",
        "lfam",
        "mhi",
        "xghindx",
        "physlm",
        "disea",
        "hlthg",
        "hlthf",
        "hlthp",
        "tookphys",
    ]
    frame = frame.dropna(subset=columns)
    train, validation = frame[frame.year <= 3], frame[frame.year >= 4]
    mean, std = train[columns].mean(), train[columns].std().replace(0, 1)
    tables = {}
    for name, part in (("train", train), ("validation", validation)):
        x = ((part[columns] - mean) / std).to_numpy(np.float32)
        path = tmp_path / f"{name}.parquet"
        write_table(path, x, part["binexp"].to_numpy(np.int64))
        import hashlib

        tables[name] = {"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    config = {
        "run_id": "quickstart-1",
        "inputs": {**tables, "features": [f"f{i}" for i in range(len(columns))], "label": "label"},
        "model": {
            "type": "mlp",
            "task": "binary-classification",
            "hidden": [64, 32],
            "dropout": 0.1,
        },
        "hyperparameters": {"epochs": 3, "batch_size": 256, "learning_rate": 0.002},
        "gates": [{"metric": "auc", "min": 0.70}],
        "checkpoint": {"dir": str(tmp_path / "out" / "checkpoints")},
        "output_dir": str(tmp_path / "out"),
        "device": "cpu",
    }
    assert run_inprocess(config) == EXIT_OK
    assert 0.70 < _result(config)["metrics"]["auc"] < 0.85


@pytest.mark.parametrize("rows", [1, 7, 100, 1001])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_epoch_order_is_exactly_the_distributed_samplers(rows: int, world: int) -> None:
    from torch.utils.data import DistributedSampler

    from trainer.loop import sampler_order

    for rank in range(world):
        sampler = DistributedSampler(range(rows), num_replicas=world, rank=rank, seed=5)  # type: ignore[arg-type]
        for epoch in (0, 3):
            sampler.set_epoch(epoch)
            assert sampler_order(sampler, rows).tolist() == list(iter(sampler))
