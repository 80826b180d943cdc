"""The Workspace's Grafana dashboards: their PromQL, their metrics, their files."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from providers import rules
from providers.base import ApplyRequest, DeleteRequest, ResourceContext
from providers.prometheus import PrometheusProvider, dashboards
from providers.prometheus.dashboard_views import views
from reconciler.apply import metrics
from reconciler.state.model import ResourceState, State
from tests.monitoring.samples import ALERT_TEMPLATES, SLI_TEMPLATES, alert, slo
from trainer import pushmetrics
from trainer.config import MetricsTarget
from trainer.telemetry import Telemetry

OURS = "11111111-1111-4111-8111-111111111111"
THEIRS = "22222222-2222-4222-8222-222222222222"
WORKSPACE = "quickstart"
FILES = [f"pipeform-{WORKSPACE}-{v}.json" for v in ("executive", "oncall", "debug")]
_PROMQL_WORDS = {
    "sum",
    "by",
    "on",
    "and",
    "or",
    "offset",
    "increase",
    "time",
    "vector",
    "without",
    "group_left",
    "group_right",
    "ignoring",
    "unless",
    "rate",
    "changes",
}


def _names(registry: CollectorRegistry) -> set[str]:
    families = list(registry.collect())
    return {s.name for family in families for s in family.samples} | {
        family.name + ("_total" if family.type == "counter" else "") for family in families
    }


def _exported() -> set[str]:
    """Every metric name the code exports: reconciler, trainer and SLO recording rules."""
    now = datetime.now(UTC)
    job = {
        "status": "succeeded",
        "modelVersion": 1,
        "durationSeconds": 3.0,
        "retrainTriggers": {"total": 2, "useful": 1},
        "promotion": {"status": "awaiting-approval"},
        "runs": [
            {
                "id": "r1",
                "status": "succeeded",
                "finishedAt": now.isoformat(),
                "resources": {"cpu": 2, "memoryGiB": 4},
            }
        ],
    }
    dataset = {"createdAt": now.isoformat(), "drift": {"xage": 0.01}}
    state = State(
        "l",
        1,
        {
            "TrainingJob/m": ResourceState(
                "TrainingJob/m", "TrainingJob", "local", {}, "h", outputs=job
            ),
            "Dataset/d": ResourceState("Dataset/d", "Dataset", "local", {}, "h", outputs=dataset),
        },
    )
    names = _names(metrics.collect(state, metrics_report(), drift=0, budgets={"b": 0.5}))
    trainer = pushmetrics.build_registry(
        MetricsTarget(pushgateway_url="http://x", job="m"),
        status="succeeded",
        metrics={"loss": 0.1},
        duration_seconds=1.0,
        samples_per_second=10.0,
        finished_at=0.0,
        telemetry=_telemetry(),
    )
    names |= _names(trainer)
    address, document = slo("success", SLI_TEMPLATES["training-success-rate"])
    names |= {
        str(r["record"]) for r in rules.rule_group(address, document)["rules"] if "record" in r
    }
    return names


def _telemetry() -> Telemetry:
    """What a run on a GPU that wrote a checkpoint measures."""
    telemetry = Telemetry(gpu_memory_peak_ratio=0.5, champion_delta=("auc", -0.02))
    telemetry.batches.observe(0.01)
    telemetry.checkpoints.last_good_at, telemetry.checkpoints.last_good_step = 1.0, 10
    return telemetry.finish()


def metrics_report() -> Any:
    from reconciler.apply.report import ApplyReport

    return ApplyReport([], 1)


def _metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers outside label matchers, label
    lists, strings and durations that are not functions or keywords."""
    bare = re.sub(r"\{[^}]*\}", " ", expr)
    bare = re.sub(r"\b(by|on|without|ignoring)\s*\([^)]*\)", " ", bare)
    bare = re.sub(r"\[[^\]]*\]", " ", bare)
    bare = re.sub(r"offset\s+\w+", " ", bare)
    found = re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*+(?!\s*\()", bare)
    return {n for n in found if n not in _PROMQL_WORDS and not re.fullmatch(r"\d\w*", n)}


def _all_exprs() -> list[str]:
    return [panel.expr for view in views(WORKSPACE) for panel in view.panels()]


def test_every_panel_names_only_metrics_that_pipeform_exports() -> None:
    exported = _exported()
    used = set().union(*(_metric_names(e) for e in _all_exprs()))
    assert "pipeform_training_runs_total" in used and "pipeform_retrain_triggers" in used
    assert {
        "pipeform_training_checkpoint_failures",
        "pipeform_training_last_checkpoint_timestamp_seconds",
        "pipeform_training_batch_seconds_bucket",
        "pipeform_dataset_drift_psi",
        "pipeform_training_peak_memory_bytes",
        "pipeform_training_requested_cpu_cores",
        "pipeform_training_champion_delta",
    } <= used
    assert used - exported == set()


def test_every_panel_expression_passes_promtool(tmp_path: Path, promtool: str) -> None:
    exprs = _all_exprs()
    group = {
        "name": "dashboards",
        "rules": [
            {"record": f"pipeform_dashboard:check{i}", "expr": e} for i, e in enumerate(exprs)
        ],
    }
    path = tmp_path / "panels.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [group]}))
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in done.stdout


def test_the_three_views_show_what_operators_look_for() -> None:
    titles = {v.name: {p.title for p in v.panels()} for v in views(WORKSPACE)}
    assert {
        "Training success rate, last 7 days",
        "Models waiting for approval",
        "Cost per model and week",
    } <= titles["executive"]
    assert {"Failing runs", "Data validation failures", "Budget saturation"} <= titles["oncall"]
    assert {
        "Validation loss per run",
        "Retrain triggers by outcome",
        "Retrain trigger accuracy",
    } <= titles["debug"]
    for view in views(WORKSPACE):  # reconciler metrics are this workspace's only
        for panel in view.panels():
            for name in _metric_names(panel.expr) - {"pipeform_slo:error_budget_remaining:ratio"}:
                if not name.startswith("pipeform_training_") or name.endswith(("_info", "_week")):
                    assert f'{name}{{workspace="{WORKSPACE}"' in panel.expr, panel.title


def test_the_reconciler_exports_each_jobs_newest_run_and_the_weeks_cost() -> None:
    now = datetime.now(UTC)
    runs = [
        {
            "id": "old",
            "status": "succeeded",
            "finishedAt": (now - timedelta(days=9)).isoformat(),
            "cost": {"amount": "5.00", "currency": "USD"},
        },
        {
            "id": "a",
            "status": "succeeded",
            "finishedAt": (now - timedelta(days=2)).isoformat(),
            "cost": {"amount": "1.25", "currency": "USD"},
        },
        {
            "id": "b",
            "status": "failed",
            "finishedAt": now.isoformat(),
            "cost": {"amount": "0.50", "currency": "USD"},
        },
    ]
    resource = ResourceState(
        "TrainingJob/m", "TrainingJob", "local", {}, "h", outputs={"runs": runs}
    )
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in metrics.collect(State("l", 1, {"TrainingJob/m": resource})).collect()
        for s in family.samples
    }
    info = (("pipeform_job", "m"), ("run_id", "b"), ("status", "failed"))
    assert samples[("pipeform_training_last_run_info", info)] == 1
    assert (
        samples[("pipeform_training_cost_week", (("currency", "USD"), ("pipeform_job", "m")))]
        == 1.75
    )


