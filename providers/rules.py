"""Alert, SLO and Budget documents -> Prometheus rule groups, as plain dicts.

The one rule generator: the prometheus provider writes its groups into rule files, the
Kubernetes provider into PrometheusRule objects. Pure (no I/O) and light (standard library
only), so providers may import it. A document is ``{metadata, spec}`` as the planner hands
it to providers (camelCase keys, durations as strings such as ``"1h30m"``).

SLOs follow the Google SRE workbook's multi-window, multi-burn-rate alerts, as Sloth
generates them: recording rules ``pipeform_slo:sli_error:ratio_rate<window>{slo}`` for
every window, a page alert and a ticket alert. The workbook's windows are for a 30-day
SLO; for another window W each is scaled by W/30d (rounded to whole minutes) while the
burn-rate factors stay the same, so every alert still fires when the same share of the
error budget has been spent (docs/reference/alerts-and-slos.md has the table).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]

WINDOW_PLACEHOLDER = "{{window}}"
THIRTY_DAYS = 30 * 86400
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+$")
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
RESERVED_LABELS = frozenset({"severity", "pipeform_address"})


class RuleError(ValueError):
    """A document cannot become rules (a custom SLI without the window placeholder...)."""


@dataclass(frozen=True)
class BurnRate:
    """One multi-window burn-rate condition: both windows' error ratios above factor x budget."""

    alert: str  # page | ticket
    short: int  # seconds
    long: int  # seconds
    factor: float


#: The SRE workbook's conditions for a 30-day SLO (table 5-8 / Sloth's defaults).
WORKBOOK: tuple[BurnRate, ...] = (
    BurnRate("page", 5 * 60, 3600, 14.4),
    BurnRate("page", 30 * 60, 6 * 3600, 6.0),
    BurnRate("ticket", 2 * 3600, 86400, 3.0),
    BurnRate("ticket", 6 * 3600, 3 * 86400, 1.0),
)


# --- durations and names -------------------------------------------------------------


def seconds(value: float | int | str) -> float:
    """A duration as the planner writes it (``"1h30m"``) or as seconds -> seconds."""
    if isinstance(value, bool):
        raise RuleError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        return float(value)
    text = value.strip()
    if not _DURATION.fullmatch(text):
        raise RuleError(f"{value!r} is not a duration such as 30s, 10m, 24h or 28d")
    return sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))


def prom_duration(value: float | int | str) -> str:
    """Seconds -> a Prometheus duration (``5h36m``); sub-second parts in milliseconds."""
    total = seconds(value)
    if total <= 0:
        return "0s"
    if total != int(total):
        return f"{round(total * 1000)}ms"
    rest, out = int(total), []
    for unit in ("d", "h", "m", "s"):
        size = int(_UNITS[unit])
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(out)


def alert_name(name: str, suffix: str = "") -> str:
    """``expense-model-failed`` -> ``ExpenseModelFailed`` (a valid Prometheus alert name)."""
    words = re.split(r"[^A-Za-z0-9]+", name)
    camel = "".join(w[:1].upper() + w[1:] for w in words if w)
    if not camel or not camel[0].isalpha():
        camel = "Pipeform" + camel
    return camel + suffix


def number(value: float) -> str:
    """A float as PromQL writes it: 80.0 -> 80, 0.05 -> 0.05 (no binary noise)."""
    return format(round(value, 12), ".12g")


def quote(value: str) -> str:
    """A PromQL string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def selector(metric: str, **labels: str) -> str:
    inside = ",".join(f"{k}={quote(v)}" for k, v in labels.items())
    return f"{metric}{{{inside}}}"


def burn_rates(window: float) -> tuple[BurnRate, ...]:
    """The workbook's conditions with windows scaled by window/30d (whole minutes, >= 1m)."""
    scale = window / THIRTY_DAYS

    def scaled(s: int) -> int:
        return max(60, round(s * scale / 60) * 60)

    return tuple(BurnRate(b.alert, scaled(b.short), scaled(b.long), b.factor) for b in WORKBOOK)


