"""Fixtures for the local TrainingJob tests: a spec tree, a materialised FeatureSet, a handler.

The FeatureSet is written here as its handler would (parquet tables with recorded sha256,
a transform file, the outputs of contracts.md), small enough to train in a second.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from providers.base import (
    ApplyRequest,
    ApplyResponse,
    DeleteRequest,
    PlanRequest,
    PlanResponse,
    ReadRequest,
    ReadResponse,
    ResourceContext,
)
from providers.local.settings import LocalSettings
from providers.local.training import TrainingJobHandler
from reconciler.kinds import KINDS
from reconciler.plan.planner import desired_document

LINEAGE = "11111111-1111-4111-8111-111111111111"
FAKE_TRAINER = Path(__file__).with_name("fake_trainer.py")


def document(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A desired document exactly as the planner hands it to providers (validated)."""
    model = KINDS[kind].model_validate(
        {"apiVersion": "pipeform/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}
    )
    return desired_document(model, {})


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_featureset(
    data_dir: Path, name: str = "churn-features", rows: int = 600
) -> dict[str, Any]:
    """Feature tables with a learnable label, and the FeatureSet outputs that describe them."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(7)
    x = rng.normal(size=(rows, 4)).astype("float32")
    label = (x[:, 0] + 0.5 * x[:, 1] + 0.3 * rng.normal(size=rows) > 0).astype("int64")
    fs_id = "fs-" + hashlib.sha256(f"{name}{rows}".encode()).hexdigest()[:24]
    directory = data_dir / "features" / name / fs_id
    directory.mkdir(parents=True)
    cut = rows * 4 // 5
    tables = {}
    for split, part in (("train", slice(0, cut)), ("validation", slice(cut, rows))):
        columns = {"customer_id": np.arange(rows)[part].astype("int64")}
        columns |= {f"f{i}": x[part, i] for i in range(4)}
        columns["churned"] = label[part]
        path = directory / f"{split}.parquet"
        pq.write_table(pa.table(columns), path)
        tables[split] = {"path": str(path), "sha256": sha256(path), "rows": len(label[part])}
    transform = directory / "transform.json"
    transform.write_text(json.dumps({"features": [f"f{i}" for i in range(4)]}))
    return {
        "id": fs_id,
        "dir": str(directory),
        **tables,
        "features": [f"f{i}" for i in range(4)],
        "featureTypes": {f"f{i}": "float32" for i in range(4)},
        "label": "churned",
        "entity": ["customer_id"],
        "transform": {"path": str(transform), "digest": "sha256:" + sha256(transform)},
        "stats": str(directory / "stats.json"),
        "datasetSnapshot": "ds-" + "0" * 24,
    }


def job_spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "features": "churn-features",
        "model": {"type": "mlp", "task": "binary-classification", "hidden": [8]},
        "hyperparameters": {"epochs": 2, "batchSize": 64, "learningRate": 0.01, "seed": 1},
        "resources": {"cpu": 1, "memory": "1Gi"},
        "register": {"model": "churn", "alias": "champion"},
        "retries": 1,
    }
    spec.update(overrides)
    return spec


@dataclass
class Bench:
    """One spec tree, one TrainingJob handler, the FeatureSet and other upstream outputs."""

    root: Path
    handler: TrainingJobHandler
    featureset: dict[str, Any]
    name: str = "churn-model"
    upstream: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def settings(self) -> LocalSettings:
        return self.handler.settings

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    @property
    def ctx(self) -> ResourceContext:
        return ResourceContext.of(f"TrainingJob/{self.name}", LINEAGE, self.root)

    def doc(self, **overrides: Any) -> dict[str, Any]:
        return document("TrainingJob", self.name, job_spec(**overrides))

    def inputs(self) -> dict[str, dict[str, Any]]:
        return {"FeatureSet/churn-features": self.featureset, **self.upstream}

    def plan(
        self,
        doc: dict[str, Any],
        prior: ApplyResponse | None = None,
        prior_doc: dict[str, Any] | None = None,
        upstream: dict[str, dict[str, Any]] | None = None,
    ) -> PlanResponse:
        return self.handler.plan(
            PlanRequest(
                self.ctx,
                prior_doc if prior is not None else None,
                doc,
                prior.outputs if prior else {},
                upstream if upstream is not None else self.inputs(),
            )
        )

    def apply(
        self,
        doc: dict[str, Any],
        prior: ApplyResponse | None = None,
        prior_doc: dict[str, Any] | None = None,
    ) -> ApplyResponse:
        request = ApplyRequest(
            self.ctx,
            doc,
            prior_doc,
            prior.outputs if prior else {},
            prior.external_id if prior else None,
            self.inputs(),
        )
        call = self.handler.update if prior else self.handler.create
        return call(request)

    def read(self, prior: ApplyResponse) -> ReadResponse:
        return self.handler.read(ReadRequest(self.ctx, None, prior.outputs, prior.external_id))

    def delete(self, prior: ApplyResponse | None) -> None:
        self.handler.delete(
            DeleteRequest(
                self.ctx, None, prior.outputs if prior else {}, prior.external_id if prior else None
            )
        )

    def job_dir(self) -> Path:
        return self.data_dir / "runs" / self.name

    def run_dirs(self) -> list[Path]:
        return (
            sorted(p for p in self.job_dir().iterdir() if p.is_dir())
            if self.job_dir().is_dir()
            else []
        )

    def registry_versions(self, model: str = "churn") -> list[Any]:
        from trainer.config import RegistryTarget
        from trainer.registry import open_registry

        registry = open_registry(RegistryTarget(uri=str(self.data_dir / "registry"), model=model))
        try:
            return registry.versions(model)
        except Exception:  # no such model yet
            return []


@pytest.fixture
def bench(tmp_path: Path) -> Bench:
    root = tmp_path / "tree"
    root.mkdir()
    settings = LocalSettings.from_config(
        {
            "dataDir": ".pipeform/data",
            "maxConcurrentJobs": 2,
            "workspace": {
                "name": "test",
                "registry": {"type": "local"},
                "defaults": {"resources": {"cpu": "1", "memory": "2Gi"}},
            },
        },
        root,
    )
    return Bench(root, TrainingJobHandler(settings), write_featureset(settings.data_dir))


@pytest.fixture
def fake_trainer(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Run the contract-keeping stand-in instead of the real trainer."""
    monkeypatch.setenv("PIPEFORM_TRAINER_COMMAND", f"{sys.executable} {FAKE_TRAINER}")
    return lambda: None


@pytest.fixture
def trainer() -> dict[str, dict[str, Any]]:
    """The real trainer (python -m trainer): spec overrides for a fast run, one that runs
    far past any maxDuration, and one long enough to kill after its first checkpoint."""
    return {
        "fast": {},
        "slow": {"hyperparameters": {"epochs": 100_000, "batchSize": 16, "seed": 1}},
        "resumable": {"hyperparameters": {"epochs": 300, "batchSize": 64, "seed": 1}},
    }


@pytest.fixture
def fake(fake_trainer: object) -> dict[str, dict[str, Any]]:
    """The stand-in trainer, paced: for tests of the executor rather than of training."""
    slow_env = {"FAKE_EPOCH_SECONDS": {"value": "0.3"}}
    return {
        "fast": {},
        "slow": {"hyperparameters": {"epochs": 200, "seed": 1}, "env": slow_env},
        "resumable": {"hyperparameters": {"epochs": 8, "seed": 1}, "env": slow_env},
    }
