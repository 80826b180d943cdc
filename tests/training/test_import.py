"""`pipeform import` of a TrainingJob adopts a run that succeeded, as Terraform import
adopts an object; kinds that cannot be imported are refused in one plain line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.training.quickstart import (
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
def forgotten(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """An applied quickstart whose TrainingJob has a succeeded and a gated run, then was
    forgotten by the state (state rm): (root, succeeded run id, gated run id)."""
    root = copy(tmp_path_factory.mktemp("import"))
    apply(root)
    set_gate(root, "{metric: auc, min: 0.95}")
    apply(root, expect=1)  # gated
    set_gate(root, GATE)
    assert pipeform(root, "state", "rm", JOB).returncode == 0
    ids = runs(root)
    succeeded = next(i for i, s in ids.items() if s == "succeeded")
    gated = next(i for i, s in ids.items() if s == "gated")
    return root, succeeded, gated


def test_an_unknown_run_is_refused_naming_the_runs_that_can_be(
    forgotten: tuple[Path, str, str],
) -> None:
    root, succeeded, _ = forgotten
    result = pipeform(root, "import", JOB, "0123abcd")
    assert result.returncode == 1
    assert "there is no run 0123abcd of TrainingJob expense-model" in result.stderr
    assert f"runs that can be imported (newest last): {succeeded}" in result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr


def test_a_gated_run_is_refused(forgotten: tuple[Path, str, str]) -> None:
    root, _, gated = forgotten
    result = pipeform(root, "import", JOB, gated)
    assert result.returncode == 1
    assert "did not succeed (gated)" in result.stderr
    assert "only a run that succeeded can be imported" in result.stderr


def test_a_finished_run_is_adopted_and_the_next_plan_trains_nothing(
    forgotten: tuple[Path, str, str],
) -> None:
    root, succeeded, _ = forgotten
    result = pipeform(root, "import", JOB, succeeded)
    assert result.returncode == 0, result.stderr
    assert f"Imported {succeeded} as {JOB}" in result.stdout
    shown = pipeform(root, "state", "show", JOB)
    assert f'"runId": "{succeeded}"' in shown.stdout and '"modelVersion": 1' in shown.stdout
    assert change(plan_json(root), JOB)["change"]["actions"] == ["no-op"]


def test_a_run_imported_under_specs_it_was_not_trained_from_plans_a_retrain(
    forgotten: tuple[Path, str, str],
) -> None:
    root, succeeded, _ = forgotten
    pipeform(root, "state", "rm", JOB)  # in case the test above imported it
    set_gate(root, "{metric: auc, min: 0.75}")  # the run was trained with min 0.70
    try:
        assert pipeform(root, "import", JOB, succeeded).returncode == 0
        planned = change(plan_json(root), JOB)
    finally:
        set_gate(root, GATE)
    assert planned["change"]["actions"] == ["update"]
    assert planned["reason_detail"] == "retrain: spec changed"


def test_a_kind_that_cannot_be_imported_says_which_can(tmp_path: Path) -> None:
    root = copy(tmp_path)
    result = pipeform(root, "import", "FeatureSet/hie-features", "fs-1234")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: cannot import fs-1234 as FeatureSet/hie-features: the local provider cannot "
        "import FeatureSet resources (it can import Budget, Dataset, Quota, Secret, "
        "TrainingJob); apply it instead: tables already materialised from the same inputs "
        "are verified and reused, not built again"
    ]
