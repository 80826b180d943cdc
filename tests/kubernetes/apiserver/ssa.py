"""Server-side apply and managedFields, after structured-merge-diff in a small form.

A field set is a set of paths; a path is a tuple of ``f:<field>`` and ``k:{"name":"..."}``
elements, written to ``metadata.managedFields[].fieldsV1`` as nested maps
(``{"f:spec": {"f:x": {}}}``). Maps merge field by field; lists of maps that all carry a
``name`` (containers, env, volumes) merge by name; every other list is atomic.
An apply conflicts where another manager owns a field that the applier sets to a different
value; ``force`` takes the field over. Fields the manager applied before and omits now are
removed unless another manager owns them. A non-apply write (create, update, patch) gives
its manager the fields it changed, taking them from the others without a conflict.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from typing import Any

from tests.kubernetes.apiserver.resources import ApiError, Resource

Path = tuple[str, ...]

# metadata the server owns: never part of a field set
SERVER_METADATA = frozenset(
    {
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "managedFields",
        "selfLink",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generateName",
    }
)


def _keyed(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(item, dict) and isinstance(item.get("name"), str) for item in value)
    )


def item_key(item: dict[str, Any]) -> str:
    return "k:" + json.dumps({"name": item["name"]}, separators=(",", ":"))


def scoped(obj: dict[str, Any], res: Resource, subresource: str | None) -> dict[str, Any]:
    """The part of ``obj`` a write to the resource (or its ``status``) may change."""
    if subresource == "status":
        return {"status": obj["status"]} if "status" in obj else {}
    view = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    if res.has_status:
        view.pop("status", None)
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in SERVER_METADATA}
    if meta:
        view["metadata"] = meta
    else:
        view.pop("metadata", None)
    return view


def paths(value: Any, prefix: Path = (), out: set[Path] | None = None) -> set[Path]:
    out = set() if out is None else out
    if isinstance(value, dict) and value:
        for key, sub in value.items():
            if sub is not None:
                paths(sub, (*prefix, "f:" + key), out)
    elif _keyed(value):
        for item in value:
            node = (*prefix, item_key(item))
            out.add(node)
            paths(item, node, out)
    elif prefix:
        out.add(prefix)
    return out


def to_fields_v1(field_set: Iterable[Path]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for path in sorted(field_set):
        node = root
        for element in path:
            node = node.setdefault(element, {})
        if path and path[-1].startswith("k:"):
            node["."] = {}
    return root


def from_fields_v1(fields: dict[str, Any], prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    for key, sub in fields.items():
        if key == ".":
            out.add(prefix)
        elif not sub:
            out.add((*prefix, key))
        else:
            out |= from_fields_v1(sub, (*prefix, key))
    return out


_MISSING = object()


def value_at(obj: Any, path: Path) -> Any:
    node = obj
    for element in path:
        if element.startswith("f:") and isinstance(node, dict):
            node = node.get(element[2:], _MISSING)
        elif element.startswith("k:") and isinstance(node, list):
            name = json.loads(element[2:])["name"]
            node = next(
                (i for i in node if isinstance(i, dict) and i.get("name") == name), _MISSING
            )
        else:
            return _MISSING
        if node is _MISSING:
            return _MISSING
    return node


def display(path: Path) -> str:
    """``.spec.template.spec.containers[name="main"].image``, as conflicts name a field."""
    text = ""
    for element in path:
        if element.startswith("k:"):
            key = json.loads(element[2:])
            text += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in key.items()) + "]"
        else:
            text += "." + element[2:]
    return text


def _remove_at(obj: dict[str, Any], path: Path, keep: set[Path]) -> None:
    """Remove the field at ``path``, then parents left empty that nobody owns."""
    parent = value_at(obj, path[:-1]) if len(path) > 1 else obj
    last = path[-1]
    if isinstance(parent, dict) and last.startswith("f:"):
        parent.pop(last[2:], None)
    elif isinstance(parent, list) and last.startswith("k:"):
        name = json.loads(last[2:])["name"]
        parent[:] = [i for i in parent if not (isinstance(i, dict) and i.get("name") == name)]
    parent_path = path[:-1]
    if len(parent_path) > 1 and parent_path not in keep and value_at(obj, parent_path) in ({}, []):
        _remove_at(obj, parent_path, keep)


def _remove_dropped(obj: dict[str, Any], dropped: set[Path], keep: set[Path]) -> None:
    """Remove what the applier dropped: a list item whole (its fields with it), else
    field by field; an item's ``name`` goes only with the item."""
    items: list[Path] = []
    for path in sorted(dropped, key=len):
        if any(path[: len(item)] == item for item in items):
            continue
        if len(path) > 1 and path[-2].startswith("k:") and path[-1] == "f:name":
            continue
        _remove_at(obj, path, keep)
        if path[-1].startswith("k:"):
            items.append(path)


def merge(live: Any, applied: Any) -> Any:
    if isinstance(live, dict) and isinstance(applied, dict):
        result = dict(live)
        for key, value in applied.items():
            if value is not None:
                result[key] = merge(live.get(key), value)
        return result
    if _keyed(applied) and (_keyed(live) or live == []):
        merged = list(live)
        index = {item["name"]: n for n, item in enumerate(merged)}
        for item in applied:
            if item["name"] in index:
                merged[index[item["name"]]] = merge(merged[index[item["name"]]], item)
            else:
                merged.append(copy.deepcopy(item))
        return merged
    return copy.deepcopy(applied)


