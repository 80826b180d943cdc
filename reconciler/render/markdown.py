"""A Plan as a pull-request comment in GitHub-flavoured Markdown.

The comment has a heading with the counts, the drift found by refresh, one table row per
change grouped by area (data, training, platform, monitoring) saying what happens and
why, the estimated cost of the training it starts (per run and in total), the budgets it
counts against and any policy errors and warnings, and a collapsed ``diff`` block with
every changed field. It stays under
``MAX_CHARS``: when the whole comment would be longer, the details go first, then the
table is cut short with "... and N more changes", and the comment says so. User text is
escaped; sensitive values show as "(sensitive)" (masked as the JSON plan masks them).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from reconciler.plan.model import (
    SENSITIVE,
    UNKNOWN,
    Action,
    Drift,
    FieldChange,
    Plan,
    cents,
)
from reconciler.plan.model import ResourceChange as Change
from reconciler.render import redact, words
from reconciler.render.blast import blast_radius, blast_text

MAX_CHARS = 60_000  # GitHub refuses comments over 65,536 characters; keep a margin
MARKER = "<!-- pipeform-plan -->"  # lets CI find and edit its earlier comment
AREAS = {
    "Dataset": "data",
    "FeatureSet": "data",
    "TrainingJob": "training",
    "Quota": "platform",
    "Secret": "platform",
    "Budget": "platform",
    "Alert": "monitoring",
    "SLO": "monitoring",
}
AREA_ORDER = ("data", "training", "platform", "monitoring", "other")
SYMBOLS = {
    Action.CREATE: "+",
    Action.UPDATE: "~",
    Action.DELETE: "-",
    Action.DELETE_THEN_CREATE: "-/+",
    Action.CREATE_THEN_DELETE: "+/-",
    Action.READ: "<=",
    Action.NOOP: "",
}
_SPECIAL = re.compile(r"([\\`*_\[\]|])")
_FIELDS_IN_WHY = 2  # changed fields named in the table; the rest are in the details


def escape(text: str) -> str:
    """``text`` safe inside a Markdown table cell: no formatting, no HTML, no mentions,
    one line."""
    text = " ".join(text.split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = text.replace("@", "@&#8203;")  # as Dependabot does: no one is @-mentioned
    return _SPECIAL.sub(r"\\\1", text)


def short(value: Any, limit: int = 40) -> str:
    """A field value as one short line of text, never cut inside a quote or a bracket: a
    long string keeps its closing quote, a long list or object says how big it is (the
    details block has it whole)."""
    if value in (SENSITIVE, UNKNOWN):
        return str(value)
    text = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    if len(text) <= limit:
        return text
    if isinstance(value, str):
        return json.dumps(value[: max(1, limit - 3)] + "…", ensure_ascii=False)
    if isinstance(value, list):
        return f"[{len(value)} items]"
    if isinstance(value, dict):
        return f"{{{len(value)} fields}}"
    return text


def heading(plan: Plan) -> str:
    counts = plan.counts()
    mode = {"destroy": " (destroy)", "refresh-only": " (refresh only)"}.get(plan.mode, "")
    if plan.mode == "refresh-only":
        what = f"{len(plan.drift)} changed outside pipeform" if plan.drift else "no changes"
    elif plan.actionable:
        what = (
            f"{counts['add']} to add, {counts['change']} to change, "
            f"{counts['replace']} to replace, {counts['destroy']} to destroy"
        )
    else:
        what = "no changes"
    return f"### pipeform plan{mode} — {what}"


# -- table -----------------------------------------------------------------------------


def area(kind: str) -> str:
    return AREAS.get(kind, "other")


def action_label(change: Change) -> str:
    verb = words.label(change)
    return f"{SYMBOLS[change.action]} {verb}".strip()


def _changed_part(before: Any, after: Any) -> tuple[str, Any, Any] | None:
    """The only key or item that differs between two objects or equal-length lists, as
    (path step, before, after); None when more than one differs, or they are not alike."""
    if isinstance(before, dict) and isinstance(after, dict):
        keys = [
            k for k in sorted(set(before) | set(after), key=str) if before.get(k) != after.get(k)
        ]
        return (f".{keys[0]}", before.get(keys[0]), after.get(keys[0])) if len(keys) == 1 else None
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        items = [i for i, (b, a) in enumerate(zip(before, after, strict=True)) if b != a]
        return (f"[{items[0]}]", before[items[0]], after[items[0]]) if len(items) == 1 else None
    return None


def _narrow(path: str, before: Any, after: Any) -> tuple[str, Any, Any]:
    """Down to the one value that changed: ``gates`` ``[{..max: 3}]`` -> ``gates[0].max``
    ``3``, while only one key or item changes at each level."""
    while (part := _changed_part(before, after)) is not None:
        step, before, after = part
        path += step
    return path, before, after


def _field_summary(fields: list[FieldChange]) -> str:
    def one(f: FieldChange) -> str:
        path, before, after = _narrow(f.path.removeprefix("spec."), f.before, f.after)
        if isinstance(before, list) and isinstance(after, list):
            if len(before) != len(after):
                return f"{path} {len(before)} → {len(after)} items"
            changed = [i for i, (b, a) in enumerate(zip(before, after, strict=True)) if b != a]
            if not changed:  # alike once masked
                return f"{path} {short(before)} → {short(after)}"
            first, more = changed[0], len(changed) - 1  # several items: the details have all
            item, b, a = _narrow(f"{path}[{first}]", before[first], after[first])
            return f"{item} {short(b)} → {short(a)} (+{more} more item{'s' if more != 1 else ''})"
        return f"{path} {short(before)} → {short(after)}"

    shown = [one(f) for f in fields[:_FIELDS_IN_WHY]]
    more = len(fields) - _FIELDS_IN_WHY
    return ", ".join(shown) + (f" (+{more} more)" if more > 0 else "")


def reason_text(change: Change) -> str:
    """The planner's reason in words ("input Dataset/x changed", "spec changed"), and what
    the change adopts instead of making ("adopts run 3f2a1b9c0d12 (no training)")."""
    reason = change.reason_detail or change.reason.value
    if change.adopts:
        return f"{reason}: adopts {change.adopts}" if reason else f"adopts {change.adopts}"
    return reason


def why(change: Change) -> str:
    """The reason column: the planner's words, then the first changed fields."""
    reason = reason_text(change)
    fields = redact.masked_field_changes(change)
    if fields and change.action is not Action.DELETE:
        summary = _field_summary(fields)
        reason = f"{reason}: {summary}" if reason else summary
    return reason


