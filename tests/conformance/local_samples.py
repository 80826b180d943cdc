"""Samples of the local provider's data-bearing kinds and Budget, for the conformance suite.

A Dataset snapshots a small CSV written into the tree; a FeatureSet is materialised from
a real snapshot of it, and a TrainingJob trains on a real FeatureSet of that snapshot,
both made through the local provider's own handlers (under another lineage: they are
upstream, not the object under test). The TrainingJob trains with
tests/training/fake_trainer.py, which keeps the trainer's contract (checksums, result,
registration) without torch, so that the suite stays well under a minute.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from providers.base import JSON, ApplyRequest, Provider, ResourceContext
from tests.conformance.sample import KindSample, document

UPSTREAM_LINEAGE = "33333333-3333-4333-8333-333333333333"
FAKE_TRAINER = Path(__file__).parent.parent / "training" / "fake_trainer.py"
LOCAL_CONFIG: JSON = {
    "dataDir": ".pipeform/data",
    "workspace": {
        "name": "conformance",
        "registry": {"type": "local"},
        "defaults": {"resources": {"cpu": "1", "memory": "1Gi"}},
    },
}
CSV = "id,age,score,churned\n" + "".join(
    f"{i},{20 + i % 50},{(i * 7) % 13 / 10},{(i * 3) % 2}\n" for i in range(1, 61)
)
COLUMNS = [
    {"name": "id", "type": "int", "nullable": False},
    {"name": "age", "type": "int", "min": 0, "max": 120},
    {"name": "score", "type": "float"},
    {"name": "churned", "type": "int", "allowed": [0, 1]},
]


def _dataset(min_rows: int) -> dict[str, Any]:
    return document(
        "Dataset",
        "people",
        {
            "source": {"uri": "file://data/people.csv", "format": "csv"},
            "schema": COLUMNS,
            "validation": {"minRows": min_rows},
        },
    )


def _featureset(features: list[str]) -> dict[str, Any]:
    return document(
        "FeatureSet",
        "people-features",
        {
            "dataset": "people",
            "entity": ["id"],
            "label": {"column": "churned"},
            "split": {"type": "random", "validationFraction": 0.25, "seed": 1},
            "features": [{"name": f, "transforms": ["standardize"]} for f in features],
        },
    )


def _job(epochs: int) -> dict[str, Any]:
    return document(
        "TrainingJob",
        "churn-model",
        {
            "features": "people-features",
            "model": {"type": "mlp", "task": "binary-classification", "hidden": [4]},
            "hyperparameters": {"epochs": epochs, "batchSize": 16, "seed": 1},
            "resources": {"cpu": 1, "memory": "1Gi"},
            "register": {"model": "churn", "alias": "champion"},
            "retries": 0,
        },
    )


def _write_csv(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    (root / "data").mkdir(exist_ok=True)
    (root / "data" / "people.csv").write_text(CSV, encoding="utf-8")


def _upstream_of(root: Path, address: str, spec: JSON, upstream: JSON) -> JSON:
    """Make an upstream object through the local provider; its outputs by address."""
    from providers.local import LocalProvider

    ctx = ResourceContext.of(address, UPSTREAM_LINEAGE, root)
    provider: Provider = LocalProvider(LOCAL_CONFIG, root)
    made = provider.create(ApplyRequest(ctx, spec, None, {}, None, upstream))
    return {address: made.outputs}


def _snapshot(root: Path) -> JSON:
    _write_csv(pytest.MonkeyPatch(), root)
    return _upstream_of(root, "Dataset/people", _dataset(10), {})


def _features(root: Path) -> JSON:
    return _upstream_of(root, "FeatureSet/people-features", _featureset(["age"]), _snapshot(root))


def _fake_trainer(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    monkeypatch.setenv("PIPEFORM_TRAINER_COMMAND", f"{sys.executable} {FAKE_TRAINER}")


DATASET = KindSample("Dataset", "people", _dataset(10), _dataset(20), _write_csv)
FEATURESET = KindSample(
    "FeatureSet",
    "people-features",
    _featureset(["age"]),
    _featureset(["age", "score"]),
    upstream=_snapshot,
    importable=False,
)
TRAINING_JOB = KindSample(
    "TrainingJob",
    "churn-model",
    _job(1),
    _job(2),
    _fake_trainer,
    upstream=_features,
    importable=False,
    # each state trains runs of its own (new run ids); another state's run is never touched
    exclusive=False,
)
BUDGET = KindSample(
    "Budget",
    "team-monthly",
    document("Budget", "team-monthly", {"amount": 100, "thresholds": [50, 80]}),
    document("Budget", "team-monthly", {"amount": "250.50", "thresholds": [50, 80, 100]}),
)
LOCAL_SAMPLES = (DATASET, FEATURESET, TRAINING_JOB, BUDGET)
