"""Budgets: periods, spend to date from state, planned spend, enforcement, the local record."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from providers.base import ApplyRequest, DeleteRequest, ReadRequest, ResourceContext
from providers.local.budget import BudgetHandler
from providers.local.settings import LocalSettings
from reconciler import engine
from reconciler.plan import policy
from reconciler.plan.model import Action, CostEstimate, ResourceChange
from reconciler.state.model import ResourceState, State
from tests.conftest import run_cli
from tests.policy.trees import BUDGET, training_tree

AT = datetime(2026, 5, 17, 15, 30, tzinfo=UTC)  # a Sunday


@pytest.mark.parametrize(
    ("period", "start", "end"),
    [
        ("daily", "2026-05-17", "2026-05-18"),
        ("weekly", "2026-05-11", "2026-05-18"),
        ("monthly", "2026-05-01", "2026-06-01"),
        ("quarterly", "2026-04-01", "2026-07-01"),
        ("yearly", "2026-01-01", "2027-01-01"),
    ],
)
def test_period_bounds_are_utc_calendar_periods(period: str, start: str, end: str) -> None:
    begin, finish = policy.period_bounds(period, AT)
    assert (begin.date().isoformat(), finish.date().isoformat()) == (start, end)
    assert begin.tzinfo is not None and begin.hour == 0


def test_december_rolls_over_into_the_next_year() -> None:
    december = datetime(2026, 12, 31, 23, 59, tzinfo=UTC)
    assert policy.period_bounds("monthly", december)[1] == datetime(2027, 1, 1, tzinfo=UTC)
    assert policy.period_bounds("quarterly", december) == (
        datetime(2026, 10, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )


def job_state(name: str, labels: dict[str, str], runs: list[dict[str, Any]]) -> ResourceState:
    return ResourceState(
        address=f"TrainingJob/{name}",
        kind="TrainingJob",
        provider="fake",
        spec={"metadata": {"labels": labels, "annotations": {}}, "spec": {}},
        spec_hash="sha256:x",
        outputs={"runs": runs},
    )


def priced_run(amount: str, finished: str, currency: str = "USD") -> dict[str, Any]:
    return {
        "status": "succeeded",
        "finishedAt": finished,
        "cost": {"amount": amount, "currency": currency},
    }


def test_spend_counts_runs_in_scope_and_in_the_period(tmp_path: Path) -> None:
    root = training_tree(tmp_path, **{"budget.yaml": BUDGET % (100, "true")})
    checked = engine.load_specs([root])
    state = State(
        "lineage",
        3,
        {
            "TrainingJob/a": job_state(
                "a",
                {"team": "growth"},
                [
                    priced_run("10.25", "2026-05-02T08:00:00Z"),
                    priced_run("7.00", "2026-04-30T23:59:59Z"),  # last month
                    priced_run("5.00", "2026-05-03T00:00:00Z", currency="EUR"),  # not comparable
                    {  # recorded before costs were: priced now from its resources
                        "status": "failed",
                        "finishedAt": "2026-05-04T00:00:00Z",
                        "durationSeconds": 3600,
                        "resources": {"cpu": 8, "memoryGiB": 32, "gpus": 1, "gpuType": "h100"},
                    },
                ],
            ),
            "TrainingJob/b": job_state(
                "b", {"team": "search"}, [priced_run("50.00", "2026-05-02T08:00:00Z")]
            ),
        },
    )
    planned = ResourceChange(
        "TrainingJob/churn-model",
        "TrainingJob",
        "fake",
        Action.CREATE,
        after={"metadata": {"labels": {"team": "growth"}}, "spec": {}},
        cost=CostEstimate("4.48", "USD", "0.5", "8.96", "maxDuration 30m", 2),
    )
    report = policy.evaluate(checked, state, [planned], at=AT)
    (status,) = report.budgets
    assert status.used == "14.73"  # 10.25 + 4.48 (the run priced now)
    assert status.planned == "4.48"
    assert status.percent == "19.2"
    assert status.period_start == "2026-05-01T00:00:00Z"
    assert not status.over and status.thresholds_crossed == []
    assert report.findings == []


def plan_cli(root: Path, *args: str) -> Any:
    """pipeform plan run in the spec tree, so positions read as users see them."""
    return run_cli("plan", *args, cwd=root, env=_env())


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}


def test_plan_over_an_enforced_budget_is_refused(tmp_path: Path) -> None:
    root = training_tree(tmp_path, **{"budget.yaml": BUDGET % (4, "true")})
    out = plan_cli(root, "--out", str(tmp_path / "over.plan"))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    assert out.stderr.startswith("budget.yaml:5:11:")  # spec.amount
    assert "Budget/growth-monthly: this plan would exceed the enforced budget" in out.stderr
    assert "used 0.00 + planned 4.48 = 4.48 USD of 4.00 USD this month (112.0%)" in out.stderr
    assert "raise spec.amount" in out.stderr and "--allow-over-budget" in out.stderr
    assert (
        "Budget/growth-monthly  monthly, enforced: used 0.00 + planned 4.48 of 4.00 USD"
        in out.stdout
    )
    assert not (tmp_path / "over.plan").exists()  # a refused plan is never saved


def test_allow_over_budget_turns_the_refusal_into_a_warning(tmp_path: Path) -> None:
    root = training_tree(tmp_path, **{"budget.yaml": BUDGET % (4, "true")})
    saved = tmp_path / "over.plan"
    out = plan_cli(root, "--allow-over-budget", "--out", str(saved))
    assert out.returncode == 0, out.stderr
    assert "accepted with --allow-over-budget" in out.stdout
    body = json.loads(saved.read_text())
    assert body["plan"]["policy"]["allow_over_budget"] is True
    applied = run_cli("apply", str(root), str(saved), env=_env())
    assert applied.returncode == 0, applied.stderr
    assert "Apply complete! Resources: 4 added" in applied.stdout


def test_apply_over_an_enforced_budget_changes_nothing(tmp_path: Path) -> None:
    root = training_tree(tmp_path, **{"budget.yaml": BUDGET % (4, "true")})
    out = run_cli("apply", str(root), "--auto-approve", env=_env())
    assert out.returncode == 1
    assert "exceed the enforced budget" in out.stderr
    assert not (root / ".pipeform" / "fake" / "Dataset__events.json").exists()
    assert run_cli("state", "list", str(root), env=_env()).stdout.strip() == ""


def test_a_budget_that_is_not_enforced_only_warns(tmp_path: Path) -> None:
    root = training_tree(tmp_path, **{"budget.yaml": BUDGET % (4, "false")})
    out = plan_cli(root, "--format", "json")
    assert out.returncode == 0, out.stderr
    verdict = json.loads(out.stdout)["policy"]
    assert verdict["failed"] == []
    (warning,) = verdict["warnings"]
    assert warning["address"] == "Budget/growth-monthly"
    assert "would exceed the budget (not enforced)" in warning["summary"]
    assert verdict["budgets"][0]["over"] is True


def test_crossing_a_threshold_warns(tmp_path: Path) -> None:
    root = training_tree(tmp_path, **{"budget.yaml": BUDGET % (5, "true")})
    out = plan_cli(root)
    assert out.returncode == 0, out.stderr
    assert "spend would reach 89.6%, past the 80% threshold" in out.stdout


def test_budget_in_another_currency_than_pricing_is_refused_when_enforced(tmp_path: Path) -> None:
    budget = (BUDGET % (100, "true")) + "  currency: EUR\n"
    root = training_tree(tmp_path, **{"budget.yaml": budget})
    out = plan_cli(root)
    assert out.returncode == 1
    assert "is in EUR but the Workspace's pricing is in USD" in out.stderr


# -- the local provider's record -----------------------------------------------------------


def test_local_budget_handler_records_reads_and_deletes(tmp_path: Path) -> None:
    handler = BudgetHandler(LocalSettings.from_config({}, tmp_path))
    ctx = ResourceContext.of("Budget/growth", "lineage-1", tmp_path)
    spec = {
        "metadata": {"labels": {}, "annotations": {}},
        "spec": {
            "provider": None,
            "amount": "1000.00",
            "currency": "USD",
            "period": "quarterly",
            "scope": {"labels": {"team": "growth"}},
            "thresholds": [50.0, 90.0],
            "enforce": True,
        },
    }
    made = handler.create(ApplyRequest(ctx, spec, None, {}, None, {}))
    path = tmp_path / ".pipeform" / "data" / "budgets" / "growth.json"
    record = json.loads(path.read_text())
    assert record["amount"] == "1000.00" and record["period"] == "quarterly"
    assert record["scope"] == {"labels": {"team": "growth"}} and record["enforce"] is True
    assert record["labels"] == ctx.owner_labels
    seen = handler.read(ReadRequest(ctx, spec, made.outputs, made.external_id))
    assert seen.exists and seen.observed == made.observed
    spec["spec"]["amount"] = "2000.00"
    handler.update(ApplyRequest(ctx, spec, spec, made.outputs, made.external_id, {}))
    assert json.loads(path.read_text())["amount"] == "2000.00"
    handler.delete(DeleteRequest(ctx, spec, made.outputs, made.external_id))
    assert not path.exists()
    handler.delete(DeleteRequest(ctx, spec, made.outputs, made.external_id))  # gone: fine