def table_row(change: Change, set_off: list[Change] | None = None) -> str:
    reason = why(change)
    if set_off:
        reason = f"{reason} → {blast_text(set_off)}" if reason else blast_text(set_off)
    cells = (area(change.kind), change.address, action_label(change), reason)
    return "| " + " | ".join(escape(c) for c in cells) + " |"


def by_area(changes: list[Change]) -> list[Change]:
    """Changes grouped by area (stable: plan order inside each area)."""
    return sorted(changes, key=lambda c: AREA_ORDER.index(area(c.kind)))


TABLE_HEAD = "| area | resource | action | why |\n|---|---|---|---|"


# -- drift -----------------------------------------------------------------------------


def drift_line(drift: Drift) -> str:
    address = escape(drift.address)
    if not drift.exists:
        return f"- **{address}** was deleted outside pipeform"
    fields = [redact.mask_field(f) for f in drift.field_changes]
    detail = f": {escape(_field_summary(fields))}" if fields else ""
    return f"- **{address}** changed outside pipeform{detail}"


# -- details ---------------------------------------------------------------------------


def _flatten(value: Any, prefix: str) -> list[tuple[str, Any]]:
    """Leaf fields of a new spec by path; nulls and empty lists or objects left out."""
    if isinstance(value, dict):
        items = [(f"{prefix}.{k}" if prefix else str(k), value[k]) for k in sorted(value)]
    elif isinstance(value, list) and value and any(isinstance(v, dict | list) for v in value):
        items = [(f"{prefix}[{i}]", v) for i, v in enumerate(value)]
    else:
        return [] if value is None or value == [] else [(prefix, value)]
    return [leaf for path, v in items for leaf in _flatten(v, path)]


def _diff_value(value: Any) -> str:
    if value in (SENSITIVE, UNKNOWN):
        return str(value)
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


_ABSENT = object()  # a side of a change that has no value (added or removed)


def _field_lines(f: FieldChange) -> list[str]:
    """``-``/``+`` lines for one changed field; lists item by item."""
    path = f.path.removeprefix("spec.")
    before, after = f.before, f.after
    if isinstance(before, list) and isinstance(after, list):
        pairs = [
            (
                f"{path}[{i}]",
                before[i] if i < len(before) else _ABSENT,
                after[i] if i < len(after) else _ABSENT,
            )
            for i in range(max(len(before), len(after)))
        ]
        pairs = [(p, b, a) for p, b, a in pairs if b != a]
    else:  # the planner gives None for a field that is not there
        pairs = [(path, _ABSENT if before is None else before, _ABSENT if after is None else after)]
    mark = "  # forces replacement" if f.forces_replacement else ""
    lines = []
    for where, old, new in pairs:
        lines += [f"- {where}: {_diff_value(old)}"] if old is not _ABSENT else []
        lines += [f"+ {where}: {_diff_value(new)}{mark}"] if new is not _ABSENT else []
    return lines


