"""Lineage as text (a tree, as UX.md sketches it) and as one self-contained HTML file
(inline CSS, no script, every value escaped) that an auditor can open anywhere."""

from __future__ import annotations

import html
import json
from typing import Any


def commit_text(commit: dict[str, Any] | None) -> str:
    if not commit or not commit.get("sha"):
        return (commit or {}).get("note") or "no spec commit recorded"
    text = str(commit["sha"])[:12]
    if commit.get("dirty"):
        text += "-dirty (uncommitted changes: not this commit's specs)"
    if commit.get("message"):
        text += f' "{commit["message"]}" ({commit.get("author")}, {str(commit.get("date"))[:10]})'
    elif commit.get("note") and not commit.get("dirty"):
        text += f" ({commit['note']})"
    return text


def _param(p: dict[str, Any]) -> str:
    since = p.get("note") or (
        f'since {p["commit"]["sha"][:12]} "{p["commit"]["message"]}" ({p["commit"]["author"]})'
        if p.get("commit")
        else "commit unknown"
    )
    return f"hyperparameters.{p['name']} = {json.dumps(p['value'])}   {since}"


def text(data: dict[str, Any]) -> list[str]:
    job, fs, ds = data["training_job"], data["feature_set"], data["dataset"]
    aliases = f"   (aliases: {', '.join(data['aliases'])})" if data["aliases"] else ""
    metrics = " · ".join(
        f"{k} {v:.4f}" for k, v in sorted(data["metrics"].items()) if isinstance(v, float)
    )
    trainer = data["trainer"]
    lines = [
        f"{data['model']} v{data['version']}  registered {data['registered_at'][:19]} UTC{aliases}",
        f"├─ training run {job['run_id']}  {job['address']} on {data.get('device') or '?'}, "
        f"trainer {trainer.get('version', '?')} code {trainer.get('code_digest', '?')}",
        f"│    spec commit {commit_text(job['spec_commit'])}",
    ]
    if job["spec_file"]:
        lines.append(f"│    spec file {job['spec_file']}")
    lines += [f"│    {_param(p)}" for p in job["hyperparameters"]]
    if metrics:
        lines.append(f"│    metrics: {metrics}")
    lines.append(f"│    package sha256:{data['package_sha256']}")
    train = fs.get("train") or {}
    lines.append(
        f"├─ {fs['address']}  {fs['id']}  train {train.get('rows', '?')} rows sha256:"
        f"{str(train.get('sha256', '?'))[:12]}…   spec commit {commit_text(fs['spec_commit'])}"
    )
    if ds.get("address"):
        lines.append(
            f"└─ {ds['address']}  {ds['snapshot']}  {ds.get('summary') or ''}, "
            f"source {ds.get('source_fingerprint')}   spec commit {commit_text(ds['spec_commit'])}"
        )
    else:
        lines.append(f"└─ Dataset snapshot {ds['snapshot']}  ({ds.get('note')})")
    return lines


_CSS = """body{font:14px/1.5 system-ui,sans-serif;margin:2rem;color:#1b1f24;max-width:70rem}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.6rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse}td,th{padding:.2rem .8rem .2rem 0;text-align:left;vertical-align:top}
code{background:#f3f4f6;padding:0 .2rem;word-break:break-all}.dirty{color:#b42318;font-weight:600}"""


def _row(label: str, value: Any) -> str:
    shown = value if isinstance(value, str) else json.dumps(value)
    return f"<tr><th>{html.escape(label)}</th><td><code>{html.escape(shown)}</code></td></tr>"


def _commit_row(commit: dict[str, Any]) -> str:
    cls = ' class="dirty"' if commit.get("dirty") else ""
    return f"<tr><th>spec commit</th><td{cls}>{html.escape(commit_text(commit))}</td></tr>"


def page(data: dict[str, Any]) -> str:
    job, fs, ds = data["training_job"], data["feature_set"], data["dataset"]
    title = f"Lineage of {data['model']} v{data['version']}"
    params = "".join(
        f"<tr><th>{html.escape(p['name'])}</th><td><code>{html.escape(json.dumps(p['value']))}"
        f"</code></td><td>{html.escape(_param(p).split('   ', 1)[1])}</td></tr>"
        for p in job["hyperparameters"]
    )
    sections = [
        f"<h1>{html.escape(title)}</h1><table>"
        + _row("registered", data["registered_at"])
        + _row("aliases", ", ".join(data["aliases"]) or "none")
        + _row("package sha256", data["package_sha256"])
        + _row("metrics", data["metrics"])
        + "</table>",
        f"<h2>Training run {html.escape(job['run_id'])}</h2><table>"
        + _row("resource", job["address"])
        + _row("device", data.get("device") or "?")
        + _row("trainer", data["trainer"])
        + _row("spec file", job["spec_file"] or "?")
        + _commit_row(job["spec_commit"])
        + "</table><h2>Hyperparameters</h2><table>"
        + params
        + "</table>",
        f"<h2>{html.escape(fs['address'])} {html.escape(fs['id'])}</h2><table>"
        + _row("train", fs.get("train"))
        + _row("validation", fs.get("validation"))
        + _row("transform", fs.get("transform_digest"))
        + _commit_row(fs["spec_commit"])
        + "</table>",
        f"<h2>{html.escape(str(ds.get('address') or 'Dataset'))} {html.escape(str(ds['snapshot']))}</h2><table>"
        + "".join(_row(k, ds.get(k)) for k in ("sha256", "rows", "summary", "source_fingerprint"))
        + (_commit_row(ds["spec_commit"]) if ds.get("spec_commit") else "")
        + "</table>",
    ]
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}'
        f"</title><style>{_CSS}</style></head><body>{''.join(sections)}</body></html>\n"
    )
