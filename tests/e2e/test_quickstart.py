"""The README's main job, end to end: plan and apply the quickstart on the embedded default.

One apply (module scope) snapshots and validates the RAND HIE table, materialises the
features, trains the MLP with the real trainer, registers it and writes the Alert/SLO rule
files. The tests then read what a user would read (state, plan output, the registry) and
edit copies of the applied tree to check what a change plans.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CopyExample, run_cli

pytestmark = pytest.mark.slow

ENV = {**os.environ, "QUICKSTART_METRICS_TOKEN": "qs-token-5f1c9e", "NO_COLOR": "1"}
TOKEN = ENV["QUICKSTART_METRICS_TOKEN"]


def pipeform(*args: str, cwd: Path, timeout: float = 600) -> Any:
    return run_cli(*args, cwd=cwd, env=ENV, timeout=timeout)


def state_show(root: Path, address: str) -> dict[str, Any]:
    shown = pipeform("state", "show", address, cwd=root)
    assert shown.returncode == 0, shown.stderr
    result: dict[str, Any] = json.loads(shown.stdout)
    return result


def plan_json(root: Path) -> dict[str, Any]:
    planned = pipeform("plan", "--json", cwd=root)
    assert planned.returncode in (0, 2), planned.stderr
    result: dict[str, Any] = json.loads(planned.stdout)
    return result


def actions(plan: dict[str, Any]) -> dict[str, tuple[list[str], str]]:
    """Changed resources: address -> (actions, reason detail or reason)."""
    return {
        c["address"]: (c["change"]["actions"], c.get("reason_detail") or c["action_reason"])
        for c in plan["resource_changes"]
        if c["change"]["actions"] != ["no-op"]
    }


@pytest.fixture(scope="module")
def applied(copy_example: CopyExample) -> Path:
    root = copy_example()
    planned = pipeform("plan", cwd=root)
    assert planned.returncode == 0, planned.stdout + planned.stderr
    done = pipeform("apply", "--auto-approve", cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr
    return root


def copy_of(root: Path, tmp_path: Path) -> Path:
    """An applied tree to edit. Recorded outputs keep pointing at the original's files,
    which these tests never change."""
    target = tmp_path / "tree"
    shutil.copytree(root, target)
    return target


def test_apply_trains_registers_and_passes_the_gate(applied: Path) -> None:
    job = state_show(applied, "TrainingJob/expense-model")
    outputs = job["outputs"]
    assert outputs["status"] == "succeeded"
    auc = outputs["metrics"]["auc"]
    print(f"quickstart validation AUC: {auc:.4f}")
    assert auc >= 0.70
    assert outputs["modelVersion"] == 1
    registry = applied / ".pipeform" / "data" / "registry" / "registry.db"
    with closing(sqlite3.connect(registry)) as db:  # closed: no -wal/-shm files left behind
        aliases = db.execute("SELECT model, alias, version FROM aliases").fetchall()
    assert aliases == [("expense-model", "champion", 1)]
    package = Path(outputs["package"])
    metadata = json.loads((package / "metadata.json").read_text())
    dataset = state_show(applied, "Dataset/rand-hie")["outputs"]
    assert dataset["snapshot"] in json.dumps(metadata)
    assert dataset["rows"] == 20190


def test_rules_files_hold_the_alert_and_the_slo(applied: Path) -> None:
    rules = list((applied / ".pipeform" / "rules").glob("*.yml"))
    assert rules, "no rule file was written"
    text = "\n".join(r.read_text() for r in rules)
    assert 'pipeform_job="expense-model"' in text
    assert "Alert/expense-model-failed" in text and "SLO/expense-model-success" in text


def test_a_second_apply_is_a_no_op_and_rewrites_no_file(applied: Path) -> None:
    data = applied / ".pipeform"

    def artifacts() -> dict[Path, int]:
        """Every file apply makes (state and the parsed-spec cache aside), with its mtime."""
        return {
            p: p.stat().st_mtime_ns
            for p in data.rglob("*")
            if p.is_file() and "state.db" not in p.name and "cache" not in p.relative_to(data).parts
        }

    before = artifacts()
    again = pipeform("plan", "--detailed-exitcode", cwd=applied)
    assert again.returncode == 0, again.stdout + again.stderr
    done = pipeform("apply", "--auto-approve", cwd=applied)
    assert done.returncode == 0, done.stderr
    after = artifacts()
    changed = sorted(
        str(p.relative_to(data)) for p in set(before) | set(after) if before.get(p) != after.get(p)
    )
    assert not changed, changed


def test_one_hyperparameter_retrains_that_job_only(applied: Path, tmp_path: Path) -> None:
    root = copy_of(applied, tmp_path)
    spec = root / "training.yaml"
    spec.write_text(spec.read_text().replace("learningRate: 0.001", "learningRate: 0.002"))
    changed = actions(plan_json(root))
    assert set(changed) == {"TrainingJob/expense-model"}, changed
    assert changed["TrainingJob/expense-model"][0] == ["update"]


def test_editing_the_csv_cascades_to_features_and_training(applied: Path, tmp_path: Path) -> None:
    root = copy_of(applied, tmp_path)
    csv = root / "data" / "randhie.csv"
    lines = csv.read_text().splitlines(keepends=True)
    lines.pop()  # drop the last person-year: a real change to the data
    csv.write_text("".join(lines))
    plan = plan_json(root)
    changed = actions(plan)
    assert set(changed) == {
        "Dataset/rand-hie",
        "FeatureSet/hie-features",
        "TrainingJob/expense-model",
    }
    assert "source changed" in changed["Dataset/rand-hie"][1]
    assert "Dataset/rand-hie" in changed["FeatureSet/hie-features"][1]
    assert "FeatureSet/hie-features" in changed["TrainingJob/expense-model"][1]
    by_address = {c["address"]: c for c in plan["resource_changes"]}
    assert by_address["TrainingJob/expense-model"]["change"]["after_unknown"]


def test_the_secret_value_is_nowhere_on_disk_or_in_output(applied: Path) -> None:
    shown = pipeform("plan", "--json", cwd=applied)
    assert TOKEN not in shown.stdout + shown.stderr
    for path in (applied / ".pipeform").rglob("*"):
        if path.is_file() and "secrets" not in path.parts:
            assert TOKEN.encode() not in path.read_bytes(), path