def _entries(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return list((obj.get("metadata") or {}).get("managedFields") or [])


def _same_manager(entry: dict[str, Any], manager: str, operation: str, sub: str | None) -> bool:
    return (
        entry.get("manager") == manager
        and entry.get("operation") == operation
        and entry.get("subresource") == sub
    )


def _entry(
    manager: str, operation: str, res: Resource, sub: str | None, owned: set[Path], now: str
) -> dict[str, Any]:
    entry = {
        "manager": manager,
        "operation": operation,
        "apiVersion": res.api_version,
        "time": now,
        "fieldsType": "FieldsV1",
        "fieldsV1": to_fields_v1(owned),
    }
    if sub:
        entry["subresource"] = sub
    return entry


def _rewrite(
    entries: list[dict[str, Any]], mine: dict[str, Any], others: dict[int, set[Path]]
) -> list[dict[str, Any]]:
    result = []
    for n, entry in enumerate(entries):
        if n in others:
            if not others[n]:
                continue
            entry = {**entry, "fieldsV1": to_fields_v1(others[n])}
        result.append(entry)
    result.append(mine)
    return result


def manager_label(entry: dict[str, Any]) -> str:
    text = json.dumps(entry["manager"])
    if entry.get("subresource"):
        text += f" with subresource {json.dumps(entry['subresource'])}"
    if entry.get("operation") == "Update":
        text += f" using {entry.get('apiVersion')}"
    return text


def conflict_error(conflicts: list[tuple[dict[str, Any], Path]]) -> ApiError:
    causes = [
        {
            "type": "FieldManagerConflict",
            "message": f"conflict with {manager_label(e)}",
            "field": display(p),
        }
        for e, p in conflicts
    ]
    if len(conflicts) == 1:
        entry, path = conflicts[0]
        message = (
            f"Apply failed with 1 conflict: conflict with {manager_label(entry)}: {display(path)}"
        )
    else:
        by_manager: dict[str, list[str]] = {}
        for entry, path in conflicts:
            by_manager.setdefault(manager_label(entry), []).append(display(path))
        lines = []
        for label in sorted(by_manager):
            lines.append(f"conflicts with {label}:")
            lines += [f"- {p}" for p in by_manager[label]]
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return ApiError(409, "Conflict", message, {"causes": causes})


def apply(
    live: dict[str, Any],
    config: dict[str, Any],
    res: Resource,
    sub: str | None,
    manager: str,
    force: bool,
    now: str,
) -> dict[str, Any]:
    """The object after ``manager`` applies ``config`` to ``live`` (``{}`` when absent);
    raises the 409 conflict error unless ``force``."""
    applied = scoped(config, res, sub)
    applied_set = paths(applied)
    entries = _entries(live)
    mine_index = next(
        (n for n, e in enumerate(entries) if _same_manager(e, manager, "Apply", sub)), None
    )
    previous = from_fields_v1(entries[mine_index]["fieldsV1"]) if mine_index is not None else set()
    others = {
        n: from_fields_v1(e.get("fieldsV1") or {}) for n, e in enumerate(entries) if n != mine_index
    }
    conflicts = []
    for n, owned in others.items():
        for path in sorted(owned & applied_set):
            if path[-1].startswith("k:"):
                continue
            if value_at(live, path) != value_at(applied, path):
                conflicts.append((entries[n], path))
    if conflicts and not force:
        raise conflict_error(conflicts)
    for n in others:
        others[n] -= {p for e, p in conflicts if e is entries[n]}
    result: dict[str, Any] = merge(copy.deepcopy(live), applied)
    owned_by_others = set().union(*others.values()) if others else set()
    _remove_dropped(result, previous - applied_set - owned_by_others, owned_by_others | applied_set)
    keep, kept_others = [], {}
    for n, entry in enumerate(entries):
        if n != mine_index:
            keep.append(entry)
            kept_others[len(keep) - 1] = others[n]
    mine = _entry(manager, "Apply", res, sub, applied_set, now)
    result.setdefault("metadata", {})["managedFields"] = _rewrite(keep, mine, kept_others)
    return result


def record_update(
    old: dict[str, Any] | None,
    new: dict[str, Any],
    res: Resource,
    sub: str | None,
    manager: str,
    now: str,
) -> None:
    """Give ``manager`` (operation Update) the fields that ``new`` changed from ``old``,
    in place on ``new``'s managedFields."""
    before = scoped(old, res, sub) if old else {}
    after = scoped(new, res, sub)
    before_set, after_set = paths(before), paths(after)
    changed = {p for p in after_set if value_at(before, p) != value_at(after, p)}
    removed = before_set - after_set
    entries = _entries(old) if old else []
    mine_index = next(
        (n for n, e in enumerate(entries) if _same_manager(e, manager, "Update", sub)), None
    )
    owned = from_fields_v1(entries[mine_index]["fieldsV1"]) if mine_index is not None else set()
    owned = (owned | changed) - removed
    keep, others = [], {}
    for n, entry in enumerate(entries):
        if n == mine_index:
            continue
        keep.append(entry)
        others[len(keep) - 1] = from_fields_v1(entry.get("fieldsV1") or {}) - changed - removed
    if not changed and not removed and mine_index is not None:
        new.setdefault("metadata", {})["managedFields"] = entries
        return
    fields = _rewrite(keep, _entry(manager, "Update", res, sub, owned, now), others)
    new.setdefault("metadata", {})["managedFields"] = [e for e in fields if e["fieldsV1"]]


def _ownership(obj: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    return sorted(
        (
            e.get("manager", ""),
            e.get("operation", ""),
            e.get("subresource") or "",
            json.dumps(e.get("fieldsV1"), sort_keys=True),
        )
        for e in _entries(obj)
    )


def same_ownership(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether the managers own the same fields (their timestamps aside)."""
    return _ownership(old) == _ownership(new)