def detail_lines(change: Change) -> list[str]:
    """The ``diff`` block lines for one change: header comment, then -/+ per field."""
    reason = reason_text(change)
    lines = [f"# {change.address}: {action_label(change)}" + (f" ({reason})" if reason else "")]
    if change.action is Action.CREATE:
        spec = (redact.masked_after(change) or {}).get("spec", {})
        lines += [f"+ {path}: {_diff_value(v)}" for path, v in _flatten(spec, "")]
    elif change.action is not Action.DELETE:
        for f in redact.masked_field_changes(change):
            lines += _field_lines(f)
    if change.after_unknown and change.action is not Action.DELETE:
        lines.append(f"  outputs: {', '.join(change.after_unknown)} {UNKNOWN}")
    return [" ".join(line.splitlines()) for line in lines]


def details(changes: list[Change], drift: list[Drift]) -> str:
    blocks: list[list[str]] = []
    for d in drift:
        lines = [
            f"# drift: {d.address}"
            + (" changed outside pipeform" if d.exists else " deleted outside pipeform")
        ]
        for f in (redact.mask_field(f) for f in d.field_changes):
            lines += _field_lines(f)
        blocks.append(lines)
    blocks += [detail_lines(change) for change in changes]
    body = "\n\n".join("\n".join(block) for block in blocks)
    runs = [len(run) for run in re.findall(r"`+", body)]
    fence = "`" * max(3, max(runs, default=0) + 1)  # never closed early by user text
    return f"<details><summary>Details</summary>\n\n{fence}diff\n{body}\n{fence}\n\n</details>"


# -- assembly --------------------------------------------------------------------------


@dataclass
class _Parts:
    head: list[str]
    drift: list[str]
    rows: list[str]
    ranks: list[int]
    tail: list[str]
    details: str


def _fit(items: list[str], budget: int, more: str, rank: list[int] | None = None) -> list[str]:
    """The items that fit in ``budget`` characters, lowest rank first, shown in their
    original order, then a "more" line counting the rest."""
    if sum(len(item) + 1 for item in items) <= budget:
        return items
    budget -= len(more.format(n=len(items))) + 1
    order = sorted(range(len(items)), key=lambda i: (rank[i] if rank else 0, i))
    kept: set[int] = set()
    used = 0
    for i in order:
        if used + len(items[i]) + 1 > budget:
            break
        kept.add(i)
        used += len(items[i]) + 1
    return [items[i] for i in sorted(kept)] + [more.format(n=len(items) - len(kept))]


def _rank(change: Change) -> int:
    """Which rows a cut table keeps first: destroys, then replacements, then the rest."""
    return 0 if change.action is Action.DELETE else 1 if change.action.is_replace else 2


def _join(parts: _Parts, notes: list[str]) -> str:
    blocks = ["\n".join(parts.head)]
    if parts.drift:
        blocks.append("\n".join(["**Changes outside pipeform (drift):**", "", *parts.drift]))
    if parts.rows:
        blocks.append("\n".join([TABLE_HEAD, *parts.rows]))
    blocks += ["\n".join(parts.tail)] if parts.tail else []
    blocks += [parts.details] if parts.details else []
    blocks += ["\n".join(f"> {note}" for note in notes)] if notes else []
    return "\n\n".join(blocks) + "\n"


