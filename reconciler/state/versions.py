"""Kept versions, shared by every backend: replaying them into a state, and what a restore
changes.

A version is one write: ``put`` (the record's JSON), ``remove`` (no data) or ``restore``
(the whole state, as ``{"restored_from": SERIAL, "resources": [...]}``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from reconciler.state.backend import StateDamaged
from reconciler.state.model import ResourceState

RESTORE = "restore"


def replay(
    rows: Iterable[tuple[int, str, str, str | None]],
    where: str,
    start: dict[str, ResourceState] | None = None,
) -> dict[str, ResourceState]:
    """The resources after the versions (serial, address, operation, data), in order, on
    top of ``start``; a version that holds no readable record is reported as damage."""
    resources: dict[str, ResourceState] = dict(start or {})
    for at, address, operation, data in rows:
        try:
            if operation == "remove":
                resources.pop(address, None)
            elif operation == RESTORE:
                records = json.loads(data or "")["resources"]
                resources = {r["address"]: ResourceState.from_dict(r) for r in records}
            else:
                resources[address] = ResourceState.from_dict(json.loads(data or ""))
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            raise StateDamaged(
                f"the state {where} is damaged: version {at} ({operation} {address}) "
                f"holds no readable record ({exc}).\n  Restore a serial before {at}."
            ) from None
    return resources


def restore_snapshot(serial: int, target: dict[str, ResourceState]) -> str:
    """The data of a restore version that brings back ``target`` (the state at serial)."""
    snapshot = {"restored_from": serial, "resources": [r.to_dict() for r in target.values()]}
    return json.dumps(snapshot, sort_keys=True)


def record(resource: ResourceState) -> str:
    """A resource record as every backend stores it."""
    return json.dumps(resource.to_dict(), sort_keys=True)


def changes(before: dict[str, str], after: dict[str, str]) -> dict[str, str]:
    """What a restore changes, by address: added, changed or removed."""
    out = {a: "removed" for a in before.keys() - after.keys()}
    out.update({a: "added" for a in after.keys() - before.keys()})
    out.update({a: "changed" for a in before.keys() & after.keys() if before[a] != after[a]})
    return out


def restore_results(found: dict[str, str]) -> list[dict[str, object]]:
    """A restore's journal results, one per address it changed."""
    return [
        {"address": a, "action": f"restore ({c})", "status": "succeeded", "error": None}
        for a, c in sorted(found.items())
    ]
