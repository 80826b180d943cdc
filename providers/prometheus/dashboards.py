"""One Workspace's Grafana dashboards: built with grafana-foundation-sdk, kept as JSON files.

``<dashboardsDir>/pipeform-<workspace>-<view>.json`` for the executive, on-call and debug
views (``dashboard_views``), for Grafana's file provisioning to load. The prometheus
provider calls ``sync`` after each change to the Workspace's rules file and ``sync`` with
``keep=False`` once the rules file is gone (destroy).

Ownership is in each dashboard's tags (``pipeform-owner`` and ``lineage:<state lineage>``;
Grafana limits a tag to 50 characters, so the address ``Workspace/<name>`` is in the
title and the uid is a digest of the workspace and view). A file that carries our
lineage is replaced (a write retried after a crash adopts it); any other file at that
path (made by hand, or by another state) is left alone with a warning, and never deleted.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import bargauge, dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from providers import durable
from providers.prometheus.dashboard_views import VIEWS, PanelSpec, ViewSpec, views

log = logging.getLogger("pipeform.prometheus")
OWNER_TAG = "pipeform-owner"
LINEAGE_TAG = "lineage:"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
_BUILDERS: dict[str, Any] = {
    "stat": stat.Panel,
    "timeseries": timeseries.Panel,
    "table": table.Panel,
    "bargauge": bargauge.Panel,
}
_WIDTH = {"stat": 6, "bargauge": 12, "table": 12, "timeseries": 12}


def file_name(workspace: str, view: str) -> str:
    return f"pipeform-{workspace}-{view}.json"


def uid(workspace: str, view: str) -> str:
    """Stable and within Grafana's 40 characters whatever the workspace's name."""
    digest = hashlib.sha256(f"{workspace}\0{view}".encode()).hexdigest()[:16]
    return f"pipeform-{view}-{digest}"


def _panel(spec: PanelSpec) -> Any:
    query = prometheus.Dataquery().expr(spec.expr).ref_id("A")
    if spec.legend:
        query = query.legend_format(spec.legend)
    if spec.kind == "table":
        query = query.instant().format(PromQueryFormat.TABLE)
    elif spec.kind in ("stat", "bargauge"):
        query = query.instant()
    panel = (
        _BUILDERS[spec.kind]()
        .title(spec.title)
        .description(spec.description)
        .datasource(DATASOURCE)
        .with_target(query)
        .height(8)
        .span(_WIDTH[spec.kind])
    )
    return panel.unit(spec.unit) if spec.unit else panel


def build(workspace: str, lineage: str, view: ViewSpec) -> dict[str, Any]:
    """One view as Grafana dashboard JSON (a plain dict)."""
    board = (
        dashboard.Dashboard(f"pipeform {workspace}: {view.title}")
        .uid(uid(workspace, view.name))
        .description(f"{view.description} Written by pipeform for Workspace/{workspace}.")
        .tags(["pipeform", OWNER_TAG, f"{LINEAGE_TAG}{lineage}", view.name])
        .time("now-30d", "now")
        .refresh("5m")
        .readonly()
        .with_variable(
            dashboard.DatasourceVariable("datasource").label("Prometheus").type("prometheus")
        )
    )
    for row_title, panels in view.rows:
        board = board.with_row(dashboard.Row(row_title))
        for spec in panels:
            board = board.with_panel(_panel(spec))
    data: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    return data


def render(workspace: str, lineage: str) -> dict[str, bytes]:
    """Every view's file name and bytes (stable: same input, same bytes)."""
    return {
        file_name(workspace, view.name): (
            json.dumps(build(workspace, lineage, view), indent=2, sort_keys=True) + "\n"
        ).encode()
        for view in views(workspace)
    }


def owner_of(path: Path) -> str | None:
    """The lineage a dashboard file's tags give it, or None (not pipeform's, unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    tags = data.get("tags") if isinstance(data, dict) else None
    if not isinstance(tags, list) or OWNER_TAG not in tags:
        return None
    return next((t[len(LINEAGE_TAG) :] for t in tags if str(t).startswith(LINEAGE_TAG)), None)


def owned(directory: Path, workspace: str) -> Iterable[tuple[Path, str]]:
    """The workspace's dashboard files there that pipeform owns, with their lineage."""
    for view in VIEWS:
        path = directory / file_name(workspace, view)
        lineage = owner_of(path) if path.exists() else None
        if lineage is not None:
            yield path, lineage


def _not_ours(path: Path, shown: str) -> None:
    log.warning(
        "warning: %s exists but is not a dashboard of this pipeform state, so it is left "
        "alone; move it away and apply again to have pipeform write it",
        shown,
    )


def sync(directory: Path, workspace: str, lineage: str, *, keep: bool, root: Path) -> None:
    """Write (keep) or remove (not keep) the workspace's dashboards owned by lineage."""
    files = render(workspace, lineage) if keep else {}
    if keep:
        directory.mkdir(parents=True, exist_ok=True)
    for view in VIEWS:
        path = directory / file_name(workspace, view)
        shown = _shown(path, root)
        exists = path.exists()
        if exists and owner_of(path) != lineage:
            if keep:
                _not_ours(path, shown)
            continue
        if not keep:
            if exists:
                durable.remove(path)
            continue
        wanted = files[path.name]
        if not exists or path.read_bytes() != wanted:
            durable.atomic_write(path, wanted, 0o644)


def _shown(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