# --- documents -----------------------------------------------------------------------


def _spec(document: JSON) -> JSON:
    spec = document.get("spec")
    return spec if isinstance(spec, dict) else {}


def _name(address: str) -> tuple[str, str]:
    kind, _, name = address.partition("/")
    if not name:
        raise RuleError(f"{address!r} is not a Kind/name address")
    return kind, name


def rule_group(address: str, document: JSON) -> JSON:
    """The rule group of one Alert, SLO or Budget: ``{"name": address, "rules": [...]}``."""
    kind, _ = _name(address)
    if kind == "Alert":
        return {"name": address, "rules": alert_rules(address, document)}
    if kind == "SLO":
        return {"name": address, "rules": slo_rules(address, document)}
    if kind == "Budget":
        return budget_rules(address, document)
    raise RuleError(f"{kind} documents do not become Prometheus rules")


def rules_file(groups: list[JSON]) -> JSON:
    """A Prometheus rules file's content: ``{"groups": [...]}``."""
    return {"groups": list(groups)}


def check_labels(labels: JSON, where: str) -> list[str]:
    """Problems with user-given rule labels: invalid names, names the generator sets."""
    problems = []
    for key in labels:
        if not _LABEL_NAME.fullmatch(key) or key.startswith("__"):
            problems.append(
                f"{where} label {key!r} is not a Prometheus label name "
                "(letters, digits and '_', not starting with a digit or '__')"
            )
        elif key in RESERVED_LABELS:
            problems.append(f"{where} label {key!r} is set by pipeform; use spec.severity instead")
    return problems


# --- Alert ---------------------------------------------------------------------------


def _template_rules(template: JSON, for_: float) -> tuple[list[JSON], str]:
    """(rules without name/labels/annotations, default summary) of an alert template."""
    kind = template.get("type")
    if kind == "training-failed":
        job = template["job"]
        expr = selector("pipeform_training_run_succeeded", pipeform_job=job) + " == 0"
        return [{"expr": expr, "for": for_}], f"TrainingJob {job}: the last run did not succeed"
    if kind == "training-not-succeeded":
        job, within = template["job"], seconds(template["within"])
        metric = selector("pipeform_training_run_last_success_timestamp_seconds", pipeform_job=job)
        return [
            {"expr": f"time() - {metric} > {number(within)}", "for": for_},
            # never succeeded (or no metrics at all) for as long counts too
            {
                "expr": f"absent({metric})",
                "for": max(within, for_),
                "labels": {"pipeform_condition": "absent"},
            },
        ], f"TrainingJob {job} has not succeeded for {prom_duration(within)}"
    if kind == "validation-failed":
        dataset = template["dataset"]
        expr = selector("pipeform_dataset_validation_failed", dataset=dataset) + " == 1"
        return [{"expr": expr, "for": for_}], f"Dataset {dataset} failed validation"
    if kind == "data-stale":
        dataset, max_age = template["dataset"], seconds(template["maxAge"])
        metric = selector("pipeform_dataset_last_snapshot_timestamp_seconds", dataset=dataset)
        return [
            {"expr": f"time() - {metric} > {number(max_age)}", "for": for_}
        ], f"Dataset {dataset}: the newest snapshot is older than {prom_duration(max_age)}"
    if kind == "budget-burn":
        budget, threshold = template["budget"], float(template.get("threshold", 80.0))
        metric = selector("pipeform_budget_spent_ratio", budget=budget)
        return [
            {"expr": f"{metric} * 100 >= {number(threshold)}", "for": for_}
        ], f"Budget {budget} is {number(threshold)}% spent"
    raise RuleError(f"unknown alert template {kind!r}")


