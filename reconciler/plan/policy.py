"""Plan-time policy: budgets, quotas and required labels, judged against a plan's changes.

``evaluate`` returns a ``PolicyReport`` (kept in the plan, rendered by every renderer);
``enforce`` turns its errors into diagnostics, all at once, for the CLI to refuse with.

- Budgets: spend so far in the current period (the recorded actual cost of the runs of
  every TrainingJob in state whose labels match the budget's scope) plus the estimates
  of the planned training changes in scope. Over the amount with ``enforce: true`` is an
  error unless ``--allow-over-budget`` (then a warning); thresholds crossed are warnings.
- Quotas: a TrainingJob asking for more GPUs, CPU or memory (per worker x workers x
  nodes) than its Quota allows, or a gpuType the Quota does not list, is an error.
- Required labels: every resource must carry the Workspace's ``policy.requiredLabels``
  (its own labels with the Workspace's default labels).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from typing import Any

from reconciler.diagnostics import Diagnostic, Diagnostics, PipeformError, Position, Severity
from reconciler.kinds.quantities import format_cpu, format_memory
from reconciler.kinds.reads import QuotaRead, TrainingJobRead
from reconciler.plan import cost
from reconciler.plan.model import (
    MONEY_CONTEXT,
    Action,
    BudgetStatus,
    Plan,
    PolicyFinding,
    PolicyReport,
    ResourceChange,
    cents,
)
from reconciler.spec.checks import CheckedTree
from reconciler.spec.loader import LoadedDocument
from reconciler.state.model import State

OVERRIDE = "--allow-over-budget"


def evaluate(
    checked: CheckedTree,
    state: State,
    changes: list[ResourceChange],
    allow_over_budget: bool = False,
    at: datetime | None = None,
) -> PolicyReport:
    """Every policy verdict for the changes of a plan (deletes are never judged)."""
    kept = [
        (c, checked.tree.documents[c.address])
        for c in changes
        if c.action is not Action.DELETE and c.address in checked.tree.documents
    ]
    findings: list[PolicyFinding] = []
    passed: list[dict[str, str]] = []
    labels_ok = required_labels(checked, kept, findings)
    if checked.tree.workspace.spec.policy.required_labels and labels_ok:
        passed.append({"rule": "required-labels", "address": "Workspace/" + _ws_name(checked)})
    passed += quotas(checked, kept, findings)
    budgets = budget_statuses(checked, state, changes, at or datetime.now(UTC))
    for status in budgets:
        before = len(findings)
        findings += budget_findings(checked, status, allow_over_budget)
        if len(findings) == before or all(f.severity == "warning" for f in findings[before:]):
            passed.append({"rule": "budget", "address": status.address})
    return PolicyReport(budgets, findings, passed, allow_over_budget)


def _ws_name(checked: CheckedTree) -> str:
    return str(checked.tree.workspace.metadata.name)


def _finding(
    rule: str, severity: str, address: str, message: str, hint: str, where: Position | None
) -> PolicyFinding:
    return PolicyFinding(
        rule,
        severity,
        address,
        message,
        hint,
        where.file if where else None,
        where.line if where else None,
        where.column if where else None,
    )


# -- required labels ---------------------------------------------------------------------


def required_labels(
    checked: CheckedTree,
    changes: Iterable[tuple[ResourceChange, LoadedDocument]],
    findings: list[PolicyFinding],
) -> bool:
    """One error per resource missing any required label; True when none is missing."""
    required = checked.tree.workspace.spec.policy.required_labels
    if not required:  # the common case: no rule, nothing to look at
        return True
    defaults = checked.tree.workspace.spec.defaults.labels
    ok = True
    for change, loaded in changes:
        labels = {**defaults, **loaded.facts.labels}
        missing = [k for k in required if k not in labels]
        if not missing:
            continue
        ok = False
        names = ", ".join(missing)
        findings.append(
            _finding(
                "required-labels",
                "error",
                change.address,
                f"missing required label{'s' if len(missing) > 1 else ''} {names} "
                "(the Workspace's spec.policy.requiredLabels)",
                f"add {names} under metadata.labels, or to the Workspace's spec.defaults.labels",
                loaded.position(("metadata", "labels")),
            )
        )
    return ok


# -- quotas ------------------------------------------------------------------------------


def quotas(
    checked: CheckedTree,
    changes: Iterable[tuple[ResourceChange, LoadedDocument]],
    findings: list[PolicyFinding],
) -> list[dict[str, str]]:
    """Errors for TrainingJobs asking more than their Quota allows; the jobs that pass."""
    passed = []
    defaults = checked.tree.workspace.spec.defaults.resources
    for change, loaded in changes:
        if loaded.facts.kind != "TrainingJob":
            continue
        job = loaded.training_job()
        if not job.spec.quota:
            continue
        quota_doc = checked.tree.documents.get(f"Quota/{job.spec.quota}")
        if quota_doc is None or quota_doc.facts.kind != "Quota":
            continue  # an unknown reference is a validation error already
        problems = quota_problems(job, quota_doc.quota(), cost.job_shape(job, defaults))
        for field, message, hint in problems:
            findings.append(
                _finding(
                    "quota",
                    "error",
                    change.address,
                    message,
                    hint,
                    loaded.position(("spec", "resources", field)),
                )
            )
        if not problems:
            passed.append({"rule": "quota", "address": change.address})
    return passed


def quota_problems(
    job: TrainingJobRead, quota: QuotaRead, shape: cost.Shape
) -> list[tuple[str, str, str]]:
    """(resources field, message, hint) for each limit the job's total ask breaks."""
    q, name = quota.spec, f"Quota/{quota.metadata.name}"
    n = shape.replicas
    layout = f"per worker x {shape.workers} worker{'s' if shape.workers != 1 else ''} x {shape.nodes} node{'s' if shape.nodes != 1 else ''}"
    fix = "lower spec.resources or spec.distributed (workers, nodes), or raise the Quota's {0}"
    out = []
    if q.gpus is not None and shape.gpus * n > q.gpus:
        out.append(
            (
                "gpus",
                f"asks for {shape.gpus * n} GPUs ({shape.gpus} {layout}), more than {name} allows ({q.gpus})",
                fix.format("gpus"),
            )
        )
    if (
        q.gpu_types is not None
        and shape.gpus
        and shape.gpu_type
        and shape.gpu_type not in q.gpu_types
    ):
        allowed = ", ".join(q.gpu_types) or "none"
        out.append(
            (
                "gpuType",
                f"asks for gpuType {shape.gpu_type}, which {name} does not allow (allowed: {allowed})",
                "pick one of the allowed types, or add it to the Quota's gpuTypes",
            )
        )
    if q.cpu is not None and shape.cpu * n > q.cpu:
        out.append(
            (
                "cpu",
                f"asks for {format_cpu(shape.cpu * n)} CPU cores ({format_cpu(shape.cpu)} {layout}), "
                f"more than {name} allows ({format_cpu(q.cpu)})",
                fix.format("cpu"),
            )
        )
    memory = int(shape.memory_gib * cost.GIB)
    if q.memory is not None and memory * n > q.memory:
        out.append(
            (
                "memory",
                f"asks for {format_memory(memory * n)} of memory ({format_memory(memory)} {layout}), "
                f"more than {name} allows ({format_memory(q.memory)})",
                fix.format("memory"),
            )
        )
    return out