def _shrink(parts: _Parts, full_size: int, limit: int) -> str:
    """Drop the details, then cut the drift list and the table, saying so."""
    notes = [
        f"The full plan is {full_size:,} characters, more than fits in one comment: "
        "per-field details are left out. Run `pipeform plan` or "
        "`pipeform plan --format json` to see everything."
    ]
    parts.details = ""
    text = _join(parts, notes)
    if len(text) <= limit:
        return text
    notes.append(
        "The lists above are cut short to fit; the table keeps destroys and replacements first."
    )
    fixed = _Parts(parts.head, [], [], [], parts.tail, "")
    budget = limit - len(_join(fixed, notes)) - len(TABLE_HEAD) - 100  # 100: headings, gaps
    drift_budget = min(budget // 4, sum(len(d) + 1 for d in parts.drift))
    parts.drift = _fit(parts.drift, drift_budget, "- ... and {n:,} more drifted resources")
    rows_budget = budget - sum(len(d) + 1 for d in parts.drift)
    parts.rows = _fit(parts.rows, rows_budget, "| | ... and {n:,} more changes | | |", parts.ranks)
    return _join(parts, notes)


def _closing(plan: Plan) -> list[str]:
    if plan.mode == "refresh-only":
        return (
            ["Applying this plan records the live values above in state; nothing else changes."]
            if plan.drift
            else ["No changes. The live objects match the state."]
        )
    if not plan.actionable:
        return ["No changes. The live objects match the specs."]
    return []


def cost_lines(plan: Plan) -> list[str]:
    """The estimate of each training run, and the total."""
    priced = [c for c in plan.changes if c.cost is not None]
    if plan.pricing is None or (not priced and not plan.actionable):
        return []
    total = " + ".join(f"{cents(a)} {c}" for c, a in plan.cost_totals.items()) or "0.00"
    lines = [f"**Estimated cost: {escape(total)}**"]
    if priced:
        lines += [
            "",
            "| resource | estimate | per hour | hours | basis |",
            "|---|---:|---:|---:|---|",
        ]
        for c in priced:
            e = c.cost
            assert e is not None
            cells = (
                c.address,
                f"{cents(e.amount)} {e.currency}",
                f"{cents(e.hourly)} {e.currency}",
                f"{float(e.hours):.4g}",
                e.basis + (f", {e.workers} workers" if e.workers != 1 else ""),
            )
            lines.append("| " + " | ".join(escape(x) for x in cells) + " |")
        lines.append(f"| **total** | **{escape(total)}** | | | |")
    return lines


def policy_lines(plan: Plan) -> list[str]:
    """Budgets (a table), then policy errors and warnings (a list)."""
    report = plan.policy
    if report is None:
        return []
    lines: list[str] = []
    if report.budgets:
        lines += ["**Budgets:**", "", "| budget | period | used | planned | limit | % | enforced |"]
        lines.append("|---|---|---:|---:|---:|---:|---|")
        for b in report.budgets:
            cells = (
                b.address,
                b.period,
                cents(b.used),
                cents(b.planned),
                f"{b.amount} {b.currency}",
                f"{b.percent}%" if b.percent is not None else "-",
                "yes" if b.enforce else "no",
            )
            lines.append("| " + " | ".join(escape(x) for x in cells) + " |")
    if report.findings:
        lines += [""] if lines else []
        lines += ["**Policy:**", ""]
        for f in report.errors + report.warnings:
            where = f" ({escape(f.file)}:{f.line})" if f.file else ""
            mark = "❌ error" if f.severity == "error" else "⚠️ warning"
            hint = f" — {escape(f.hint)}" if f.hint else ""
            lines.append(f"- {mark}: **{escape(f.address)}**{where}: {escape(f.message)}{hint}")
    return lines


def note_lines(plan: Plan) -> list[str]:
    """What could not be checked where the plan ran (a Secret's source in CI)."""
    if not plan.notes:
        return []
    return ["**Not checked here:**", ""] + [
        f"- **{escape(n.address)}**: {escape(n.note)}" for n in plan.notes
    ]


def waiting_lines(plan: Plan) -> list[str]:
    """Model versions waiting for an approval or a condition (a held promotion)."""
    waiting = [c for c in plan.changes if c.waiting]
    if not waiting:
        return []
    return ["**Waiting for approval or a condition**", ""] + [
        f"- **{escape(c.address)}**: {escape(c.waiting or '')}" for c in waiting
    ]


def _tail(plan: Plan) -> list[str]:
    """The closing words, the cost and the policy blocks (kept when the comment is cut)."""
    out: list[str] = []
    for block in (
        _closing(plan),
        note_lines(plan),
        waiting_lines(plan),
        cost_lines(plan),
        policy_lines(plan),
    ):
        if block:
            out += ([""] if out else []) + block
    return out


def render(plan: Plan, limit: int = MAX_CHARS) -> str:
    """The comment text, at most ``limit`` characters (for any limit that leaves room
    for the heading and the notes)."""
    changes = by_area(plan.actionable) if plan.mode != "refresh-only" else []
    radius = blast_radius(changes)
    parts = _Parts(
        head=[MARKER, heading(plan)],
        drift=[drift_line(d) for d in plan.drift],
        rows=[table_row(c, radius.get(c.address)) for c in changes],
        ranks=[_rank(c) for c in changes],
        tail=_tail(plan),
        details=details(changes, plan.drift) if changes or plan.drift else "",
    )
    text = _join(parts, [])
    if len(text) <= limit:
        return text
    return _shrink(parts, len(text), limit)
