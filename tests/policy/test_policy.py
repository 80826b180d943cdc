"""Quotas and required labels at plan time, and how every renderer shows cost and policy."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from reconciler import engine
from reconciler.plan.planner import PlanOptions
from reconciler.render import jsonplan, markdown, text
from tests.conftest import run_cli
from tests.policy.trees import BUDGET, training_tree

QUOTA = """
apiVersion: pipeform/v1
kind: Quota
metadata: {name: gpu-team}
spec: {gpus: 1, gpuTypes: [a100], cpu: 8, memory: 48Gi}
"""


def env() -> dict[str, str]:
    return {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}


def plan_cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """pipeform plan run in the spec tree, so positions read as users see them."""
    return run_cli("plan", *args, cwd=root, env=env())


def with_quota(root: Path) -> Path:
    training = root / "training.yaml"
    training.write_text(training.read_text() + "  quota: gpu-team\n")
    return root


def test_a_job_asking_more_than_its_quota_is_refused_with_every_reason(tmp_path: Path) -> None:
    root = with_quota(training_tree(tmp_path, **{"quota.yaml": QUOTA}))
    out = plan_cli(root)
    assert out.returncode == 1, out.stdout
    errors = [line for line in out.stderr.splitlines() if "TrainingJob/churn-model" in line]
    assert len(errors) == 4, out.stderr  # collected, all reported at once
    text_ = out.stderr
    assert (
        "asks for 2 GPUs (1 per worker x 2 workers x 1 node), more than Quota/gpu-team allows (1)"
        in text_
    )
    assert "asks for gpuType h100, which Quota/gpu-team does not allow (allowed: a100)" in text_
    assert "asks for 16 CPU cores (8 per worker x 2 workers x 1 node)" in text_
    assert "asks for 64Gi of memory (32Gi per worker" in text_ and "allows (48Gi)" in text_
    assert all(line.startswith("training.yaml:") for line in errors)
    assert "4 errors in 1 file." in text_
    assert "Traceback" not in text_


def test_a_job_within_its_quota_passes(tmp_path: Path) -> None:
    roomy = QUOTA.replace(
        "gpus: 1, gpuTypes: [a100], cpu: 8, memory: 48Gi", "gpus: 2, gpuTypes: [h100]"
    )
    root = with_quota(training_tree(tmp_path, **{"quota.yaml": roomy}))
    out = plan_cli(root, "--format", "json")
    assert out.returncode == 0, out.stderr
    verdict = json.loads(out.stdout)["policy"]
    assert {"rule": "quota", "address": "TrainingJob/churn-model"} in verdict["passed"]


def test_missing_required_labels_are_refused_with_file_and_line(tmp_path: Path) -> None:
    root = training_tree(tmp_path)
    ws = root / "pipeform.yaml"
    ws.write_text(ws.read_text() + "  policy: {requiredLabels: [team, cost-center]}\n")
    data = root / "data.yaml"  # the Dataset gets the label; the FeatureSet and the job do not
    labelled = "metadata:\n  name: events\n  labels: {cost-center: ml}"
    data.write_text(data.read_text().replace("metadata: {name: events}", labelled))
    out = plan_cli(root)
    assert out.returncode == 1
    lines = [line for line in out.stderr.splitlines() if "missing required label" in line]
    assert len(lines) == 2, out.stderr
    feature_line = next(line for line in lines if "FeatureSet/churn-features" in line)
    # the FeatureSet's metadata is on line 10 of data.yaml (its document starts on line 8)
    assert feature_line.startswith("data.yaml:10:")
    assert "missing required label cost-center" in feature_line
    assert "add cost-center under metadata.labels" in feature_line
    assert any(line.startswith("training.yaml:3:") for line in lines)
    assert not any("team" in line.split("label", 1)[1].split("(")[0] for line in lines)


def test_workspace_default_labels_satisfy_required_labels(tmp_path: Path) -> None:
    root = training_tree(tmp_path)
    ws = root / "pipeform.yaml"
    ws.write_text(ws.read_text() + "  policy: {requiredLabels: [team]}\n")
    assert plan_cli(root).returncode == 0


def test_apply_refuses_a_saved_plan_that_records_a_policy_error(tmp_path: Path) -> None:
    root = training_tree(tmp_path, **{"budget.yaml": BUDGET % (4, "true")})
    saved = tmp_path / "p.plan"
    assert plan_cli(root, "--allow-over-budget", "--out", str(saved)).returncode == 0
    body = json.loads(saved.read_text())
    finding = body["plan"]["policy"]["findings"][0]
    body["plan"]["policy"]["findings"][0] = {**finding, "severity": "error"}  # a doctored file
    saved.write_text(json.dumps(body))
    out = run_cli("apply", str(root), str(saved), env=env())
    assert out.returncode == 1
    assert "Budget/growth-monthly" in out.stderr
    assert not (root / ".pipeform" / "fake" / "Dataset__events.json").exists()


# -- renderers -----------------------------------------------------------------------------


def planned(root: Path, **options: object) -> object:
    session = engine.open_session([root])
    return engine.plan(session, PlanOptions(**options))  # type: ignore[arg-type]


def test_text_shows_the_cost_of_each_run_the_total_and_the_budgets(tmp_path: Path) -> None:
    root = training_tree(tmp_path, **{"budget.yaml": BUDGET % (100, "true")})
    lines = [line.plain for line in text.render(planned(root))]  # type: ignore[arg-type]
    job = lines.index(next(line for line in lines if "TrainingJob/churn-model" in line))
    cost_line = next(line for line in lines[job:] if "Cost:" in line)
    assert cost_line.strip() == ("Cost: ~4.48 USD (8.96 USD/h x 0.5 h, maxDuration 30m; 2 workers)")
    summary = lines.index("Plan: 4 to add, 0 to change, 0 to replace, 0 to destroy.")
    assert (
        lines[summary + 1]
        == "Estimated cost: 4.48 USD (1 training run, at the Workspace's pricing)"
    )
    assert (
        "  Budget/growth-monthly  monthly, enforced: used 0.00 + planned 4.48 of 100.00 USD (4.5%)"
        in lines
    )


def test_json_has_a_cost_per_change_the_total_and_the_budgets(tmp_path: Path) -> None:
    root = training_tree(tmp_path, **{"budget.yaml": BUDGET % (100, "true")})
    out = jsonplan.render(planned(root))  # type: ignore[arg-type]
    job = next(c for c in out["resource_changes"] if c["address"] == "TrainingJob/churn-model")
    assert job["cost"] == {
        "estimate": "4.48",
        "currency": "USD",
        "basis": "maxDuration 30m",
        "hours": "0.5",
        "hourly": "8.96",
        "workers": 2,
    }
    assert all(c["cost"] is None for c in out["resource_changes"] if c is not job)
    assert out["cost"]["estimated"] is True
    assert (out["cost"]["currency"], out["cost"]["total"]) == ("USD", "4.48")
    assert [i["address"] for i in out["cost"]["items"]] == ["TrainingJob/churn-model"]
    assert out["policy"]["evaluated"] is True and out["policy"]["failed"] == []
    (budget,) = out["policy"]["budgets"]
    assert (budget["used"], budget["planned"], budget["amount"], budget["percent"]) == (
        "0.00",
        "4.48",
        "100.00",
        "4.5",
    )


def test_markdown_has_a_cost_table_with_the_total_and_a_budget_table(tmp_path: Path) -> None:
    root = training_tree(tmp_path, **{"budget.yaml": BUDGET % (4, "true")})
    comment = markdown.render(planned(root, allow_over_budget=True))  # type: ignore[arg-type]
    assert "**Estimated cost: 4.48 USD**" in comment
    assert (
        "| TrainingJob/churn-model | 4.48 USD | 8.96 USD | 0.5 | maxDuration 30m, 2 workers |"
        in comment
    )
    assert "| **total** | **4.48 USD** | | | |" in comment
    assert "| Budget/growth-monthly | monthly | 0.00 | 4.48 | 4.00 USD | 112.0% | yes |" in comment
    assert "⚠️ warning: **Budget/growth-monthly** (" in comment
    assert (
        "budget.yaml:5): this plan would exceed the budget (accepted with --allow-over-budget)"
        in comment
    )
    assert comment.index("Estimated cost") < comment.index("<details>")  # kept when cut
