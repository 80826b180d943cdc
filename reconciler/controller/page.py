"""The read-only status page, server-rendered like Argo CD's application view: sync
status, the last synced commit (author, message), each resource with its status, last
change and annotations, current drift, the last applies, and the dependency graph by
levels. Every value from specs, git or state goes through ``html.escape``; no spec value
is shown (drift names fields, never their values), so no secret can reach the page."""

from __future__ import annotations

import time
from html import escape

from reconciler.controller.status import Resource, Snapshot, Status, Sync

ICONS = {
    Sync.SYNCED: ("\u2714", "#1a7f37"),
    Sync.OUT_OF_SYNC: ("\u25cf", "#bf8700"),
    Sync.PROGRESSING: ("\u21bb", "#0969da"),
    Sync.DEGRADED: ("\u2716", "#cf222e"),
    Sync.UNKNOWN: ("?", "#57606a"),
}
STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1f2328}
h1{font-size:20px;margin:0 0 4px} h2{font-size:15px;margin:22px 0 6px}
.sync{display:inline-block;padding:2px 10px;border-radius:12px;color:#fff;font-weight:600}
table{border-collapse:collapse;width:100%} td,th{text-align:left;padding:4px 8px;
border-bottom:1px solid #d0d7de;vertical-align:top} th{background:#f6f8fa}
.muted{color:#57606a} code{font-size:12px} .bad{color:#cf222e} ol li{margin:2px 0}
"""


def _ago(stamp: float | None, now: float) -> str:
    if stamp is None:
        return "never"
    if stamp > now:
        return f"in {int(stamp - now + 0.999)}s"
    return f"{int(now - stamp)}s ago"


def _header(status: Status, now: float) -> str:
    icon, colour = ICONS[status.sync]
    commit = status.synced
    synced = (
        f'commit <code>{escape(commit.short)}</code> "{escape(commit.message)}" '
        f"({escape(commit.author)})"
        if commit
        else "no commit synced yet"
    )
    head = status.head
    behind = ""
    if head and (commit is None or head.sha != commit.sha):
        behind = f' · branch head <code>{escape(head.short)}</code> "{escape(head.message)}"'
    drift = len(status.snapshot.drift)
    parts = [
        f"last reconcile {_ago(status.last_reconcile, now)}",
        f"next {_ago(status.next_at, now)}",
        f"drift: {drift or 'none'}",
        f"mode: {escape(status.mode)}",
    ]
    lines = [
        f"<h1>pipeform · {escape(status.snapshot.workspace or '(not loaded)')} "
        f'<span class="sync" id="sync" style="background:{colour}">{icon} '
        f"{escape(status.sync.value)}</span></h1>",
        f'<div id="commit">{synced}{behind}</div>',
        f'<div class="muted">{escape(status.repo)} @ {escape(status.branch)} · '
        f"{' · '.join(parts)}</div>",
    ]
    if status.failures:
        lines.append(
            f'<div class="bad" id="error">{status.failures} failed cycle(s) in a row; '
            f"backing off: {escape(status.error or '')}</div>"
        )
    if status.waiting:
        lines.append(
            f'<div class="bad" id="waiting">waiting for the state lock: '
            f"{escape(status.waiting)}</div>"
        )
    return "\n".join(lines)


def _resource_row(r: Resource) -> str:
    notes = "<br>".join(f"{escape(k)}: {escape(v)}" for k, v in sorted(r.annotations.items()))
    mark = (
        "\u2714"
        if r.status == "ready"
        else "\u2716"
        if r.status in ("failed", "missing")
        else "\u25cf"
    )
    return (
        f"<tr><td>{escape(r.address)}</td><td>{mark} {escape(r.status)}</td>"
        f'<td>{escape(r.last_change)}</td><td class="muted">{notes}</td></tr>'
    )


def _table(title: str, ident: str, head: list[str], rows: list[str], empty: str) -> str:
    if not rows:
        return f'<h2>{title}</h2><p class="muted" id="{ident}">{empty}</p>'
    cells = "".join(f"<th>{h}</th>" for h in head)
    return f'<h2>{title}</h2><table id="{ident}"><tr>{cells}</tr>{"".join(rows)}</table>'


def _sections(snap: Snapshot) -> str:
    resources = [_resource_row(r) for r in snap.resources]
    drift = [
        f"<tr><td>{escape(d.address)}</td><td>"
        + ("deleted outside pipeform" if not d.exists else escape(", ".join(d.paths) or "changed"))
        + "</td></tr>"
        for d in snap.drift
    ]
    pending = "".join(f"<li>{escape(p)}</li>" for p in snap.pending)
    applies = [
        f"<tr><td>{escape(a.finished_at)}</td><td><code>{escape(a.commit)}</code></td>"
        f"<td>{escape(a.status)}</td><td>{a.changes} changes, {a.failed} failed</td></tr>"
        for a in snap.applies
    ]
    levels = "".join(
        "<li>"
        + ", ".join(
            escape(a) + (f' <span class="muted">\u2190 {escape(", ".join(d))}</span>' if d else "")
            for a, d in level
        )
        + "</li>"
        for level in snap.levels
    )
    return "\n".join(
        [
            _table(
                "Resources",
                "resources",
                ["resource", "status", "last change", "annotations"],
                resources,
                "no resources",
            ),
            _table("Drift", "drift", ["resource", "what changed"], drift, "drift: none"),
            f'<h2>Pending changes</h2><ol id="pending">{pending}</ol>' if pending else "",
            _table(
                "Last applies",
                "applies",
                ["finished (UTC)", "commit", "result", "changes"],
                applies,
                "no applies yet",
            ),
            f'<h2>Dependency graph (levels)</h2><ol id="graph">{levels}</ol>',
        ]
    )


def render(status: Status, interval: float) -> str:
    now = time.time()
    refresh = max(2, min(60, int(interval)))
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{refresh}">'
        f"<title>pipeform controller · {escape(status.sync.value)}</title>"
        f"<style>{STYLE}</style></head><body>\n"
        f"{_header(status, now)}\n{_sections(status.snapshot)}\n</body></html>\n"
    )
