"""Cost estimates: the arithmetic, the expected duration, the plan's totals, actual run costs."""

from __future__ import annotations

import dataclasses
from decimal import Context, Decimal, localcontext
from pathlib import Path
from typing import Any, ClassVar

import pytest

from providers import base
from providers.base import ApplyRequest, ApplyResponse
from providers.testing import FakeProvider
from reconciler import engine
from reconciler.kinds import TrainingJob, Workspace
from reconciler.plan import cost
from reconciler.plan.model import Action
from reconciler.plan.planner import PlanOptions
from tests.policy.trees import training_tree


def workspace(**spec: Any) -> Workspace:
    return Workspace.model_validate(
        {"apiVersion": "pipeform/v1", "kind": "Workspace", "metadata": {"name": "w"}, "spec": spec}
    )


def job(**spec: Any) -> TrainingJob:
    body = {"features": "f", "model": {"type": "linear", "task": "regression"}, **spec}
    return TrainingJob.model_validate(
        {
            "apiVersion": "pipeform/v1",
            "kind": "TrainingJob",
            "metadata": {"name": "j"},
            "spec": body,
        }
    )


PRICED = workspace(pricing={"gpuHour": {"h100": 4}, "cpuHour": 0.04, "memoryGiBHour": 0.005})


def run(seconds: float, status: str = "succeeded", **extra: Any) -> dict[str, Any]:
    return {"id": f"r{seconds}", "status": status, "durationSeconds": seconds, **extra}


def test_hand_computed_estimate_two_h100_workers_for_half_an_hour() -> None:
    # 2 workers x (1 x 4.00 + 8 x 0.04 + 32 x 0.005) = 2 x 4.48 = 8.96 per hour; x 0.5 h
    found = cost.estimate(
        job(
            resources={"gpus": 1, "gpuType": "h100", "cpu": 8, "memory": "32Gi"},
            distributed={"workers": 2},
            maxDuration="30m",
        ),
        PRICED,
        {},
    )
    assert Decimal(found.amount) == Decimal("4.48")
    assert (found.hourly, found.hours, found.currency) == ("8.96", "0.5", "USD")
    assert found.basis == "maxDuration 30m"
    assert found.workers == 2


def test_nodes_multiply_and_unlisted_gpu_types_take_the_default_price() -> None:
    # 3 workers x 2 nodes x (2 x 2.50 default + 1 x 0.04 + 1 GiB x 0.005) x 2 h
    found = cost.estimate(
        job(
            resources={"gpus": 2, "gpuType": "a100", "cpu": 1, "memory": "1Gi"},
            distributed={"workers": 3, "nodes": 2},
            maxDuration="2h",
        ),
        PRICED,
        {},
    )
    assert Decimal(found.amount) == Decimal(6) * Decimal("5.045") * 2
    assert found.workers == 6


def test_workspace_default_resources_apply_when_the_job_states_none() -> None:
    ws = workspace(
        defaults={"resources": {"cpu": "500m", "memory": "4Gi"}},
        pricing={"cpuHour": 0.10, "memoryGiBHour": 0.01},
    )
    found = cost.estimate(job(maxDuration="1h"), ws, {})
    assert Decimal(found.hourly) == Decimal("0.5") * Decimal("0.10") + 4 * Decimal("0.01")
    assert Decimal(found.amount) == Decimal("0.09")


def test_median_of_succeeded_and_gated_runs_predicts_the_duration() -> None:
    outputs = {
        "runs": [
            run(600),
            run(1800, "gated"),
            run(3600),
            run(99_999, "failed"),  # stopped early or hung: says nothing about the next run
            run(99_999, "timed-out"),
        ]
    }
    found = cost.estimate(job(resources={"cpu": 1, "memory": "1Gi"}), PRICED, outputs)
    assert found.basis == "median of 3 past runs"
    assert found.hours == "0.5"
    assert Decimal(found.amount) == (Decimal("0.04") + Decimal("0.005")) / 2


