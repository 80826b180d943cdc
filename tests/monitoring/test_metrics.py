"""The reconciler's own metrics, built from state and an apply's outcomes."""

from __future__ import annotations

import socket
import urllib.request

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from reconciler.apply import metrics
from reconciler.apply.report import ApplyReport, Outcome
from reconciler.plan.model import Action
from reconciler.state.model import ResourceState, State, Status


def _resource(
    address: str, outputs: dict[str, object], status: Status = Status.READY
) -> ResourceState:
    kind = address.split("/")[0]
    return ResourceState(address, kind, "local", {}, "h", outputs=outputs, status=status)


STATE = State(
    "lineage",
    12,
    {
        r.address: r
        for r in (
            _resource("Dataset/expenses", {"createdAt": "2024-05-01T10:00:00Z"}),
            _resource("Dataset/refunds", {}, Status.FAILED),
            _resource("Budget/monthly", {"spent": "250.00", "amount": "1000.00"}),
            _resource("Budget/gpus", {"spentRatio": 1.2}),
            _resource(
                "TrainingJob/expense-model",
                {"status": "succeeded", "modelVersion": 3, "durationSeconds": 42.5},
            ),
            _resource("TrainingJob/gated", {"status": "gated", "modelVersion": None}),
        )
    },
)


def _samples(registry: object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()  # type: ignore[arg-type]
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_successful_apply_is_counted_and_the_state_becomes_gauges() -> None:
    report = ApplyReport(
        [
            Outcome("Dataset/expenses", Action.CREATE, "succeeded"),
            Outcome("Budget/monthly", Action.UPDATE, "succeeded"),
            Outcome("Budget/gpus", Action.NOOP, "succeeded"),
        ],
        12,
    )
    got = _samples(metrics.collect(STATE, report, drift=1))
    assert got[("pipeform_apply_total", (("result", "succeeded"),))] == 1
    assert got[("pipeform_resources_changed_total", (("action", "create"),))] == 1
    assert got[("pipeform_resources_changed_total", (("action", "update"),))] == 1
    assert ("pipeform_resources_changed_total", (("action", "no-op"),)) not in got
    assert got[("pipeform_drift_resources", ())] == 1
    assert got[("pipeform_state_serial", ())] == 12
    assert ("pipeform_last_successful_apply_timestamp_seconds", ()) in got
    assert (
        got[("pipeform_dataset_last_snapshot_timestamp_seconds", (("dataset", "expenses"),))]
        == 1714557600.0
    )
    assert got[("pipeform_dataset_validation_failed", (("dataset", "expenses"),))] == 0
    assert got[("pipeform_dataset_validation_failed", (("dataset", "refunds"),))] == 1
    assert got[("pipeform_budget_spent_ratio", (("budget", "monthly"),))] == 0.25
    assert got[("pipeform_budget_spent_ratio", (("budget", "gpus"),))] == 1.2
    assert (
        got[("pipeform_registration_duration_seconds", (("pipeform_job", "expense-model"),))]
        == 42.5
    )
    assert ("pipeform_registration_duration_seconds", (("pipeform_job", "gated"),)) not in got
    assert got[("pipeform_resources", (("kind", "Dataset"), ("status", "failed")))] == 1


def test_drift_per_column_and_what_each_run_asked_for_are_exported() -> None:
    state = State(
        "lineage",
        3,
        {
            r.address: r
            for r in (
                _resource("Dataset/expenses", {"drift": {"xage": 0.031, "linc": 0.4}}),
                _resource("Dataset/fresh", {"drift": {}}),  # no snapshot before it
                _resource(
                    "TrainingJob/expense-model",
                    {"runs": [{"id": "r1", "resources": {"cpu": 2, "memoryGiB": 4}}]},
                ),
                _resource("TrainingJob/never-ran", {"runs": []}),
            )
        },
    )
    got = _samples(metrics.collect(state))
    psi = "pipeform_dataset_drift_psi"
    assert got[(psi, (("column", "xage"), ("dataset", "expenses")))] == 0.031
    assert got[(psi, (("column", "linc"), ("dataset", "expenses")))] == 0.4
    assert not [key for key in got if key[0] == psi and ("dataset", "fresh") in key[1]]
    job = (("pipeform_job", "expense-model"),)
    assert got[("pipeform_training_requested_cpu_cores", job)] == 2
    assert got[("pipeform_training_requested_memory_bytes", job)] == 4 * 2**30
    assert not [key for key in got if ("pipeform_job", "never-ran") in key[1]]


def test_a_failed_apply_keeps_the_last_success_time_out_of_the_push() -> None:
    report = ApplyReport([Outcome("Dataset/expenses", Action.UPDATE, "failed", "bad rows")], 12)
    got = _samples(metrics.collect(STATE, report))
    assert got[("pipeform_apply_total", (("result", "failed"),))] == 1
    assert (
        "pipeform_last_successful_apply_timestamp_seconds",
        (),
    ) not in got  # pushadd keeps the old
    assert got[("pipeform_dataset_validation_failed", (("dataset", "expenses"),))] == 1


def test_a_pushgateway_that_does_not_answer_is_a_warning_not_an_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert metrics.push(metrics.collect(STATE), f"http://127.0.0.1:{port}", "w") is False


def test_serve_exposes_the_collector_on_localhost() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    live = metrics.serve(port)
    live.observe(STATE, ApplyReport([], 12), drift=0)
    live.observe(STATE, ApplyReport([], 12), drift=0)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    assert 'pipeform_apply_total{result="succeeded"} 2.0' in text
    assert "pipeform_drift_resources 0.0" in text
