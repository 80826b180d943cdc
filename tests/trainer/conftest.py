"""Small synthetic tables and RunConfigs for the trainer's tests (seconds on 2 CPUs)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_table(path: Path, x: np.ndarray, y: np.ndarray, label: str = "label") -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: dict[str, Any] = {"id": np.arange(len(y), dtype=np.int64)}
    columns.update({f"f{i}": x[:, i].astype(np.float32) for i in range(x.shape[1])})
    columns[label] = y
    pq.write_table(pa.table(columns), path)


def synthetic(task: str, rows: int, features: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Features N(0, 1); a label a small model can learn (with noise)."""
    rng = np.random.default_rng(seed)
    weights = np.random.default_rng(7).normal(size=(features, 3))
    x = rng.normal(size=(rows, features)).astype(np.float32)
    signal = x @ weights
    if task == "regression":
        return x, (signal[:, 0] + 0.5 * np.tanh(signal[:, 1]) + rng.normal(0, 0.3, rows)).astype(
            np.float64
        )
    if task == "multiclass-classification":
        return x, np.argmax(signal + rng.normal(0, 0.5, signal.shape), axis=1).astype(np.int64)
    logit = signal[:, 0] + 0.5 * signal[:, 1] ** 2 - 0.5
    return x, (logit + rng.logistic(0, 1, rows) > 0).astype(np.int64)


def make_config(
    base: Path,
    *,
    task: str = "binary-classification",
    rows: int = 2000,
    features: int = 8,
    model: dict[str, Any] | None = None,
    hyperparameters: dict[str, Any] | None = None,
    checkpoint: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Write train/validation parquet under base; a RunConfig dict that trains on them."""
    data = base / "data"
    data.mkdir(parents=True, exist_ok=True)
    tables = {}
    for split, count, seed in (("train", rows, 1), ("validation", rows // 2, 2)):
        path = data / f"{split}.parquet"
        if not path.exists():
            write_table(path, *synthetic(task, count, features, seed))
        tables[split] = {"path": str(path), "sha256": sha256(path), "rows": count}
    config: dict[str, Any] = {
        "run_id": "run-test-1",
        "inputs": {
            **tables,
            "features": [f"f{i}" for i in range(features)],
            "label": "label",
            "entity": ["id"],
            "featureset": "FeatureSet/synthetic@fs-0123",
            "dataset_snapshots": ["ds-0123"],
            "transform_digest": "sha256:abc",
        },
        "model": {"type": "mlp", "task": task, "hidden": [16, 8], **(model or {})},
        "hyperparameters": {"epochs": 3, "batch_size": 128, "learning_rate": 0.01, "seed": 3}
        | (hyperparameters or {}),
        "checkpoint": {"dir": str(base / "out" / "checkpoints"), **(checkpoint or {})},
        "output_dir": str(base / "out"),
        "device": "cpu",
        "lineage": {"address": "TrainingJob/test", "spec_hash": "sha256:spec", "git_commit": None},
    }
    config.update(extra)
    return config


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config))
    return path


def trainer_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPEFORM_")}
    env.update(
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p),
        OMP_NUM_THREADS="1",
    )
    env.update(extra)
    return env


def run_trainer(
    config_path: Path, *, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """python -m trainer run --config FILE in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "trainer", "run", "--config", str(config_path)],
        capture_output=True,
        text=True,
        env=env or trainer_env(),
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )


def result_of(config: dict[str, Any]) -> dict[str, Any]:
    return json.loads((Path(config["output_dir"]) / "result.json").read_text())


def events(stderr: str) -> list[dict[str, Any]]:
    found = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            found.append(json.loads(line))
    return found


@pytest.fixture
def config_factory(tmp_path: Path) -> Callable[..., dict[str, Any]]:
    def factory(name: str = "run", **kwargs: Any) -> dict[str, Any]:
        return make_config(tmp_path / name, **kwargs)

    return factory


@pytest.fixture
def run_inprocess() -> Callable[[dict[str, Any]], int]:
    """trainer.runner.run on a config dict, in this process (JSON logs to stderr)."""

    def run(config: dict[str, Any]) -> int:
        from trainer.config import RunConfig
        from trainer.runner import run as run_config

        torch_threads()
        return run_config(RunConfig.model_validate(config))

    return run


def torch_threads() -> None:
    import torch

    torch.set_num_threads(1)