def test_even_number_of_runs_takes_the_mean_of_the_middle_two() -> None:
    outputs = {"runs": [run(600), run(1200), run(2400), run(7200)]}
    hours, basis = cost.expected_hours(job(), outputs)
    assert hours == Decimal(1800) / 3600
    assert basis == "median of 4 past runs"
    hours, basis = cost.expected_hours(job(maxDuration="6h"), {"runs": [run(5, "failed")]})
    assert (hours, basis) == (Decimal(6), "maxDuration 6h")


def test_actual_cost_is_added_to_runs_that_lack_one() -> None:
    resources = {
        "cpu": 8.0,
        "memoryGiB": 32.0,
        "gpus": 1,
        "gpuType": "h100",
        "workers": 2,
        "nodes": 1,
    }
    kept = {"amount": "1.00", "currency": "USD"}
    outputs = {
        "runId": "r2",
        "runs": [
            {**run(900), "resources": resources, "cost": kept},
            {**run(1800), "resources": resources},
            {"id": "broken", "status": "failed"},  # nothing measured: nothing to price
        ],
    }
    priced = cost.with_run_costs(outputs, cost.Prices.of(PRICED).to_json())
    assert priced["runs"][0]["cost"] == kept
    assert priced["runs"][1]["cost"] == {"amount": "4.48", "currency": "USD"}
    assert "cost" not in priced["runs"][2]
    assert priced["runId"] == "r2"


def test_prices_round_trip_without_exponents() -> None:
    prices = cost.Prices.of(workspace(pricing={"cpuHour": 40, "gpuHour": {"h100": "12.5"}}))
    data = prices.to_json()
    assert data["cpuHour"] == "40" and data["gpuHour"] == {"h100": "12.5"}
    assert cost.Prices.from_json(data) == prices


# -- in a plan ---------------------------------------------------------------------------


def plan(root: Path, **options: Any) -> Any:
    session = engine.open_session([root])
    return engine.plan(session, PlanOptions(**options))


def apply(root: Path) -> Any:
    session = engine.open_session([root])
    result = engine.plan(session, PlanOptions())
    report = engine.apply(session, result, "test", parallelism=2)
    assert not report.failed, report.outcomes
    return session


def test_plan_estimates_training_changes_and_totals_them(tmp_path: Path) -> None:
    result = plan(training_tree(tmp_path))
    by_address = {c.address: c for c in result.changes}
    assert by_address["TrainingJob/churn-model"].cost is not None
    assert Decimal(by_address["TrainingJob/churn-model"].cost.amount) == Decimal("4.48")
    assert by_address["Dataset/events"].cost is None
    assert result.cost_totals == {"USD": "4.48"}
    assert result.pricing is not None and result.pricing["gpuHour"] == {"h100": "4"}


def test_unchanged_jobs_cost_nothing_and_destroy_plans_estimate_nothing(tmp_path: Path) -> None:
    root = training_tree(tmp_path)
    apply(root)
    again = plan(root)
    assert not again.actionable
    assert all(c.cost is None for c in again.changes)
    assert again.cost_totals == {"USD": "0"}
    destroy = plan(root, mode="destroy")
    assert destroy.pricing is None and destroy.policy is None


def test_median_comes_from_the_runs_recorded_in_state(tmp_path: Path) -> None:
    root = training_tree(tmp_path)
    session = apply(root)
    state = session.backend.read()
    prior = state.resources["TrainingJob/churn-model"]
    runs = [run(600), run(900), run(7200), run(60, "failed")]
    session.backend.put(
        state.serial, dataclasses.replace(prior, outputs={**prior.outputs, "runs": runs})
    )
    training = root / "training.yaml"
    training.write_text(training.read_text().replace("learningRate: 0.01", "learningRate: 0.02"))
    change = next(c for c in plan(root).changes if c.address == "TrainingJob/churn-model")
    assert change.action is Action.UPDATE
    assert change.cost is not None
    assert change.cost.basis == "median of 3 past runs"
    assert change.cost.hours == "0.25"  # the median, 900 s
    assert Decimal(change.cost.amount) == Decimal("8.96") / 4


