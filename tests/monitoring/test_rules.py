"""The rule generator: what each template, SLO and Budget becomes."""

from __future__ import annotations

import pytest

from providers import rules
from tests.monitoring.samples import ALERT_TEMPLATES, SLI_TEMPLATES, alert, slo


def _by_name(group: dict[str, object]) -> dict[str, dict[str, object]]:
    out = {}
    for rule in group["rules"]:  # type: ignore[attr-defined]
        out[rule.get("record") or rule["alert"]] = rule
    return out


def test_the_workbook_numbers_for_a_30_day_window() -> None:
    got = [(b.alert, b.short, b.long, b.factor) for b in rules.burn_rates(30 * 86400)]
    assert got == [
        ("page", 300, 3600, 14.4),
        ("page", 1800, 21600, 6.0),
        ("ticket", 7200, 86400, 3.0),
        ("ticket", 21600, 259200, 1.0),
    ]


def test_a_28_day_window_scales_the_windows_by_28_over_30_and_keeps_the_factors() -> None:
    got = [(b.short, b.long, b.factor) for b in rules.burn_rates(28 * 86400)]
    minutes = [(s // 60, lg // 60, f) for s, lg, f in got]
    # 5m*28/30 = 4.67m -> 5m; 1h -> 56m; 30m -> 28m; 6h -> 336m; 2h -> 112m; 1d -> 1344m; 3d -> 4032m
    assert minutes == [(5, 56, 14.4), (28, 336, 6.0), (112, 1344, 3.0), (336, 4032, 1.0)]


def test_slo_rules_for_30d_record_every_workbook_window_and_alert_on_both_windows() -> None:
    address, doc = slo("checkout", SLI_TEMPLATES["custom"], objective=99.9, window="30d")
    group = rules.rule_group(address, doc)
    by_name = _by_name(group)
    for window in ("5m", "30m", "1h", "2h", "6h", "1d", "3d"):
        record = by_name[f"pipeform_slo:sli_error:ratio_rate{window}"]
        assert record["labels"] == {"pipeform_address": "SLO/checkout", "slo": "checkout"}
        assert f"[{window}]" in str(record["expr"])
    page = str(by_name["CheckoutFastBurn"]["expr"])
    assert 'pipeform_slo:sli_error:ratio_rate5m{slo="checkout"} > (14.4 * 0.001)' in page
    assert 'pipeform_slo:sli_error:ratio_rate1h{slo="checkout"} > (14.4 * 0.001)' in page
    assert 'pipeform_slo:sli_error:ratio_rate6h{slo="checkout"} > (6 * 0.001)' in page
    ticket = str(by_name["CheckoutSlowBurn"]["expr"])
    assert "ratio_rate2h" in ticket and "ratio_rate1d" in ticket and "(3 * 0.001)" in ticket
    assert "ratio_rate3d" in ticket and "(1 * 0.001)" in ticket
    assert by_name["CheckoutFastBurn"]["labels"]["severity"] == "critical"  # type: ignore[index]
    assert by_name["CheckoutSlowBurn"]["labels"]["severity"] == "warning"  # type: ignore[index]
    assert by_name["pipeform_slo:error_budget:ratio"]["expr"] == "vector(0.001)"
    assert by_name["pipeform_slo:objective:ratio"]["expr"] == "vector(0.999)"
    assert "pipeform_slo:sli_error:ratio_rate30d" in by_name


def test_slo_severities_come_from_the_spec() -> None:
    address, doc = slo("x", SLI_TEMPLATES["custom"], pageSeverity="warning", ticketSeverity="info")
    by_name = _by_name(rules.rule_group(address, doc))
    assert by_name["XFastBurn"]["labels"]["severity"] == "warning"  # type: ignore[index]
    assert by_name["XSlowBurn"]["labels"]["severity"] == "info"  # type: ignore[index]


def test_custom_sli_substitutes_the_window_and_needs_the_placeholder() -> None:
    ratio = rules.sli_error_ratio(SLI_TEMPLATES["custom"], 3600)
    assert ratio == (
        '1 - ((sum(rate(http_requests_total{code!~"5.."}[1h]))) / '
        "(sum(rate(http_requests_total[1h]))))"
    )
    with pytest.raises(rules.RuleError, match=r"sli.good must contain \{\{window\}\}"):
        rules.sli_error_ratio(
            {"good": "sum(rate(a[5m]))", "total": "sum(rate(b[{{window}}]))"}, 300
        )


def test_sli_templates_measure_the_documented_metrics() -> None:
    success = rules.sli_error_ratio(SLI_TEMPLATES["training-success-rate"], 300)
    assert (
        'pipeform_training_runs_total{pipeform_job="expense-model",result!="succeeded"}[5m]'
        in success
    )
    assert "or vector(0)" in success  # no failures at all is a ratio of 0, not no data
    fresh = rules.sli_error_ratio(SLI_TEMPLATES["data-freshness"], 3600)
    assert fresh == (
        "avg_over_time((min(time() - pipeform_dataset_last_snapshot_timestamp_seconds"
        '{dataset="expenses"}) > bool 21600)[1h:30s])'
    )
    latency = rules.sli_error_ratio(SLI_TEMPLATES["registration-latency"], 86400)
    assert "pipeform_registration_duration_seconds" in latency and "> bool 1800)[1d:12m]" in latency


@pytest.mark.parametrize(
    ("template", "expr", "for_"),
    [
        (
            "training-failed",
            'pipeform_training_run_succeeded{pipeform_job="expense-model"} == 0',
            None,
        ),
        (
            "training-not-succeeded",
            'time() - pipeform_training_run_last_success_timestamp_seconds{pipeform_job="expense-model"} > 172800',
            "5m",
        ),
        ("validation-failed", 'pipeform_dataset_validation_failed{dataset="expenses"} == 1', None),
        (
            "data-stale",
            'time() - pipeform_dataset_last_snapshot_timestamp_seconds{dataset="expenses"} > 5400',
            "10m",
        ),
        ("budget-burn", 'pipeform_budget_spent_ratio{budget="monthly"} * 100 >= 90', None),
        ("expr", 'sum(rate(http_requests_total{code=~"5.."}[5m])) > 1', None),
    ],
)
def test_alert_templates(template: str, expr: str, for_: str | None) -> None:
    address, doc = alert("expense-model-failed", ALERT_TEMPLATES[template])
    group = rules.rule_group(address, doc)
    assert group["name"] == "Alert/expense-model-failed"
    first = group["rules"][0]
    assert first["alert"] == "ExpenseModelFailed"
    assert first["expr"] == expr
    assert first.get("for") == for_
    assert first["labels"]["severity"] == "warning"
    assert first["labels"]["pipeform_address"] == "Alert/expense-model-failed"
    assert first["annotations"]["summary"]  # generated when the spec gives none


def test_training_not_succeeded_also_fires_when_the_metric_is_absent_for_the_duration() -> None:
    address, doc = alert("stuck", ALERT_TEMPLATES["training-not-succeeded"])
    absent = rules.rule_group(address, doc)["rules"][1]
    assert absent["expr"] == (
        'absent(pipeform_training_run_last_success_timestamp_seconds{pipeform_job="expense-model"})'
    )
    assert absent["for"] == "2d"


def test_spec_labels_and_annotations_are_kept_and_reserved_labels_refused() -> None:
    address, doc = alert("errors", {**ALERT_TEMPLATES["expr"], "severity": "critical"})
    rule = rules.rule_group(address, doc)["rules"][0]
    assert rule["labels"] == {
        "pipeform_address": "Alert/errors",
        "severity": "critical",
        "team": "growth",
    }
    assert rule["annotations"] == {
        "runbook_url": "https://example.com/rb",
        "summary": "Alert errors fired",
    }
    address, doc = alert("bad", {**ALERT_TEMPLATES["expr"], "labels": {"severity": "x"}})
    with pytest.raises(rules.RuleError, match="set by pipeform"):
        rules.rule_group(address, doc)
    address, doc = alert(
        "bad", {**ALERT_TEMPLATES["expr"], "labels": {"app.kubernetes.io/name": "x"}}
    )
    with pytest.raises(rules.RuleError, match="not a Prometheus label name"):
        rules.rule_group(address, doc)


def test_budget_rules_alert_at_every_threshold() -> None:
    group = rules.budget_rules("Budget/monthly", {"spec": {"thresholds": [100, 50, 80]}})
    assert group["name"] == "Budget/monthly"
    got = [(r["alert"], r["expr"], r["labels"]["severity"]) for r in group["rules"]]
    assert got == [
        ("MonthlyBudgetBurn50", 'pipeform_budget_spent_ratio{budget="monthly"} >= 0.5', "warning"),
        ("MonthlyBudgetBurn80", 'pipeform_budget_spent_ratio{budget="monthly"} >= 0.8', "warning"),
        ("MonthlyBudgetBurn100", 'pipeform_budget_spent_ratio{budget="monthly"} >= 1', "critical"),
    ]


def test_durations_and_names() -> None:
    assert rules.prom_duration("4w") == "28d"
    assert rules.prom_duration(20160 * 60) == "14d"
    assert rules.prom_duration(4032 * 60) == "2d19h12m"
    assert rules.prom_duration(1.5) == "1500ms"
    assert rules.alert_name("expense-model-failed") == "ExpenseModelFailed"
    assert rules.alert_name("9lives") == "Pipeform9lives"
    assert rules.number(14.4 * 0.05) == "0.72"