# -- budgets -----------------------------------------------------------------------------


def period_bounds(period: str, at: datetime) -> tuple[datetime, datetime]:
    """The UTC period holding ``at``: [start, end). Weeks start on Monday (ISO 8601)."""
    at = at.astimezone(UTC)
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "daily":
        return day, day + timedelta(days=1)
    if period == "weekly":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    if period == "yearly":
        start = day.replace(month=1, day=1)
        return start, start.replace(year=start.year + 1)
    months = 3 if period == "quarterly" else 1
    first = ((day.month - 1) // months) * months + 1
    start = day.replace(month=first, day=1)
    month = start.month - 1 + months
    return start, start.replace(year=start.year + month // 12, month=month % 12 + 1)


def _matches(selector: Mapping[str, str], labels: Any) -> bool:
    labels = labels if isinstance(labels, Mapping) else {}
    return all(labels.get(k) == v for k, v in selector.items())


def _finished_at(run: Mapping[str, Any]) -> datetime | None:
    text = run.get("finishedAt")
    if not isinstance(text, str):
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def spend(
    state: State,
    selector: Mapping[str, str],
    currency: str,
    start: datetime,
    end: datetime,
    prices: cost.Prices,
) -> Decimal:
    """Recorded actual cost of runs in scope that finished in [start, end).

    A run recorded before costs were (no ``cost``) is priced now, at today's prices, when
    the currencies agree."""
    total = Decimal(0)
    for resource in state.resources.values():
        if resource.kind != "TrainingJob":
            continue
        if not _matches(selector, (resource.spec.get("metadata") or {}).get("labels")):
            continue
        runs = resource.outputs.get("runs")
        for run in runs if isinstance(runs, list) else []:
            when = _finished_at(run) if isinstance(run, Mapping) else None
            if when is None or not start <= when < end:
                continue
            amount = cost.recorded_cost(run, currency)
            if amount is None and "cost" not in run and prices.currency == currency:
                amount = cost.run_cost(run, prices)
            total += amount or 0
    return total


def budget_statuses(
    checked: CheckedTree, state: State, changes: list[ResourceChange], at: datetime
) -> list[BudgetStatus]:
    prices = cost.Prices.of(checked.tree.workspace)
    out = []
    for address, loaded in sorted(checked.tree.documents.items()):
        if loaded.facts.kind == "Budget":
            with localcontext(MONEY_CONTEXT):
                out.append(_budget_status(address, loaded, state, changes, at, prices))
    return out


def _budget_status(
    address: str,
    loaded: LoadedDocument,
    state: State,
    changes: list[ResourceChange],
    at: datetime,
    prices: cost.Prices,
) -> BudgetStatus:
    """One Budget's standing: spent this period, planned, and the share of its amount."""
    spec = loaded.budget().spec
    start, end = period_bounds(spec.period, at)
    used = spend(state, spec.scope.labels, spec.currency, start, end, prices)
    planned = sum(
        (
            Decimal(c.cost.amount)
            for c in changes
            if c.cost is not None
            and c.cost.currency == spec.currency
            and _matches(spec.scope.labels, (c.after or {}).get("metadata", {}).get("labels"))
        ),
        Decimal(0),
    )
    total = used + planned
    percent = total / spec.amount * 100 if spec.amount else None
    crossed = [t for t in spec.thresholds if percent is not None and percent >= Decimal(str(t))]
    return BudgetStatus(
        address=address,
        amount=str(spec.amount),
        currency=spec.currency,
        period=spec.period,
        period_start=start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        period_end=end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        used=cost.amount_text(used),
        planned=cost.amount_text(planned),
        percent=str(percent.quantize(Decimal("0.1"))) if percent is not None else None,
        enforce=spec.enforce,
        over=total > spec.amount,
        thresholds_crossed=crossed,
    )


def budget_findings(
    checked: CheckedTree, status: BudgetStatus, allow_over_budget: bool
) -> list[PolicyFinding]:
    """What a budget's standing says about this plan: an error, a warning or nothing."""
    loaded = checked.tree.documents[status.address]
    pricing = checked.tree.workspace.spec.pricing.currency
    where = loaded.position(("spec", "amount"))
    if status.currency != pricing:
        return [
            _finding(
                "budget",
                "error" if status.enforce else "warning",
                status.address,
                f"is in {status.currency} but the Workspace's pricing is in {pricing}, so "
                "estimates cannot be counted against it",
                "write both in the same currency",
                loaded.position(("spec", "currency")),
            )
        ]
    amounts = (
        f"used {cents(status.used)} + planned {cents(status.planned)} = "
        f"{cents(MONEY_CONTEXT.add(Decimal(status.used), Decimal(status.planned)))} {status.currency} of "
        f"{status.amount} {status.currency} this {_period_noun(status.period)}"
        + (f" ({status.percent}%)" if status.percent is not None else "")
    )
    adds = Decimal(status.planned) > 0

    def one(severity: str, message: str, hint: str = "") -> list[PolicyFinding]:
        return [_finding("budget", severity, status.address, message, hint, where)]

    if status.over and adds and status.enforce and not allow_over_budget:
        return one(
            "error",
            f"this plan would exceed the enforced budget: {amounts}",
            f"raise spec.amount, train less, or run again with {OVERRIDE} to accept it",
        )
    if status.over and adds:
        why = f"accepted with {OVERRIDE}" if status.enforce else "not enforced"
        return one("warning", f"this plan would exceed the budget ({why}): {amounts}")
    if status.over:
        return one("warning", f"is already over: {amounts}")
    if status.thresholds_crossed and adds:
        top = max(status.thresholds_crossed)
        return one(
            "warning",
            f"spend would reach {status.percent}%, past the {top:g}% threshold: {amounts}",
        )
    return []


def _period_noun(period: str) -> str:
    return {
        "daily": "day",
        "weekly": "week",
        "monthly": "month",
        "quarterly": "quarter",
        "yearly": "year",
    }[period]


# -- enforcement -------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    errors: Diagnostics
    warnings: Diagnostics


def diagnostics(report: PolicyReport | None) -> Verdict:
    """The report's findings as diagnostics (errors, warnings), file:line where known."""
    errors, warnings = Diagnostics(), Diagnostics()
    for f in report.findings if report else []:
        where = Position(f.file, f.line or 1, f.column or 1) if f.file else None
        severity = Severity.ERROR if f.severity == "error" else Severity.WARNING
        d = Diagnostic(severity, f.message, where, f.address, f.hint or None)
        (errors if severity is Severity.ERROR else warnings).add(d)
    return Verdict(errors, warnings)


def enforce(plan: Plan) -> None:
    """Raise every policy error of the plan at once (exit 1), or return."""
    verdict = diagnostics(plan.policy)
    if verdict.errors.has_errors:
        raise PipeformError(verdict.errors)
