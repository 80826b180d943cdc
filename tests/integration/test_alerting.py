"""Alerts end to end: the prometheus provider against real Prometheus, Alertmanager and
Pushgateway processes (tests/integration/prometheus_stack.py).

The provider writes the rules file Prometheus loads, reloads Prometheus and confirms the
group; metrics pushed as the trainer pushes them make the alert reach Alertmanager; an
SLO pages on an error ratio above 14.4 x its budget and stays silent below it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Gauge, pushadd_to_gateway

from providers.base import ApplyRequest, DeleteRequest, ReadRequest, ResourceContext
from providers.prometheus import PrometheusProvider
from reconciler.apply import metrics
from reconciler.apply.report import ApplyReport, Outcome
from reconciler.plan.model import Action
from reconciler.state.model import ResourceState, State
from tests.conformance.cases import document
from tests.integration.prometheus_stack import Stack, http_json, wait_until

pytestmark = pytest.mark.slow  # real servers: about 25s for the module

LINEAGE = "33333333-3333-4333-8333-333333333333"
ALERT_WAIT = 20.0


def _provider(stack: Stack, root: Path) -> PrometheusProvider:
    return PrometheusProvider(
        {"rulesDir": str(stack.rules_dir), "url": stack.prometheus, "workspace": {"name": "it"}},
        root,
    )


def _apply(p: PrometheusProvider, kind: str, name: str, spec: dict[str, Any]) -> ResourceContext:
    ctx = ResourceContext.of(f"{kind}/{name}", LINEAGE, p.root)
    p.create(ApplyRequest(ctx, document(kind, name, spec), None, {}, None, {}))
    return ctx


def push_failed_run(stack: Stack, job: str) -> None:
    """A failed run's metrics, as the trainer pushes them (trainer/pushmetrics.py when present)."""
    try:
        from trainer.config import MetricsTarget
        from trainer.pushmetrics import push_run_metrics
    except ImportError:  # the trainer's push module has not landed: the contract's names
        registry = CollectorRegistry()
        Gauge("pipeform_training_run_succeeded", "", registry=registry).set(0)
        Gauge("pipeform_training_run_finished_timestamp_seconds", "", registry=registry).set(
            time.time()
        )
        pushadd_to_gateway(
            stack.pushgateway,
            job="pipeform_trainer",
            grouping_key={"pipeform_job": job},
            registry=registry,
        )
        return
    push_run_metrics(
        MetricsTarget(pushgateway_url=stack.pushgateway, job=job),
        run_id="run-1",
        status="failed",
        metrics={},
        duration_seconds=3.0,
        samples_per_second=None,
        finished_at=time.time(),
    )


def push_run_counts(stack: Stack, job: str, failed: int, succeeded: int) -> None:
    """pipeform_training_runs_total{result} as the trainer keeps it (cumulative)."""
    registry = CollectorRegistry()
    runs = Gauge("pipeform_training_runs_total", "", ["result"], registry=registry)
    runs.labels("failed").set(failed)
    runs.labels("succeeded").set(succeeded)
    runs.labels("gated").set(0)
    pushadd_to_gateway(
        stack.pushgateway,
        job="pipeform_trainer",
        grouping_key={"pipeform_job": job},
        registry=registry,
    )


def _alerts_for(stack: Stack, **labels: str) -> list[dict[str, Any]]:
    return [
        a
        for a in stack.alertmanager_alerts()
        if all(a["labels"].get(k) == v for k, v in labels.items())
    ]


def test_a_failed_run_reaches_alertmanager(prometheus_stack: Stack, tmp_path: Path) -> None:
    p = _provider(prometheus_stack, tmp_path)
    _apply(p, "Alert", "churn-failed", {"template": {"type": "training-failed", "job": "churn"}})
    loaded = prometheus_stack.prometheus_alerts()  # the provider confirmed the group loaded
    assert all(a["labels"].get("alertname") != "ChurnFailed" for a in loaded)
    started = time.monotonic()
    push_failed_run(prometheus_stack, "churn")
    found = wait_until(lambda: _alerts_for(prometheus_stack, alertname="ChurnFailed"), ALERT_WAIT)
    took = time.monotonic() - started
    assert found, f"no ChurnFailed alert in Alertmanager within {ALERT_WAIT:.0f}s"
    labels = found[0]["labels"]
    assert labels["pipeform_job"] == "churn"
    assert labels["pipeform_address"] == "Alert/churn-failed"
    assert labels["severity"] == "warning"
    print(f"training-failed alert reached Alertmanager {took:.1f}s after the push")


