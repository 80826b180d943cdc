"""A TrainingJob whose model is a module in the spec tree trains when apply runs inside
the tree with the default PATH (the tree reaches the trainer as an absolute path: the
trainer runs in its run directory, not where pipeform was started)."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import CopyExample, run_cli

pytestmark = pytest.mark.slow

MODEL = """
import torch.nn as nn


def build(n_inputs, n_outputs, config):
    return nn.Sequential(nn.Linear(n_inputs, 8), nn.ReLU(), nn.Linear(8, n_outputs))
"""


def test_a_custom_model_in_the_tree_trains_from_inside_the_tree(
    copy_example: CopyExample,
) -> None:
    root = copy_example()
    (root / "mymodel.py").write_text(MODEL.lstrip())
    training = (root / "training.yaml").read_text()
    mlp = "    type: mlp\n    task: binary-classification\n    hidden: [64, 32]\n    dropout: 0.1\n"
    assert mlp in training
    training = training.replace(
        mlp, "    type: custom\n    task: binary-classification\n    entrypoint: mymodel:build\n"
    )
    training = training.replace("epochs: 20", "epochs: 2").replace("min: 0.70", "min: 0.5")
    # a 2-epoch model is not held to the quickstart's slice, fairness and calibration gates
    training = "\n".join(
        line
        for line in training.splitlines()
        if not any(g in line for g in ("slice: site", "disparate-impact", "metric: ece"))
    )
    (root / "training.yaml").write_text(training)
    env = {**os.environ, "QUICKSTART_METRICS_TOKEN": "x", "NO_COLOR": "1"}
    result = run_cli("apply", "--auto-approve", cwd=root, env=env, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "cannot import" not in output
    shown = run_cli("state", "show", "TrainingJob/expense-model", cwd=root, env=env)
    outputs = json.loads(shown.stdout)["outputs"]
    assert outputs["status"] == "succeeded" and outputs["modelVersion"] == 1, outputs
