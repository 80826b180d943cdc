"""A Plan as a JSON document for tools, modelled on ``terraform show -json``.

``render(plan)`` returns a plain dict (JSON-serialisable, deterministic) that CI jobs,
policy engines and dashboards read instead of scraping the text plan. The format is
documented field by field in docs/reference/plan-json.md; ``FORMAT_VERSION`` follows
Terraform's rule: the minor version grows with additions, the major one with breaks.

Sensitive values never leave this module: a field change marked ``sensitive`` and every
path in ``ResourceChange.sensitive_paths`` render as ``"(sensitive)"``. The masking
helpers live in ``reconciler.render.redact``, shared by every renderer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import metadata
from typing import Any

from reconciler.plan.model import (
    Action,
    CostEstimate,
    Drift,
    FieldChange,
    Plan,
    PolicyFinding,
    Reason,
    ResourceChange,
    cents,
)
from reconciler.render.redact import (
    mask_field,
    masked_after,
    masked_before,
    masked_field_changes,
    sensitive_paths,
)

FORMAT_VERSION = "1.4"  # 1.1: cost and policy filled in, per-change "cost"; 1.2: "adopts"; 1.3: "notes"; 1.4: "waiting"

# action_reason values. Where Terraform has a name for the same cause, it is reused, so
# tools written for `terraform show -json` read these without a lookup table.
ACTION_REASONS: dict[Reason, str | None] = {
    Reason.NEW: "create_because_new",
    Reason.INTERRUPTED: "create_because_interrupted",
    Reason.GONE: "create_because_deleted_outside",
    Reason.SPEC_CHANGED: "update_because_spec_changed",
    Reason.INPUT_CHANGED: "update_because_input_changed",
    Reason.DRIFTED: "update_because_changed_outside",
    Reason.REPLACE_BY_FIELDS: "replace_because_cannot_update",
    Reason.REPLACE_REQUESTED: "replace_by_request",
    Reason.TAINTED: "replace_because_tainted",
    Reason.FAILED: "update_because_last_apply_failed",
    Reason.PENDING: "update_because_pending_step",
    Reason.REMOVED: "delete_because_no_resource_config",
    Reason.DESTROY: "delete_because_destroy_requested",
    Reason.NONE: None,
}


def action_reason(reason: Reason) -> str | None:
    """The stable snake_case name of a reason (null when there is none)."""
    if reason in ACTION_REASONS:
        return ACTION_REASONS[reason]
    # A reason added to the plan model before this table learnt it: still stable text.
    return re.sub(r"[^a-z0-9]+", "_", reason.value.lower()).strip("_") or None


def pipeform_version() -> str:
    try:
        return metadata.version("pipeform")
    except metadata.PackageNotFoundError:
        return "unknown"


# -- JSON ------------------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """Plain JSON values, object keys sorted, so equal plans print identically."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _field_changes(fields: list[FieldChange]) -> list[dict[str, Any]]:
    return [
        {
            "path": f.path,
            "before": jsonable(f.before),
            "after": jsonable(f.after),
            "forces_replacement": f.forces_replacement,
            "sensitive": f.sensitive,
        }
        for f in fields
    ]


def resource_change(change: ResourceChange) -> dict[str, Any]:
    """One entry of ``resource_changes``."""
    paths = sensitive_paths(change)
    fields = masked_field_changes(change)
    unknown = [] if change.action is Action.DELETE else change.after_unknown
    after = jsonable(masked_after(change))
    if change.manifests is not None and isinstance(after, dict):
        after = {**after, "manifests": jsonable(change.manifests)}
    return {
        "address": change.address,
        "kind": change.kind,
        "name": change.name,
        "provider": change.provider,
        "change": {
            "actions": change.action.terraform_actions,
            "before": jsonable(masked_before(change)),
            "after": after,
            "after_unknown": {name: True for name in sorted(unknown)},
            "before_sensitive": paths if change.before is not None else [],
            "after_sensitive": paths if change.after is not None else [],
            "replace_paths": [f.path for f in fields if f.forces_replacement],
            "field_changes": _field_changes(fields),
        },
        "action_reason": action_reason(change.reason),
        "reason_detail": change.reason_detail or None,
        "dependencies": sorted(change.dependencies),
        "prevent_destroy": change.prevent_destroy,
        "cost": cost_item(change.cost) if change.cost else None,
        "adopts": change.adopts,
        "waiting": change.waiting,
    }


