"""What the controller shows: its sync status and a snapshot of the last reconcile, made
once per cycle from the plan, state and journal, and read by the status page, /readyz
and /metrics from another thread (a snapshot is never changed once made)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from reconciler.controller.git import Commit

if TYPE_CHECKING:
    from reconciler.engine import Session
    from reconciler.plan.model import Plan
    from reconciler.state.journal import ApplyRecord


class Sync(enum.StrEnum):
    UNKNOWN = "Unknown"  # no reconcile finished yet
    SYNCED = "Synced"
    OUT_OF_SYNC = "OutOfSync"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"


@dataclass(frozen=True)
class Resource:
    address: str
    status: str  # ready, failed, pending, ... ; "missing" when drift found it gone
    last_change: str  # "update succeeded 2024-05-01 10:14" or ""
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DriftRow:
    address: str
    exists: bool
    paths: list[str]  # the fields that drifted (their values are never shown)


@dataclass(frozen=True)
class ApplyRow:
    finished_at: str
    commit: str
    status: str  # succeeded, failed, interrupted
    changes: int
    failed: int


@dataclass(frozen=True)
class Snapshot:
    """The last reconcile's view of the specs, state and history."""

    workspace: str = ""
    resources: list[Resource] = field(default_factory=list)
    drift: list[DriftRow] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # "update TrainingJob/x (reason)"
    applies: list[ApplyRow] = field(default_factory=list)
    levels: list[list[tuple[str, list[str]]]] = field(default_factory=list)


@dataclass(frozen=True)
class Status:
    sync: Sync = Sync.UNKNOWN
    mode: str = "auto-apply"
    repo: str = ""  # without credentials
    branch: str = ""
    head: Commit | None = None  # the branch head last fetched
    synced: Commit | None = None  # the last commit the live state matched
    last_reconcile: float | None = None  # unix time a cycle last finished
    next_at: float | None = None  # unix time of the next cycle
    failures: int = 0  # consecutive failed cycles (backoff)
    error: str | None = None
    waiting: str | None = None  # who holds the state lock, while this one waits
    ready: bool = False  # a cycle has finished (planned) at least once
    snapshot: Snapshot = field(default_factory=Snapshot)


def _when(stamp: str | None) -> str:
    return (stamp or "").replace("T", " ")[:16]


def _last_changes(records: list[ApplyRecord]) -> dict[str, str]:
    found: dict[str, str] = {}
    for record in records:  # oldest first: the newest wins
        for change in record.changes:
            action, status = change.get("action", ""), change.get("status", "")
            found[str(change.get("address"))] = (
                f"{action} {status} {_when(record.finished_at or record.started_at)}"
            )
    return found


def snapshot(session: Session, plan: Plan) -> Snapshot:
    """The page's view after a cycle: state as it now is, the plan's drift and pending
    changes, the last applies and the graph's levels."""
    from reconciler.state import journal

    state = session.backend.read()
    records = journal.applies(session.backend.journal, 10)
    last = _last_changes(records)
    documents = session.checked.tree.documents
    gone = {d.address for d in plan.drift if not d.exists}
    resources = []
    for address in sorted(set(state.resources) | set(documents)):
        held = state.resources.get(address)
        status = "missing" if address in gone else (held.status.value if held else "not created")
        loaded = documents.get(address)
        notes = dict(loaded.facts.annotations) if loaded is not None else {}
        resources.append(Resource(address, status, last.get(address, ""), notes))
    drift = [DriftRow(d.address, d.exists, [f.path for f in d.field_changes]) for d in plan.drift]
    pending = [
        f"{c.action.value} {c.address}" + (f" ({c.reason_detail or c.reason.value})")
        for c in plan.actionable
    ]
    applies = [
        ApplyRow(
            _when(r.finished_at or r.started_at),
            (r.spec_commit or "")[:7]
            + ("-dirty" if (r.spec_commit or "").endswith("-dirty") else ""),
            r.status,
            len(r.changes),
            sum(1 for c in r.changes if c.get("status") == "failed"),
        )
        for r in reversed(records)
    ]
    graph = session.checked.graph
    levels = [[(a, sorted(graph.dependencies(a))) for a in level] for level in graph.levels()]
    name = session.checked.tree.workspace.metadata.name
    return Snapshot(name, resources, drift, pending, applies, levels)
