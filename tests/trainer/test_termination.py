"""Trainer contract v4: the termination message, and the preemption exit by config version."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.trainer.conftest import run_trainer, write_config
from trainer.config import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_PREEMPTED,
    EXIT_PREEMPTED_BEFORE_V4,
    TERMINATION_MESSAGE_LIMIT,
    RunConfig,
    RunResult,
)
from trainer.loop import FAULT_ENV
from trainer.termination import message_of, parse_message

Factory = Callable[..., dict[str, Any]]
Runner = Callable[[dict[str, Any]], int]


def test_a_small_result_is_kept_whole() -> None:
    result = RunResult(
        run_id="r1",
        status="succeeded",
        metrics={"auc": 0.91, "loss": 0.3},
        model_version="7",
        model_uri="models:/churn/7",
        package_sha256="ab" * 32,
        promoted=True,
        promotion="moved alias prod to 7",
        epochs=3,
    )
    message = parse_message(message_of(result).decode())
    assert message == {
        "status": "succeeded",
        "run_id": "r1",
        "metrics": {"auc": 0.91, "loss": 0.3},
        "model_version": "7",
        "model_uri": "models:/churn/7",
        "package_sha256": "ab" * 32,
        "promoted": True,
        "promotion": "moved alias prod to 7",
    }


def test_many_metrics_and_a_long_error_are_trimmed_under_4_kib() -> None:
    metrics = {f"slice.region_{i:04d}.auc_macro_weighted": i / 1000 for i in range(2000)}
    result = RunResult(
        run_id="r" * 32,
        status="failed",
        metrics=metrics,
        model_uri="s3://bucket/" + "k" * 3000,
        promotion="p" * 5000,
        error="e" * 10_000,
    )
    encoded = message_of(result)
    assert len(encoded) < TERMINATION_MESSAGE_LIMIT
    message = parse_message(encoded.decode())
    assert message is not None and message["trimmed"] is True
    assert message["status"] == "failed" and message["run_id"] == "r" * 32
    kept = message.get("metrics", {})
    assert kept and set(kept) < set(metrics)  # some kept, in name order
    assert sorted(kept) == sorted(metrics)[: len(kept)]


def test_non_ascii_text_is_measured_in_bytes() -> None:
    result = RunResult(run_id="r1", status="failed", error="é" * 5000, promotion="ü" * 5000)
    assert len(message_of(result)) < TERMINATION_MESSAGE_LIMIT


def test_a_log_tail_is_not_a_message() -> None:
    assert parse_message("Traceback (most recent call last):\n  boom") is None
    assert parse_message('{"status": "succeeded"}') is None  # no run id
    assert parse_message("") is None


def test_termination_message_path_needs_version_4(config_factory: Factory) -> None:
    config = config_factory("v3", version=3, termination_message_path="/dev/termination-log")
    with pytest.raises(ValueError, match="needs config version 4"):
        RunConfig.model_validate(config)


def test_a_run_writes_its_message_and_preemption_exits_143(
    config_factory: Factory,
    run_inprocess: Runner,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    log = tmp_path / "termination-log"
    config = config_factory("v4", termination_message_path=str(log))
    monkeypatch.setenv(FAULT_ENV, "sigterm@5")
    assert run_inprocess(config) == EXIT_PREEMPTED == 143
    message = json.loads(log.read_bytes())
    assert message["status"] == "preempted" and message["run_id"] == config["run_id"]
    monkeypatch.delenv(FAULT_ENV)
    assert run_inprocess(config) == EXIT_OK
    message = json.loads(log.read_bytes())
    assert message["status"] == "succeeded" and set(message["metrics"]) >= {"auc", "loss"}
    assert message["package_sha256"]


def test_an_older_config_still_exits_5_when_preempted(
    config_factory: Factory, run_inprocess: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_factory("v3", version=3)
    monkeypatch.setenv(FAULT_ENV, "sigterm@5")
    assert run_inprocess(config) == EXIT_PREEMPTED_BEFORE_V4 == 5


def test_a_config_that_does_not_validate_still_leaves_a_message(tmp_path: Path) -> None:
    log = tmp_path / "termination-log"
    broken = {
        "run_id": "r9",
        "output_dir": str(tmp_path / "out"),
        "termination_message_path": str(log),
        "model": {"type": "nope"},
    }
    proc = run_trainer(write_config(tmp_path / "bad.json", broken))
    assert proc.returncode == EXIT_FAILED
    message = json.loads(log.read_bytes())
    assert message["status"] == "failed" and message["run_id"] == "r9"
    assert "bad.json" in message["error"] and "Field required" in message["error"]