def cost_item(estimate: CostEstimate) -> dict[str, Any]:
    """One estimate: amounts as decimal strings (cents), hours and the price per hour."""
    return {
        "estimate": cents(estimate.amount),
        "currency": estimate.currency,
        "basis": estimate.basis,
        "hours": estimate.hours,
        "hourly": estimate.hourly,
        "workers": estimate.workers,
    }


def cost(plan: Plan) -> dict[str, Any]:
    """The top-level ``cost`` object: total and one item per training change."""
    if plan.pricing is None:
        return {"estimated": False, "currency": None, "total": None, "items": []}
    currency = next(iter(plan.cost_totals), plan.pricing.get("currency"))
    return {
        "estimated": True,
        "currency": currency,
        "total": cents(plan.cost_totals.get(str(currency), "0")),
        "totals": {c: cents(a) for c, a in plan.cost_totals.items()},
        "items": [
            {"address": c.address, **cost_item(c.cost)} for c in plan.changes if c.cost is not None
        ],
    }


def _finding(f: PolicyFinding) -> dict[str, Any]:
    where = {"filename": f.file, "line": f.line, "column": f.column} if f.file else None
    return {
        "rule": f.rule,
        "severity": f.severity,
        "address": f.address,
        "summary": f.message,
        "detail": f.hint,
        "range": where,
    }


def policy(plan: Plan) -> dict[str, Any]:
    """The top-level ``policy`` object: verdicts, warnings and every budget's standing."""
    report = plan.policy
    if report is None:
        return {"evaluated": False, "passed": [], "failed": []}
    return {
        "evaluated": True,
        "allow_over_budget": report.allow_over_budget,
        "passed": jsonable(report.passed),
        "failed": [_finding(f) for f in report.errors],
        "warnings": [_finding(f) for f in report.warnings],
        "budgets": [
            {
                "address": b.address,
                "amount": b.amount,
                "currency": b.currency,
                "period": b.period,
                "period_start": b.period_start,
                "period_end": b.period_end,
                "used": cents(b.used),
                "planned": cents(b.planned),
                "percent": b.percent,
                "enforce": b.enforce,
                "over": b.over,
                "thresholds_crossed": b.thresholds_crossed,
            }
            for b in report.budgets
        ],
    }


def resource_drift(drift: Drift) -> dict[str, Any]:
    """One entry of ``resource_drift``: how the live object differs from the state."""
    return {
        "address": drift.address,
        "kind": drift.kind,
        "name": drift.address.split("/", 1)[-1],
        "exists": drift.exists,
        "change": {
            "actions": ["update"] if drift.exists else ["delete"],
            "field_changes": _field_changes([mask_field(f) for f in drift.field_changes]),
        },
    }


def render(plan: Plan) -> dict[str, Any]:
    """The whole plan as a JSON-ready dict (see docs/reference/plan-json.md)."""
    return {
        "format_version": FORMAT_VERSION,
        "pipeform_version": pipeform_version(),
        "lineage": plan.lineage,
        "serial": plan.serial,
        "specs_digest": plan.specs_digest,
        "timestamp": plan.created_at,
        "mode": plan.mode,
        "targets": sorted(plan.targets),
        "replace": sorted(plan.replace),
        "resource_changes": [resource_change(c) for c in plan.changes],
        "resource_drift": [resource_drift(d) for d in plan.drift],
        "notes": [{"address": n.address, "note": n.note} for n in plan.notes],
        # "evaluated": false / "estimated": false say that nothing was checked or priced
        # (destroy and refresh-only plans): an empty "failed" list alone would read as a pass.
        "policy": policy(plan),
        "cost": cost(plan),
        "summary": plan.counts(),
        "has_changes": plan.has_changes,
    }
