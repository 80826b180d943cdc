"""A plan says what apply will really do when it adopts a run that already trained these
inputs: "will adopt run X (no training)", with no cost, not "will be retrained"."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.training.quickstart import (
    ENV,
    GATE,
    JOB,
    apply,
    change,
    copy,
    pipeform,
    plan_json,
    runs,
    set_gate,
)


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy(tmp_path_factory.mktemp("adoption"))
    apply(root)
    return root


@pytest.fixture(scope="module")
def gated(applied: Path) -> tuple[Path, str, str]:
    """The applied tree after an apply whose new gate failed (the state marks the job
    failed), the gate reverted: (root, that apply's output, the run trained first)."""
    (trained,) = runs(applied)
    set_gate(applied, "{metric: auc, min: 0.95}")
    failed = apply(applied, expect=1)
    set_gate(applied, GATE)
    return applied, failed.stdout, trained


def test_a_failed_run_is_reported_once_under_its_address(gated: tuple[Path, str, str]) -> None:
    _, output, _ = gated
    (line,) = [line for line in output.splitlines() if "failed its evaluation gates" in line]
    assert line.startswith(f"{JOB}: failed: the model failed its evaluation gates: auc 0.8")
    assert line.count(JOB) == 1
    assert "0 succeeded, 1 failed, 0 skipped" in output  # its unchanged Alert and SLO: not skipped


def test_reverting_a_failed_gate_plans_adopting_the_earlier_run(
    gated: tuple[Path, str, str],
) -> None:
    applied, _, trained = gated
    planned = pipeform(applied, "plan")
    assert planned.returncode == 0, planned.stderr
    line = next(line for line in planned.stdout.splitlines() if JOB in line)
    assert re.sub(r"\s+", " ", line).strip() == (
        f"~ {JOB} will adopt run {trained[:12]} (no training) (its last apply failed)"
    )
    assert "retrain" not in planned.stdout and "Cost:" not in planned.stdout
    as_json = change(plan_json(applied), JOB)
    assert as_json["adopts"] == f"run {trained[:12]} (no training)" and as_json["cost"] is None
    markdown = pipeform(applied, "plan", "--format", "markdown").stdout
    assert (
        f"| ~ adopt | its last apply failed: adopts run {trained[:12]} (no training) |" in markdown
    )
    applying = apply(applied)
    assert f"{JOB}: adopting run {trained[:12]} (no training)..." in applying.stdout
    assert len(runs(applied)) == 2  # the first run and the gated one: nothing trained
    assert change(plan_json(applied), JOB)["change"]["actions"] == ["no-op"]


def test_a_run_that_finished_before_a_crash_is_planned_as_adopted(applied: Path) -> None:
    earlier = set(runs(applied))
    training = applied / "training.yaml"
    training.write_text(training.read_text().replace("learningRate: 0.001", "learningRate: 0.002"))
    crash = {**ENV, "PIPEFORM_FAULT": f"after-provider-call:{JOB}"}
    crashed = run_cli("apply", "--auto-approve", cwd=applied, env=crash, timeout=120)
    assert crashed.returncode == -signal.SIGKILL, crashed.stdout + crashed.stderr
    (new,) = [i for i, status in runs(applied).items() if i not in earlier]
    assert runs(applied)[new] == "succeeded"  # trained and registered; the state never knew
    before = set(runs(applied))
    planned = change(plan_json(applied), JOB)
    assert planned["change"]["actions"] == ["update"]
    assert planned["adopts"] == f"run {new[:12]} (no training)" and planned["cost"] is None
    apply(applied)
    assert set(runs(applied)) == before