def test_an_slo_pages_above_14_4_budgets_and_stays_silent_below(
    prometheus_stack: Stack, tmp_path: Path
) -> None:
    p = _provider(prometheus_stack, tmp_path)
    for name, job in (("burning", "burning-job"), ("calm", "calm-job")):
        sli = {"template": {"type": "training-success-rate", "job": job}}
        _apply(p, "SLO", name, {"sli": sli, "objective": 95, "window": "30d"})
        push_run_counts(prometheus_stack, job, 0, 0)
    # one scrape of the zero counts, so the next push is an increase
    assert wait_until(
        lambda: prometheus_stack.query('pipeform_training_runs_total{pipeform_job="calm-job"}'), 10
    )
    time.sleep(1.5)
    started = time.monotonic()
    push_run_counts(prometheus_stack, "burning-job", 9, 1)  # 90% errors > 14.4 x 5% = 72%
    push_run_counts(prometheus_stack, "calm-job", 1, 49)  # 2% errors: within budget
    paged = wait_until(
        lambda: _alerts_for(prometheus_stack, alertname="BurningFastBurn", slo="burning"),
        ALERT_WAIT,
    )
    took = time.monotonic() - started
    assert paged, f"the burning SLO did not page within {ALERT_WAIT:.0f}s"
    assert paged[0]["labels"]["severity"] == "critical"
    assert paged[0]["labels"]["slo_alert"] == "page"

    def calm_ratio() -> float | None:
        got = prometheus_stack.query('pipeform_slo:sli_error:ratio_rate5m{slo="calm"}')
        value = float(got[0]["value"][1]) if got else None
        return value if value and value > 0 else None

    ratio = wait_until(calm_ratio, ALERT_WAIT)
    assert ratio is not None and 0.01 < ratio < 0.05, ratio
    time.sleep(3)  # three more rule evaluations
    firing = [a for a in prometheus_stack.prometheus_alerts() if a["labels"].get("slo") == "calm"]
    assert firing == [] and _alerts_for(prometheus_stack, slo="calm") == []
    print(f"SLO page reached Alertmanager {took:.1f}s after the burning push")


def test_reads_follow_prometheus_and_delete_unloads_the_group(
    prometheus_stack: Stack, tmp_path: Path
) -> None:
    p = _provider(prometheus_stack, tmp_path)
    spec = {"expr": "up == 0", "for": "1m", "severity": "critical"}
    ctx = _apply(p, "Alert", "target-down", spec)
    doc = document("Alert", "target-down", spec)
    live = p.read(ReadRequest(ctx, doc, {}, ctx.address))
    assert live.exists
    assert live.observed["rules"]["TargetDown"]["for"] == "1m"
    groups = http_json(f"{prometheus_stack.prometheus}/api/v1/rules")["data"]["groups"]
    assert any(g["name"] == "Alert/target-down" for g in groups)

    p.delete(DeleteRequest(ctx, doc, {}, ctx.address))
    groups = http_json(f"{prometheus_stack.prometheus}/api/v1/rules")["data"]["groups"]
    assert all(g["name"] != "Alert/target-down" for g in groups)
    assert p.read(ReadRequest(ctx, doc, {}, ctx.address)).exists is False


def test_reconciler_metrics_are_pushed_and_counters_continue(
    prometheus_stack: Stack,
) -> None:
    state = State(
        "lineage",
        7,
        {
            "Dataset/expenses": ResourceState(
                "Dataset/expenses",
                "Dataset",
                "local",
                {},
                "h",
                outputs={"createdAt": "2024-05-01T10:00:00Z"},
            )
        },
    )
    report = ApplyReport([Outcome("Dataset/expenses", Action.CREATE, "succeeded")], 7)
    for _ in range(2):  # two one-shot applies
        assert metrics.push(
            metrics.collect(state, report, drift=0), prometheus_stack.pushgateway, "it"
        )

    def pushed() -> dict[str, float]:
        got = prometheus_stack.query('{job="pipeform",workspace="it"}')
        return {
            r["metric"]["__name__"] + str(sorted(r["metric"].items())): float(r["value"][1])
            for r in got
        }

    def applied_twice() -> list[dict[str, Any]]:
        got = prometheus_stack.query('pipeform_apply_total{workspace="it",result="succeeded"}')
        return got if got and float(got[0]["value"][1]) == 2 else []

    assert wait_until(applied_twice, 10), pushed()
    snapshot = prometheus_stack.query(
        'pipeform_dataset_last_snapshot_timestamp_seconds{workspace="it",dataset="expenses"}'
    )
    assert float(snapshot[0]["value"][1]) == 1714557600.0
    changed = prometheus_stack.query('pipeform_resources_changed_total{action="create"}')
    assert float(changed[0]["value"][1]) == 2
