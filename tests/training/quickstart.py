"""The quickstart tree, copied into a temporary directory and applied with the stand-in
trainer (tests/training/fake_trainer.py), for CLI tests of what happens around training."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import SPECS, run_cli
from tests.training.conftest import FAKE_TRAINER

ENV = {
    **os.environ,
    "QUICKSTART_METRICS_TOKEN": "qs-token",
    "NO_COLOR": "1",
    "PIPEFORM_TRAINER_COMMAND": f"{sys.executable} {FAKE_TRAINER}",
}
GATE = "{metric: auc, min: 0.70}"  # the quickstart's gate; the stand-in's auc is 0.8
JOB = "TrainingJob/expense-model"


def copy(tmp: Path) -> Path:
    root = tmp / "tree"
    shutil.copytree(
        SPECS / "examples" / "quickstart", root, ignore=shutil.ignore_patterns(".pipeform")
    )
    return root


def pipeform(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=root, env=ENV, timeout=120)


def apply(root: Path, expect: int = 0) -> subprocess.CompletedProcess[str]:
    result = pipeform(root, "apply", "--auto-approve")
    assert result.returncode == expect, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    return result


def set_gate(root: Path, gate: str) -> None:
    path = root / "training.yaml"
    text = path.read_text()
    current = next(line for line in text.splitlines() if "- {metric: auc" in line)
    path.write_text(text.replace(current, f"    - {gate}"))


def runs(root: Path) -> dict[str, str]:
    """The job's run directories: run id -> status, as run.json records it."""
    found = {}
    for record in (root / ".pipeform" / "data" / "runs" / "expense-model").glob("*/run.json"):
        data = json.loads(record.read_text())
        found[data["runId"]] = data["status"]
    return found


def plan_json(root: Path) -> dict[str, Any]:
    planned = pipeform(root, "plan", "--json")
    assert planned.returncode == 0, planned.stderr
    result: dict[str, Any] = json.loads(planned.stdout)
    return result


def change(plan: dict[str, Any], address: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in plan["resource_changes"] if c["address"] == address)
    return found
