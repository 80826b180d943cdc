"""A Plan as terminal text: Terraform-like symbols, changed fields only, reasons, summary."""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text

from reconciler.plan import SENSITIVE, Action, Drift, Plan, Reason, ResourceChange
from reconciler.render import redact, words

SYMBOLS = {
    Action.CREATE: ("+", "green"),
    Action.UPDATE: ("~", "yellow"),
    Action.DELETE: ("-", "red"),
    Action.DELETE_THEN_CREATE: ("-/+", "magenta"),
    Action.CREATE_THEN_DELETE: ("+/-", "magenta"),
    Action.READ: ("<=", "cyan"),
    Action.NOOP: (" ", "dim"),
}


def value(v: Any, limit: int = 60) -> str:
    if v is None:
        return "null"
    if v == SENSITIVE:
        return SENSITIVE
    text = json.dumps(v, default=str) if not isinstance(v, str) else json.dumps(v)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _reason(change: ResourceChange) -> str:
    if change.reason_detail:
        return change.reason_detail
    if change.reason in (Reason.NONE, Reason.NEW):
        return ""
    return change.reason.value


def change_lines(change: ResourceChange, width: int) -> list[Text]:
    symbol, style = SYMBOLS[change.action]
    verb = "will be " + words.participle(change.kind, change.action)
    line = Text(f"  {symbol:<3} ", style=style)
    line.append(change.address.ljust(width), style="bold")
    line.append(f"  {verb}")
    reason = _reason(change)
    if reason:
        line.append(f"   ({reason})", style="dim")
    lines = [line]
    for f in redact.masked_field_changes(change):
        field = Text(f"        ~ {f.path.removeprefix('spec.')}: ", style="yellow")
        field.append(f"{value(f.before)} -> {value(f.after)}")
        if f.forces_replacement:
            field.append("  # forces replacement", style="red")
        lines.append(field)
    if change.after_unknown and change.action is not Action.DELETE:
        lines.append(
            Text(
                f"        outputs: {', '.join(change.after_unknown)} (known after apply)",
                style="dim",
            )
        )
    return lines


def drift_lines(drift: list[Drift]) -> list[Text]:
    out = [Text("Changes outside pipeform (drift):", style="bold")]
    for d in drift:
        if not d.exists:
            out.append(Text(f"  - {d.address}   deleted outside pipeform", style="red"))
            continue
        out.append(Text(f"  ~ {d.address}   changed outside pipeform", style="yellow"))
        for f in (redact.mask_field(f) for f in d.field_changes):
            out.append(Text(f"        ~ {f.path}: {value(f.before)} -> {value(f.after)}"))
    return out


def render(plan: Plan) -> list[Text]:
    lines: list[Text] = []
    if plan.drift:
        lines += [*drift_lines(plan.drift), Text("")]
    actionable = plan.actionable
    if plan.mode == "refresh-only":
        lines.append(
            Text(
                "Refresh only: apply records the live values above in state; nothing else changes."
                if plan.drift
                else "No changes. The live objects match the state."
            )
        )
        return lines
    if not actionable:
        lines.append(Text("No changes. The live objects match the specs.", style="green bold"))
        return lines
    lines.append(Text("pipeform will perform the following actions:", style="bold"))
    lines.append(Text(""))
    width = max(len(c.address) for c in actionable)
    for change in actionable:
        lines += change_lines(change, width)
    lines += [Text(""), Text(plan.summary(), style="bold")]
    return lines
