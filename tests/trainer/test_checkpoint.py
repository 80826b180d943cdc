"""Checkpoints: atomic and checksummed files, and resuming to bit-identical weights."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from tests.trainer.conftest import ROOT, events, run_trainer, trainer_env, write_config
from trainer import checkpoint, fsio
from trainer.config import EXIT_OK, EXIT_PREEMPTED
from trainer.loop import FAULT_ENV

Factory = Callable[..., dict[str, Any]]
Runner = Callable[[dict[str, Any]], int]

#: dropout (the RNG must be restored), early stopping (its state too), a schedule
SETTINGS: dict[str, Any] = {
    "model": {"dropout": 0.2, "type": "resmlp"},
    "hyperparameters": {
        "epochs": 3,
        "scheduler": "cosine",
        "warmup_steps": 4,
        "early_stopping": {"metric": "auc", "patience": 5},
    },
}


def _weights(config: dict[str, Any]) -> dict[str, torch.Tensor]:
    return load_file(str(Path(config["output_dir"]) / "package" / "model.safetensors"))


def _assert_identical(a: dict[str, Any], b: dict[str, Any]) -> None:
    first, second = _weights(a), _weights(b)
    assert first.keys() == second.keys()
    different = [name for name in first if not torch.equal(first[name], second[name])]
    assert not different, f"tensors differ after resume: {different}"


def _result(config: dict[str, Any]) -> dict[str, Any]:
    return json.loads((Path(config["output_dir"]) / "result.json").read_text())


@pytest.fixture
def reference(config_factory: Factory, run_inprocess: Runner) -> dict[str, Any]:
    """An uninterrupted run of SETTINGS (16 steps per epoch, 48 in all)."""
    config = config_factory("reference", **SETTINGS)
    assert run_inprocess(config) == EXIT_OK
    return config


def test_save_is_atomic_with_a_sidecar_and_keeps_the_newest(tmp_path: Path) -> None:
    for step in (3, 6, 9, 12):
        checkpoint.save(tmp_path, step, {"step": step, "w": torch.arange(4)}, keep=2)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "ckpt-000000009.pt",
        "ckpt-000000009.pt.sha256",
        "ckpt-000000012.pt",
        "ckpt-000000012.pt.sha256",
    ]
    digest, name = (tmp_path / "ckpt-000000012.pt.sha256").read_text().split()
    assert name == "ckpt-000000012.pt" and digest == fsio.sha256_file(tmp_path / name)
    found = checkpoint.latest(tmp_path, lambda payload: None)
    assert found.path == tmp_path / "ckpt-000000012.pt" and found.payload["step"] == 12


def test_latest_skips_corrupt_unsigned_and_foreign_checkpoints(tmp_path: Path) -> None:
    for step in (1, 2, 3, 4):
        checkpoint.save(tmp_path, step, {"step": step, "run": "b" if step == 3 else "a"}, keep=5)
    newest = tmp_path / "ckpt-000000004.pt"
    newest.write_bytes(newest.read_bytes()[:-10] + b"0123456789")  # flipped bytes
    (tmp_path / "ckpt-000000002.pt.sha256").unlink()
    found = checkpoint.latest(tmp_path, lambda p: None if p["run"] == "a" else "another run")
    assert found.path == tmp_path / "ckpt-000000001.pt"
    reasons = {s.path.name: s.reason for s in found.skipped}
    assert "does not match" in reasons["ckpt-000000004.pt"]
    assert reasons["ckpt-000000003.pt"] == "another run"
    assert "sidecar is missing" in reasons["ckpt-000000002.pt"]
    assert checkpoint.latest(tmp_path / "none", lambda p: None).path is None


def test_write_atomic_leaves_no_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "result.json"
    fsio.write_atomic(target, b"{}")
    fsio.write_atomic(target, b'{"a": 1}')
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]
    assert target.read_bytes() == b'{"a": 1}'


def test_sigterm_mid_epoch_then_resume_gives_identical_weights(
    reference: dict[str, Any],
    config_factory: Factory,
    run_inprocess: Runner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = config_factory("interrupted", **SETTINGS)
    monkeypatch.setenv(FAULT_ENV, "sigterm@21")  # the 5th step of the 2nd epoch
    assert run_inprocess(config) == EXIT_PREEMPTED
    preempted = _result(config)
    assert preempted["status"] == "preempted" and preempted["steps"] == 21
    assert not (Path(config["output_dir"]) / "package").exists()
    payload = torch.load(Path(config["checkpoint"]["dir"]) / "ckpt-000000021.pt", weights_only=True)
    assert {"model", "optimizer", "scheduler", "rng", "state"} <= set(payload)
    assert (payload["state"]["epoch"], payload["state"]["step_in_epoch"]) == (1, 5)
    assert payload["state"]["best"] is not None and payload["state"]["best_state"] is not None
    monkeypatch.delenv(FAULT_ENV)
    assert run_inprocess(config) == EXIT_OK
    resumed = _result(config)
    assert resumed["resumed_from"].endswith("ckpt-000000021.pt")
    assert resumed["metrics"] == _result(reference)["metrics"]
    _assert_identical(reference, config)


def test_a_corrupt_newest_checkpoint_is_skipped_on_resume(
    reference: dict[str, Any],
    config_factory: Factory,
    run_inprocess: Runner,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = config_factory("corrupt", **SETTINGS, checkpoint={"every_steps": 5, "keep": 3})
    monkeypatch.setenv(FAULT_ENV, "sigterm@12")
    assert run_inprocess(config) == EXIT_PREEMPTED
    directory = Path(config["checkpoint"]["dir"])
    assert sorted(p.name for p in directory.glob("*.pt")) == [
        "ckpt-000000005.pt",
        "ckpt-000000010.pt",
        "ckpt-000000012.pt",
    ]
    newest = directory / "ckpt-000000012.pt"
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    monkeypatch.delenv(FAULT_ENV)
    capsys.readouterr()
    assert run_inprocess(config) == EXIT_OK
    lines = events(capsys.readouterr().err)
    skipped = [e for e in lines if e["event"] == "checkpoint-skipped"]
    assert [Path(e["path"]).name for e in skipped] == ["ckpt-000000012.pt"]
    assert _result(config)["resumed_from"].endswith("ckpt-000000010.pt")
    _assert_identical(reference, config)


def test_a_checkpoint_of_another_config_is_not_resumed(
    config_factory: Factory,
    run_inprocess: Runner,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = config_factory("changed", hyperparameters={"epochs": 2})
    monkeypatch.setenv(FAULT_ENV, "sigterm@3")
    assert run_inprocess(config) == EXIT_PREEMPTED
    monkeypatch.delenv(FAULT_ENV)
    config["hyperparameters"]["learning_rate"] = 0.05
    capsys.readouterr()
    assert run_inprocess(config) == EXIT_OK
    skipped = [e for e in events(capsys.readouterr().err) if e["event"] == "checkpoint-skipped"]
    assert skipped and "another model, data, hyperparameters" in skipped[0]["reason"]
    assert _result(config)["resumed_from"] is None


def test_time_schedule_checkpoints_and_keeps_only_the_newest(
    config_factory: Factory, run_inprocess: Runner
) -> None:
    config = config_factory(
        "timed", hyperparameters={"epochs": 1}, checkpoint={"every_seconds": 1e-6, "keep": 2}
    )
    assert run_inprocess(config) == EXIT_OK
    names = sorted(p.name for p in Path(config["checkpoint"]["dir"]).iterdir())
    assert names == [
        "ckpt-000000015.pt",
        "ckpt-000000015.pt.sha256",
        "ckpt-000000016.pt",
        "ckpt-000000016.pt.sha256",
    ]


@pytest.mark.slow
def test_sigkill_after_a_checkpoint_then_resume_gives_identical_weights(
    reference: dict[str, Any], config_factory: Factory, tmp_path: Path
) -> None:
    config = config_factory("killed", **SETTINGS, checkpoint={"every_steps": 5})
    path = write_config(tmp_path / "killed.json", config)
    killed = run_trainer(path, env=trainer_env(**{FAULT_ENV: "sigkill@27"}))
    assert killed.returncode == -signal.SIGKILL
    assert not (Path(config["output_dir"]) / "result.json").exists()  # no chance to write it
    resumed = run_trainer(path)
    assert resumed.returncode == EXIT_OK, resumed.stderr
    assert _result(config)["resumed_from"].endswith("ckpt-000000025.pt")
    _assert_identical(reference, config)


@pytest.mark.slow
def test_an_external_sigterm_checkpoints_and_exits_preempted(
    config_factory: Factory, tmp_path: Path
) -> None:
    config = config_factory("external", rows=4000, hyperparameters={"epochs": 200})
    path = write_config(tmp_path / "external.json", config)
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainer", "run", "--config", str(path)],
        cwd=ROOT,
        env=trainer_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 120
    for line in proc.stderr:  # wait until it trains (an epoch checkpoint is written)
        if '"event": "checkpoint"' in line or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGTERM)
    rest = proc.communicate(timeout=60)[1]
    assert proc.returncode == EXIT_PREEMPTED, rest
    result = _result(config)
    assert result["status"] == "preempted" and 0 < result["steps"] < 200 * 32
    step = result["steps"]
    assert (Path(config["checkpoint"]["dir"]) / f"ckpt-{step:09d}.pt").exists()
    assert "Traceback" not in rest
