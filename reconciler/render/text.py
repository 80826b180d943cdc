"""A Plan as terminal text: Terraform-like symbols, changed fields only, reasons, summary,
then the cost of the training it starts, the budgets it counts against and policy warnings
(policy errors are reported as diagnostics by the command)."""

from __future__ import annotations

import json
from typing import Any

from reconciler.plan.model import (
    SENSITIVE,
    Action,
    CostEstimate,
    Drift,
    FieldChange,
    Plan,
    PolicyReport,
    Reason,
    ResourceChange,
    cents,
)
from reconciler.render import redact, words
from reconciler.render.lines import Line

SYMBOLS = {
    Action.CREATE: ("+", "green"),
    Action.UPDATE: ("~", "yellow"),
    Action.DELETE: ("-", "red"),
    Action.DELETE_THEN_CREATE: ("-/+", "magenta"),
    Action.CREATE_THEN_DELETE: ("+/-", "magenta"),
    Action.READ: ("<=", "cyan"),
    Action.NOOP: (" ", "dim"),
}


#: a changed field whose path and values are longer than this shows each value on a line
ONE_LINE = 100


def value(v: Any) -> str:
    """A field value as JSON, whole, object keys sorted (as state records them, so both
    sides of a change read alike)."""
    if v is None:
        return "null"
    if v == SENSITIVE:
        return SENSITIVE
    return json.dumps(v, sort_keys=True, default=str, ensure_ascii=False)


_ABSENT = object()  # the side of a list item that is not there (added or removed)


def field_lines(f: FieldChange, indent: str = "        ") -> list[Line]:
    """One changed field: ``~ path: before -> after``; a list item by item (``+``/``-`` for
    items added or removed); values too long for one line each on their own line."""
    path = f.path.removeprefix("spec.")
    if isinstance(f.before, list) and isinstance(f.after, list):
        size = max(len(f.before), len(f.after))
        items = [
            (
                f"{path}[{i}]",
                f.before[i] if i < len(f.before) else _ABSENT,
                f.after[i] if i < len(f.after) else _ABSENT,
            )
            for i in range(size)
        ]
        items = [(p, b, a) for p, b, a in items if b != a]
    else:
        items = [(path, f.before, f.after)]
    lines: list[Line] = []
    for where, before, after in items:
        lines += _item_lines(where, before, after, indent)
    if f.forces_replacement and lines:
        lines[0].append("  # forces replacement", style="red")
    return lines


def _item_lines(where: str, before: Any, after: Any, indent: str) -> list[Line]:
    if after is _ABSENT:
        return [Line(f"{indent}- {where}: {value(before)}", style="red")]
    if before is _ABSENT:
        return [Line(f"{indent}+ {where}: {value(after)}", style="green")]
    old, new = value(before), value(after)
    if len(where) + len(old) + len(new) <= ONE_LINE:
        line = Line(f"{indent}~ {where}: ", style="yellow")
        line.append(f"{old} -> {new}")
        return [line]
    return [
        Line(f"{indent}~ {where}:", style="yellow"),
        Line(f"{indent}    - {old}", style="red"),
        Line(f"{indent}    + {new}", style="green"),
    ]


def _reason(change: ResourceChange) -> str:
    if change.reason_detail:
        return change.reason_detail
    if change.reason in (Reason.NONE, Reason.NEW):
        return ""
    return change.reason.value


def change_lines(change: ResourceChange, width: int) -> list[Line]:
    symbol, style = SYMBOLS[change.action]
    verb = words.will(change)
    line = Line(f"  {symbol:<3} ", style=style)
    line.append(change.address.ljust(width), style="bold")
    line.append(f"  {verb}")
    reason = _reason(change)
    if reason:
        line.append(f"   ({reason})", style="dim")
    lines = [line]
    for f in redact.masked_field_changes(change):
        lines += field_lines(f)
    if change.after_unknown and change.action is not Action.DELETE:
        lines.append(
            Line(
                f"        outputs: {', '.join(change.after_unknown)} (known after apply)",
                style="dim",
            )
        )
    if change.cost is not None:
        lines.append(Line(f"        Cost: {cost_text(change.cost)}", style="cyan"))
    return lines


