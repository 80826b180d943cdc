"""Spec trees for the cost and policy tests, on the fake provider (no real training)."""

from __future__ import annotations

import textwrap
from pathlib import Path

WORKSPACE = """
apiVersion: pipeform/v1
kind: Workspace
metadata: {name: policy-tests}
spec:
  defaults:
    provider: fake
    labels: {team: growth}
    resources: {cpu: 2, memory: 4Gi}
  pricing:
    currency: USD
    gpuHour: {h100: 4.00}
    defaultGpuHour: 2.50
    cpuHour: 0.04
    memoryGiBHour: 0.005
"""

DATA = """
apiVersion: pipeform/v1
kind: Dataset
metadata: {name: events}
spec: {source: {uri: 'file://events.csv'}}
---
apiVersion: pipeform/v1
kind: FeatureSet
metadata: {name: churn-features}
spec: {dataset: events, entity: id, label: {column: y}, features: [{name: x}]}
"""

#: 2 workers x (1 h100 at 4.00 + 8 CPU at 0.04 + 32 GiB at 0.005) = 8.96 per hour; 30m
JOB = """
apiVersion: pipeform/v1
kind: TrainingJob
metadata: {name: churn-model}
spec:
  features: churn-features
  model: {type: mlp, task: binary-classification}
  hyperparameters: {learningRate: 0.01}
  resources: {gpus: 1, gpuType: h100, cpu: 8, memory: 32Gi}
  distributed: {workers: 2}
  maxDuration: 30m
"""

BUDGET = """
apiVersion: pipeform/v1
kind: Budget
metadata: {name: growth-monthly}
spec:
  amount: %s
  enforce: %s
  scope: {labels: {team: growth}}
"""


def write(root: Path, **files: str) -> Path:
    """Write name -> YAML text (dedented) into root; returns root."""
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return root


def training_tree(root: Path, **extra: str) -> Path:
    """Workspace, a Dataset, a FeatureSet and the 4.48 USD TrainingJob, plus extra files."""
    return write(
        root, **{"pipeform.yaml": WORKSPACE, "data.yaml": DATA, "training.yaml": JOB, **extra}
    )