class RunsProvider(FakeProvider):
    """The fake provider, with a TrainingJob that reports its run as a trainer would."""

    name: ClassVar[str] = "runs-fake"

    def _write(self, request: ApplyRequest) -> ApplyResponse:
        response = super()._write(request)
        if request.ctx.kind != "TrainingJob":
            return response
        resources = {"cpu": 8.0, "memoryGiB": 32.0, "gpus": 1, "gpuType": "h100"}
        runs = [
            *(request.prior_outputs.get("runs") or []),
            {
                **run(1800),
                "finishedAt": "2026-01-01T00:30:00Z",
                "resources": {**resources, "workers": 2, "nodes": 1},
            },
        ]
        return dataclasses.replace(response, outputs={**response.outputs, "runs": runs})


@pytest.fixture
def runs_provider() -> Any:
    base.register(RunsProvider)
    yield RunsProvider
    base.unregister(RunsProvider.name)


def test_apply_records_the_actual_cost_of_each_new_run(tmp_path: Path, runs_provider: Any) -> None:
    root = training_tree(tmp_path)
    ws = root / "pipeform.yaml"
    ws.write_text(ws.read_text().replace("provider: fake", "provider: runs-fake"))
    session = apply(root)
    runs = session.backend.read().resources["TrainingJob/churn-model"].outputs["runs"]
    assert [r["cost"] for r in runs] == [{"amount": "4.48", "currency": "USD"}]
    training = root / "training.yaml"
    training.write_text(training.read_text().replace("learningRate: 0.01", "learningRate: 0.02"))
    session = apply(root)
    runs = session.backend.read().resources["TrainingJob/churn-model"].outputs["runs"]
    assert len(runs) == 2 and all(r["cost"]["amount"] == "4.48" for r in runs)


def test_the_largest_spec_accepted_is_priced_exactly(tmp_path: Path) -> None:
    """Every bound at once (prices just below 10^15, a million cores, 1Ei, 1024 GPUs on
    1024 x 1024 workers, 3650d) once ended plan in decimal.InvalidOperation."""
    price = "999999999999999.99"
    workspace = f"""
        apiVersion: pipeform/v1
        kind: Workspace
        metadata: {{name: w}}
        spec:
          defaults: {{provider: fake}}
          pricing: {{gpuHour: {{h100: "{price}"}}, cpuHour: "{price}", memoryGiBHour: "{price}"}}
        """
    job = """
        apiVersion: pipeform/v1
        kind: TrainingJob
        metadata: {name: churn-model}
        spec:
          features: churn-features
          model: {type: mlp, task: binary-classification}
          resources: {gpus: 1024, gpuType: h100, cpu: 1000000, memory: 1Ei}
          distributed: {workers: 1024, nodes: 1024}
          maxDuration: 3650d
        ---
        apiVersion: pipeform/v1
        kind: Budget
        metadata: {name: tiny}
        spec: {amount: 0.01}
        """
    root = training_tree(tmp_path, **{"pipeform.yaml": workspace, "training.yaml": job})
    result = plan(root)
    with localcontext(Context(prec=60)):  # exact: Decimal's default 28 digits would round
        per_worker = (1024 + 1_000_000 + 2**30) * Decimal(price)
        expected = per_worker * 1024 * 1024 * 3650 * 24
        percent = (expected * 10_000).quantize(Decimal("0.1"))
    [change] = [c for c in result.changes if c.address == "TrainingJob/churn-model"]
    assert change.cost is not None and Decimal(change.cost.amount) == expected
    assert result.cost_totals == {"USD": change.cost.amount}
    [budget] = result.policy.budgets
    assert budget.over and Decimal(budget.percent) == percent