def _provider(root: Path) -> PrometheusProvider:
    return PrometheusProvider({"workspace": {"name": WORKSPACE}}, root)


def _create(p: PrometheusProvider, address: str, doc: dict[str, Any], lineage: str = OURS) -> None:
    p.create(ApplyRequest(ResourceContext.of(address, lineage, p.root), doc, None, {}, None, {}))


def test_apply_writes_the_dashboards_beside_the_rules_and_destroy_removes_them(
    tmp_path: Path,
) -> None:
    p = _provider(tmp_path)
    address, doc = alert("failed", ALERT_TEMPLATES["training-failed"])
    _create(p, address, doc)
    board_dir = tmp_path / ".pipeform/dashboards"
    assert sorted(f.name for f in board_dir.iterdir()) == sorted(FILES)
    board = json.loads((board_dir / FILES[1]).read_text())
    assert board["title"] == f"pipeform {WORKSPACE}: On-call"
    assert {"pipeform-owner", f"lineage:{OURS}"} <= set(board["tags"])
    assert len(board["uid"]) <= 40
    exprs = [t["expr"] for panel in board["panels"] for t in panel.get("targets", [])]
    assert any("pipeform_dataset_validation_failed" in e for e in exprs)
    p.delete(DeleteRequest(ResourceContext.of(address, OURS, tmp_path), None, {}, None))
    assert not (tmp_path / ".pipeform/rules/pipeform-quickstart.rules.yml").exists()
    assert list(board_dir.iterdir()) == []


def test_a_dashboard_file_pipeform_does_not_own_is_left_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    board_dir = tmp_path / ".pipeform/dashboards"
    board_dir.mkdir(parents=True)
    mine = board_dir / FILES[0]
    mine.write_text('{"title": "hand made"}')
    theirs = board_dir / FILES[2]
    theirs.write_bytes(dashboards.render(WORKSPACE, THEIRS)[FILES[2]])
    p = _provider(tmp_path)
    address, doc = alert("failed", ALERT_TEMPLATES["training-failed"])
    _create(p, address, doc)
    assert mine.read_text() == '{"title": "hand made"}'
    assert dashboards.owner_of(theirs) == THEIRS
    assert dashboards.owner_of(board_dir / FILES[1]) == OURS
    assert "is not a dashboard of this pipeform state" in caplog.text
    p.delete(DeleteRequest(ResourceContext.of(address, OURS, tmp_path), None, {}, None))
    assert sorted(f.name for f in board_dir.iterdir()) == sorted([FILES[0], FILES[2]])


def test_a_crashed_write_is_adopted_and_an_edited_dashboard_is_rewritten(tmp_path: Path) -> None:
    board_dir = tmp_path / ".pipeform/dashboards"
    board_dir.mkdir(parents=True)
    stale = json.loads(dashboards.render(WORKSPACE, OURS)[FILES[0]])
    stale["panels"] = []
    (board_dir / FILES[0]).write_text(json.dumps(stale))
    p = _provider(tmp_path)
    address, doc = alert("failed", ALERT_TEMPLATES["training-failed"])
    _create(p, address, doc)
    assert (board_dir / FILES[0]).read_bytes() == dashboards.render(WORKSPACE, OURS)[FILES[0]]