def alert_rules(address: str, document: JSON) -> list[JSON]:
    """The alerting rules of an Alert document."""
    _, name = _name(address)
    spec = _spec(document)
    for_ = seconds(spec.get("for") or 0)
    template = spec.get("template")
    if template:
        bodies, summary = _template_rules(template, for_)
    elif spec.get("expr"):
        bodies, summary = [{"expr": str(spec["expr"]).strip(), "for": for_}], f"Alert {name} fired"
    elif spec.get("cloudwatch"):
        raise RuleError(
            f"{address}: spec.cloudwatch is a CloudWatch alarm, which the aws provider makes: "
            "set spec.provider: aws (Prometheus rules take a template or an expr)"
        )
    else:
        raise RuleError(f"{address} has neither a template nor an expr")
    user_labels = dict(spec.get("labels") or {})
    problems = check_labels(user_labels, f"{address}: spec.labels")
    if problems:
        raise RuleError("; ".join(problems))
    labels = {**user_labels, "severity": spec.get("severity") or "warning"}
    labels["pipeform_address"] = address
    annotations = {"summary": summary, **dict(spec.get("annotations") or {})}
    return [
        _alert(
            alert_name(name),
            body["expr"],
            body["for"],
            {**labels, **body.get("labels", {})},
            annotations,
        )
        for body in bodies
    ]


def _alert(name: str, expr: str, for_: float, labels: JSON, annotations: JSON) -> JSON:
    rule: JSON = {"alert": name, "expr": expr}
    if for_ > 0:
        rule["for"] = prom_duration(for_)
    rule["labels"] = dict(sorted(labels.items()))
    rule["annotations"] = dict(sorted(annotations.items()))
    return rule


# --- SLO -----------------------------------------------------------------------------


