"""promtool accepts every generated rules file, and its unit tests fire the SLO alerts.

``promtool check rules`` runs on files holding every Alert template, every SLI template
(28d and 30d windows), custom PromQL and Budget rules. ``promtool test rules`` feeds
synthetic run counters to the generated SLO rules: an error ratio above 14.4 x budget
pages, one between 1 x and 3 x budget only opens a ticket, one below budget stays silent.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from providers import rules
from providers.base import ApplyRequest, ResourceContext
from providers.prometheus import PrometheusProvider
from providers.prometheus.rulesfile import RulesFile, render
from tests.monitoring.samples import ALERT_TEMPLATES, SLI_TEMPLATES, alert, slo

LINEAGE = "11111111-1111-4111-8111-111111111111"


def _apply(root: Path, documents: list[tuple[str, dict[str, Any]]]) -> Path:
    """Write the documents' groups through the provider (which runs promtool itself)."""
    provider = PrometheusProvider({"workspace": {"name": "t"}}, root)
    for address, doc in documents:
        ctx = ResourceContext.of(address, LINEAGE, root)
        provider.create(ApplyRequest(ctx, doc, None, {}, None, {}))
    return provider.path


def _check(promtool: str, path: Path) -> str:
    done = subprocess.run(
        [promtool, "check", "rules", "--lint-fatal", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_every_template_and_sli_passes_promtool_check(promtool: str, tmp_path: Path) -> None:
    documents = [alert(f"a-{name}", spec) for name, spec in ALERT_TEMPLATES.items()]
    for window in ("28d", "30d", "7d"):
        documents += [
            slo(f"s-{name}-{window}", sli, objective=99.5, window=window)
            for name, sli in SLI_TEMPLATES.items()
        ]
    written = RulesFile()
    for address, doc in documents:  # the file exactly as the provider renders it
        written.put(rules.rule_group(address, doc), LINEAGE)
    path = tmp_path / "all.rules.yml"
    path.write_text(render(written, "t"))
    out = _check(promtool, path)
    expected = sum(len(g["rules"]) for g in written.groups)
    assert f"SUCCESS: {expected} rules found" in out


def test_budget_rules_pass_promtool_check(promtool: str, tmp_path: Path) -> None:
    path = tmp_path / "budget.rules.yml"
    group = rules.budget_rules("Budget/monthly", {"spec": {"thresholds": [50, 80, 100, 150]}})
    path.write_text(json.dumps({"groups": [group]}))
    assert "SUCCESS: 4 rules found" in _check(promtool, path)


def _series(job: str, failed_per_min: int, succeeded_per_min: int) -> list[dict[str, str]]:
    def counter(result: str, step: int) -> dict[str, str]:
        labels = f'pipeform_job="{job}",result="{result}",job="pipeform_trainer"'
        return {"series": f"pipeform_training_runs_total{{{labels}}}", "values": f"0+{step}x130"}

    return [counter("failed", failed_per_min), counter("succeeded", succeeded_per_min)]


def _expected(name: str, kind: str, severity: str) -> dict[str, Any]:
    speed = "fast (page)" if kind == "page" else "steadily (ticket)"
    return {
        "exp_labels": {
            "pipeform_address": f"SLO/{name}",
            "slo": name,
            "severity": severity,
            "slo_alert": kind,
        },
        "exp_annotations": {
            "summary": f"SLO {name} is burning its error budget {speed}",
            "description": f"SLO {name}: 95% over 30d",
        },
    }


def _unit_test(
    promtool: str, tmp_path: Path, series: list[dict[str, str]], tests: list[Any]
) -> None:
    path = _apply(tmp_path, [slo("runs", SLI_TEMPLATES["training-success-rate"], objective=95)])
    spec = {
        "rule_files": [str(path)],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": tests}],
    }
    test_file = tmp_path / "slo_test.yml"
    test_file.write_text(json.dumps(spec))
    done = subprocess.run(
        [promtool, "test", "rules", str(test_file)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_an_error_ratio_above_14_4_budgets_pages_from_the_second_sample(
    promtool: str, tmp_path: Path
) -> None:
    # 90% of runs fail: 0.9 > 14.4 x 0.05 = 0.72 on both the 5m and the 1h window
    page = _expected("runs", "page", "critical")
    _unit_test(
        promtool,
        tmp_path,
        _series("expense-model", 9, 1),
        [
            {"eval_time": "0m", "alertname": "RunsFastBurn", "exp_alerts": []},  # one sample
            {"eval_time": "1m", "alertname": "RunsFastBurn", "exp_alerts": [page]},
            {"eval_time": "2h", "alertname": "RunsFastBurn", "exp_alerts": [page]},
        ],
    )


def test_an_error_ratio_between_1_and_3_budgets_opens_a_ticket_and_does_not_page(
    promtool: str, tmp_path: Path
) -> None:
    # 10% of runs fail: above 1 x 0.05 (6h/3d ticket), below 3 x 0.05, 6 x and 14.4 x
    ticket = _expected("runs", "ticket", "warning")
    _unit_test(
        promtool,
        tmp_path,
        _series("expense-model", 1, 9),
        [
            {"eval_time": "10m", "alertname": "RunsFastBurn", "exp_alerts": []},
            {"eval_time": "2h", "alertname": "RunsFastBurn", "exp_alerts": []},
            {"eval_time": "10m", "alertname": "RunsSlowBurn", "exp_alerts": [ticket]},
        ],
    )


def test_an_error_ratio_within_budget_stays_silent(promtool: str, tmp_path: Path) -> None:
    # 2% of runs fail: within the 5% budget, so no burn rate is above 1
    _unit_test(
        promtool,
        tmp_path,
        _series("expense-model", 1, 49),
        [
            {"eval_time": "2h", "alertname": "RunsFastBurn", "exp_alerts": []},
            {"eval_time": "2h", "alertname": "RunsSlowBurn", "exp_alerts": []},
        ],
    )


def test_a_failed_training_run_fires_the_training_failed_alert(
    promtool: str, tmp_path: Path
) -> None:
    path = _apply(tmp_path, [alert("expense-model-failed", ALERT_TEMPLATES["training-failed"])])
    labels = 'pipeform_job="expense-model",job="pipeform_trainer"'
    spec = {
        "rule_files": [str(path)],
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": f"pipeform_training_run_succeeded{{{labels}}}", "values": "1 1 0 0"}
                ],
                "alert_rule_test": [
                    {"eval_time": "1m", "alertname": "ExpenseModelFailed", "exp_alerts": []},
                    {
                        "eval_time": "2m",
                        "alertname": "ExpenseModelFailed",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "pipeform_job": "expense-model",
                                    "job": "pipeform_trainer",
                                    "severity": "warning",
                                    "pipeform_address": "Alert/expense-model-failed",
                                },
                                "exp_annotations": {
                                    "summary": "TrainingJob expense-model: the last run did not succeed"
                                },
                            }
                        ],
                    },
                ],
            }
        ],
    }
    test_file = tmp_path / "alert_test.yml"
    test_file.write_text(json.dumps(spec))
    done = subprocess.run(
        [promtool, "test", "rules", str(test_file)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