def cost_text(estimate: CostEstimate) -> str:
    """``~4.48 USD (8.96 USD/h x 0.5 h, median of 3 past runs; 2 workers)``."""
    workers = f"; {estimate.workers} workers" if estimate.workers != 1 else ""
    return (
        f"~{cents(estimate.amount)} {estimate.currency} ({cents(estimate.hourly)} "
        f"{estimate.currency}/h x {_hours(estimate.hours)} h, {estimate.basis}{workers})"
    )


def _hours(hours: str) -> str:
    return f"{float(hours):.4g}"


def cost_total(plan: Plan) -> list[Line]:
    """The total after the summary, as Infracost prints it."""
    if plan.pricing is None:
        return []
    total = " + ".join(f"{cents(a)} {c}" for c, a in plan.cost_totals.items()) or "0.00"
    n = sum(1 for c in plan.changes if c.cost is not None)
    runs = f"{n} training run{'s' if n != 1 else ''}"
    return [Line(f"Estimated cost: {total} ({runs}, at the Workspace's pricing)", style="bold")]


def policy_lines(report: PolicyReport | None) -> list[Line]:
    """The budgets this plan counts against, then policy warnings."""
    if report is None:
        return []
    lines: list[Line] = []
    if report.budgets:
        lines += [Line(""), Line("Budgets:", style="bold")]
        width = max(len(b.address) for b in report.budgets)
        for b in report.budgets:
            percent = f" ({b.percent}%)" if b.percent is not None else ""
            flag = ", enforced" if b.enforce else ""
            style = "red" if b.over else "yellow" if b.thresholds_crossed else ""
            lines.append(
                Line(
                    f"  {b.address.ljust(width)}  {b.period}{flag}: used {cents(b.used)} + "
                    f"planned {cents(b.planned)} of {b.amount} {b.currency}{percent}",
                    style=style,
                )
            )
    if report.warnings:
        lines += [Line(""), Line("Policy warnings:", style="bold yellow")]
        for f in report.warnings:
            lines.append(Line(f"  ! {f.address}: {f.message}", style="yellow"))
    return lines


def drift_lines(drift: list[Drift]) -> list[Line]:
    out = [Line("Changes outside pipeform (drift):", style="bold")]
    for d in drift:
        if not d.exists:
            out.append(Line(f"  - {d.address}   deleted outside pipeform", style="red"))
            continue
        out.append(Line(f"  ~ {d.address}   changed outside pipeform", style="yellow"))
        for f in (redact.mask_field(f) for f in d.field_changes):
            out += field_lines(f)
    return out


def note_lines(plan: Plan) -> list[Line]:
    """What a provider could not check where the plan ran, and what it kept instead."""
    out = [Line("Not checked here:", style="bold")]
    out += [Line(f"  ? {n.address}   {n.note}", style="dim") for n in plan.notes]
    return out


def render(plan: Plan) -> list[Line]:
    lines: list[Line] = []
    if plan.notes:
        lines += [*note_lines(plan), Line("")]
    if plan.drift:
        lines += [*drift_lines(plan.drift), Line("")]
    actionable = plan.actionable
    if plan.mode == "refresh-only":
        lines.append(
            Line(
                "Refresh only: apply records the live values above in state; nothing else changes."
                if plan.drift
                else "No changes. The live objects match the state."
            )
        )
        return lines
    if not actionable:
        lines.append(Line("No changes. The live objects match the specs.", style="green bold"))
        return lines + waiting_lines(plan) + policy_lines(plan.policy)
    lines.append(Line("pipeform will perform the following actions:", style="bold"))
    lines.append(Line(""))
    width = max(len(c.address) for c in actionable)
    for change in actionable:
        lines += change_lines(change, width)
    lines += [Line(""), Line(plan.summary(), style="bold"), *cost_total(plan)]
    return lines + waiting_lines(plan) + policy_lines(plan.policy)


def waiting_lines(plan: Plan) -> list[Line]:
    """Model versions waiting for an approval or a condition (a held promotion)."""
    waiting = [c for c in plan.changes if c.waiting]
    if not waiting:
        return []
    lines = [Line(""), Line("Waiting for approval or a condition:", style="bold")]
    width = max(len(c.address) for c in waiting)
    for change in waiting:
        lines.append(Line(f"  {change.address.ljust(width)}  {change.waiting}", style="yellow"))
    return lines