def _subquery_step(window: int) -> str:
    """Resolution of the time-based SLIs' subqueries: about 120 points per window, >= 10s."""
    return prom_duration(max(10, window // 120))


def sli_error_ratio(sli: JSON, window: int) -> str:
    """PromQL for the SLI's error ratio (0..1) over one window (seconds)."""
    w = prom_duration(window)
    template = sli.get("template")
    if not template:
        good, total = sli.get("good"), sli.get("total")
        if not good or not total:
            raise RuleError("a custom SLI needs both good and total")
        for what, expr in (("good", good), ("total", total)):
            if WINDOW_PLACEHOLDER not in expr:
                raise RuleError(
                    f"sli.{what} must contain {WINDOW_PLACEHOLDER} where the window goes, "
                    f"such as sum(rate(http_requests_total[{WINDOW_PLACEHOLDER}]))"
                )
        good, total = (e.replace(WINDOW_PLACEHOLDER, w).strip() for e in (good, total))
        return f"1 - (({good}) / ({total}))"
    kind = template.get("type")
    if kind == "training-success-rate":
        job = template["job"]
        runs = "pipeform_training_runs_total"
        errors = f'{runs}{{pipeform_job={quote(job)},result!="succeeded"}}'
        return (
            f"(sum(increase({errors}[{w}])) or vector(0))\n"
            f"/\nsum(increase({selector(runs, pipeform_job=job)}[{w}]))"
        )
    step = _subquery_step(window)
    if kind == "data-freshness":
        metric = selector(
            "pipeform_dataset_last_snapshot_timestamp_seconds", dataset=template["dataset"]
        )
        limit = number(seconds(template["maxAge"]))
        return f"avg_over_time((min(time() - {metric}) > bool {limit})[{w}:{step}])"
    if kind == "registration-latency":
        metric = selector("pipeform_registration_duration_seconds", pipeform_job=template["job"])
        limit = number(seconds(template["threshold"]))
        return f"avg_over_time((max({metric}) > bool {limit})[{w}:{step}])"
    raise RuleError(f"unknown SLI template {kind!r}")


def error_ratio_metric(window: int) -> str:
    return f"pipeform_slo:sli_error:ratio_rate{prom_duration(window)}"


def slo_rules(address: str, document: JSON) -> list[JSON]:
    """Recording rules for every window, the period's budget figures, page and ticket alerts."""
    _, name = _name(address)
    spec = _spec(document)
    objective = float(spec["objective"])
    if not 0 < objective < 100:
        raise RuleError(f"{address}: objective {objective} must lie between 0 and 100")
    budget = 1 - objective / 100
    period = int(seconds(spec.get("window") or 28 * 86400))
    conditions = burn_rates(period)
    windows = sorted({w for b in conditions for w in (b.short, b.long)})
    labels = {"pipeform_address": address, "slo": name}
    sli = spec.get("sli") or {}
    rules: list[JSON] = [
        {"record": error_ratio_metric(w), "expr": sli_error_ratio(sli, w), "labels": dict(labels)}
        for w in windows
    ]
    rules += _budget_records(name, labels, objective, budget, period, windows[0])
    summary = (
        spec.get("description") or f"SLO {name}: {number(objective)}% over {prom_duration(period)}"
    )
    for alert, severity, suffix, speed in (
        ("page", spec.get("pageSeverity") or "critical", "FastBurn", "fast (page)"),
        ("ticket", spec.get("ticketSeverity") or "warning", "SlowBurn", "steadily (ticket)"),
    ):
        expr = "\nor\n".join(
            _burn_condition(name, b, budget) for b in conditions if b.alert == alert
        )
        rules.append(
            _alert(
                alert_name(name, suffix),
                expr,
                0,
                {**labels, "severity": severity, "slo_alert": alert},
                {
                    "summary": f"SLO {name} is burning its error budget {speed}",
                    "description": summary,
                },
            )
        )
    return rules


def _burn_condition(name: str, burn: BurnRate, budget: float) -> str:
    threshold = f"({number(burn.factor)} * {number(budget)})"
    short = selector(error_ratio_metric(burn.short), slo=name)
    long = selector(error_ratio_metric(burn.long), slo=name)
    return f"(\n  {short} > {threshold}\n  and\n  {long} > {threshold}\n)"


def _budget_records(
    name: str, labels: JSON, objective: float, budget: float, period: int, shortest: int
) -> list[JSON]:
    """The objective, the error budget, the period's error ratio and the budget left."""
    base = selector(error_ratio_metric(shortest), slo=name)
    p = prom_duration(period)
    period_ratio = f"pipeform_slo:sli_error:ratio_rate{p}"
    return [
        {
            "record": "pipeform_slo:objective:ratio",
            "expr": f"vector({number(objective / 100)})",
            "labels": dict(labels),
        },
        {
            "record": "pipeform_slo:error_budget:ratio",
            "expr": f"vector({number(budget)})",
            "labels": dict(labels),
        },
        {
            "record": period_ratio,
            "expr": f"sum_over_time({base}[{p}]) / count_over_time({base}[{p}])",
            "labels": dict(labels),
        },
        {
            "record": "pipeform_slo:error_budget_remaining:ratio",
            "expr": f"1 - {selector(period_ratio, slo=name)} / {number(budget)}",
            "labels": dict(labels),
        },
    ]


# --- Budget --------------------------------------------------------------------------


def budget_rules(address: str, document: JSON) -> JSON:
    """One alert per threshold of a Budget (``pipeform_budget_spent_ratio >= t/100``):
    warning below 100%, critical from 100%. Returns the group ``{"name", "rules"}``."""
    _, name = _name(address)
    spec = _spec(document)
    metric = selector("pipeform_budget_spent_ratio", budget=name)
    rules = []
    for threshold in sorted(float(t) for t in spec.get("thresholds") or (50, 80, 100)):
        pct = number(threshold)
        rules.append(
            _alert(
                alert_name(name, f"BudgetBurn{pct.replace('.', '_')}"),
                f"{metric} >= {number(threshold / 100)}",
                0,
                {
                    "pipeform_address": address,
                    "severity": "critical" if threshold >= 100 else "warning",
                    "threshold": pct,
                },
                {"summary": f"Budget {name} is {pct}% spent ({spec.get('period', 'monthly')})"},
            )
        )
    return {"name": address, "rules": rules}
