"""Retraining on drift: under ``retrain: {on: drift}`` new data is always snapshotted and
materialised, but the model retrains only when the new data drifted from the snapshot it
was trained on (PSI over maxPsi, named in the plan); each triggered retrain records
whether it beat the model it replaced, and the reconciler exports the share."""

from __future__ import annotations

import csv
import json
import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from reconciler.apply import metrics
from reconciler.state.model import ResourceState, State
from tests.training import quickstart as qs


def append_rows(root: Path, count: int, seed: int, age_shift: float = 0.0) -> None:
    """Rows drawn from the quickstart's own, under new person ids; ages shifted if asked."""
    path = root / "data" / "randhie.csv"
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    head, body = rows[0], rows[1:]
    person, age = head.index("zper"), head.index("xage")
    picked = random.Random(seed).sample(body, count)
    extra = []
    for row in picked:
        row = list(row)
        row[person] = str(int(row[person]) + 10_000_000 * (seed + 1))
        row[age] = str(min(float(row[age]) + age_shift, 119.0))
        extra.append(row)
    with path.open("a", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(extra)


def drift_tree(tmp_path: Path, policy: str) -> Path:
    """The quickstart under ``retrain: POLICY``, applied once."""
    root = qs.copy(tmp_path)
    training = root / "training.yaml"
    training.write_text(
        training.read_text().replace(
            "  quota: growth-cpu", f"  quota: growth-cpu\n  retrain: {policy}"
        )
    )
    data = root / "data.yaml"  # the Dataset's own check against the previous snapshot
    data.write_text(data.read_text().replace("drift: {maxPsi: 0.2", "drift: {maxPsi: 5"))
    qs.apply(root)
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return drift_tree(tmp_path, "{on: drift, maxPsi: 0.2}")


def age_model(root: Path, days: float) -> None:
    """Make the current model ``days`` old, as time would: its run record says when the
    run that trained it finished."""
    (record,) = (root / ".pipeform" / "data" / "runs" / "expense-model").glob("*/run.json")
    data = json.loads(record.read_text())
    finished = datetime.now(UTC) - timedelta(days=days)
    data["attempts"][-1]["finishedAt"] = finished.isoformat().replace("+00:00", "Z")
    record.write_text(json.dumps(data, indent=2))


def test_rows_from_the_same_distribution_refresh_the_data_but_keep_the_model(
    tree: Path,
) -> None:
    before = qs.runs(tree)
    append_rows(tree, 2000, seed=1)
    plan = qs.plan_json(tree)
    assert qs.change(plan, "Dataset/rand-hie")["change"]["actions"] == ["update"]
    assert qs.change(plan, "FeatureSet/hie-features")["change"]["actions"] == ["update"]
    assert qs.change(plan, qs.JOB)["change"]["actions"] == ["no-op"]
    applied = qs.apply(tree)
    assert "Dataset/rand-hie: done" in applied.stdout
    assert "FeatureSet/hie-features: done" in applied.stdout
    assert "TrainingJob/expense-model" not in applied.stdout
    assert qs.runs(tree) == before  # nothing trained
    assert "No changes." in qs.pipeform(tree, "plan").stdout
    # each column's PSI against the snapshot before is an output (and so a metric)
    shown = qs.pipeform(tree, "state", "show", "Dataset/rand-hie")
    drift = json.loads(shown.stdout)["outputs"]["drift"]
    assert "xage" in drift and "zper" in drift
    assert all(0 <= psi < 0.2 for name, psi in drift.items() if name != "zper"), drift


def test_shifted_rows_plan_a_retrain_naming_the_psi_and_record_its_outcome(tree: Path) -> None:
    append_rows(tree, 8000, seed=2, age_shift=45.0)
    shown = qs.pipeform(tree, "plan")
    assert shown.returncode == 0, shown.stderr
    line = next(x for x in shown.stdout.splitlines() if qs.JOB in x)
    assert "will be retrained" in line
    found = re.search(r"retrain: drift: PSI (\d+\.\d+) on xage against the training snapshot", line)
    assert found and float(found[1]) > 0.2, line
    assert "(maxPsi 0.2)" in line
    reason = qs.change(qs.plan_json(tree), qs.JOB)["reason_detail"]
    assert "PSI" in reason and "xage" in reason

    runs_before = len(qs.runs(tree))
    qs.apply(tree)
    assert len(qs.runs(tree)) == runs_before + 1
    state = qs.pipeform(tree, "state", "show", qs.JOB)
    assert '"retrainTriggers"' in state.stdout
    # the stand-in trainer's auc does not move: the retrain did not beat the old model
    assert '"useful": false' in state.stdout
    assert "No changes." in qs.pipeform(tree, "plan").stdout


def test_the_share_of_useful_triggered_retrains_is_exported() -> None:
    job = ResourceState(
        "TrainingJob/churn",
        "TrainingJob",
        "local",
        {},
        "h",
        outputs={"retrainTriggers": {"total": 4, "useful": 3}},
    )
    text = generate_latest(metrics.collect(State("l", 3, {job.address: job}))).decode()
    assert 'pipeform_retrain_trigger_accuracy_ratio{pipeform_job="churn"} 0.75' in text
    assert 'pipeform_retrain_triggers{pipeform_job="churn",useful="false"} 1.0' in text


def test_a_model_older_than_max_age_retrains_on_new_data_and_a_younger_one_does_not(
    tmp_path: Path,
) -> None:
    tree = drift_tree(tmp_path, "{on: drift, maxPsi: 0.2, maxAge: 7d}")
    append_rows(tree, 2000, seed=1)  # the same distribution: no drift to retrain for
    age_model(tree, days=6.5)
    plan = qs.plan_json(tree)
    assert qs.change(plan, "FeatureSet/hie-features")["change"]["actions"] == ["update"]
    assert qs.change(plan, qs.JOB)["change"]["actions"] == ["no-op"]

    age_model(tree, days=8.2)
    shown = qs.pipeform(tree, "plan")
    assert shown.returncode == 0, shown.stderr
    line = next(x for x in shown.stdout.splitlines() if qs.JOB in x)
    assert "will be retrained" in line
    assert "retrain: model is 8d4h" in line and "old (maxAge 7d)" in line, line
    job = qs.change(qs.plan_json(tree), qs.JOB)
    assert job["change"]["actions"] == ["update"]
    assert "model is 8d4h" in job["reason_detail"] and "(maxAge 7d)" in job["reason_detail"]
    runs_before = len(qs.runs(tree))
    qs.apply(tree)
    assert len(qs.runs(tree)) == runs_before + 1
