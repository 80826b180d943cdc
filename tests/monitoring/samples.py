"""Alert and SLO documents for the monitoring tests, validated as the planner would."""

from __future__ import annotations

from typing import Any

from tests.conformance.cases import document

ALERT_TEMPLATES: dict[str, dict[str, Any]] = {
    "training-failed": {"template": {"type": "training-failed", "job": "expense-model"}},
    "training-not-succeeded": {
        "template": {"type": "training-not-succeeded", "job": "expense-model", "within": "2d"},
        "for": "5m",
    },
    "validation-failed": {"template": {"type": "validation-failed", "dataset": "expenses"}},
    "data-stale": {
        "template": {"type": "data-stale", "dataset": "expenses", "maxAge": "1h30m"},
        "for": "10m",
    },
    "budget-burn": {"template": {"type": "budget-burn", "budget": "monthly", "threshold": 90}},
    "expr": {
        "expr": 'sum(rate(http_requests_total{code=~"5.."}[5m])) > 1',
        "labels": {"team": "growth"},
        "annotations": {"runbook_url": "https://example.com/rb"},
    },
}

SLI_TEMPLATES: dict[str, dict[str, Any]] = {
    "training-success-rate": {
        "template": {"type": "training-success-rate", "job": "expense-model"}
    },
    "data-freshness": {
        "template": {"type": "data-freshness", "dataset": "expenses", "maxAge": "6h"}
    },
    "registration-latency": {
        "template": {"type": "registration-latency", "job": "expense-model", "threshold": "30m"}
    },
    "custom": {
        "good": 'sum(rate(http_requests_total{code!~"5.."}[{{window}}]))',
        "total": "sum(rate(http_requests_total[{{window}}]))",
    },
}


def alert(name: str, spec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return f"Alert/{name}", document("Alert", name, spec)


def slo(
    name: str, sli: dict[str, Any], objective: float = 99, window: str = "30d", **extra: Any
) -> tuple[str, dict[str, Any]]:
    spec = {"sli": sli, "objective": objective, "window": window, **extra}
    return f"SLO/{name}", document("SLO", name, spec)
