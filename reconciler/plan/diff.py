"""Per-field differences between two documents: what a plan shows as changed.

``field_changes`` compares leaf values (a changed list is shown whole, as one field) with
deepdiff; ``apply_ignore`` sets the paths a document's ``lifecycle.ignoreChanges`` names
back to what was applied, so they never show as changes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.plan.model import FieldChange


def _path_text(deep_path: list[Any]) -> str:
    return ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in deep_path).replace(
        ".[", "["
    )


#: deepdiff's optional integrations, imported by deepdiff itself when they are installed.
_DEEPDIFF_EXTRAS = ("pandas", "polars", "numpy")


def _deepdiff() -> Any:
    """deepdiff.DeepDiff, imported on the first real difference (it is slow to load), without
    its pandas, polars and numpy support: what is diffed here is JSON, and where pandas is
    installed (most ML environments) importing it through deepdiff costs most of a second.
    The extras are hidden only while deepdiff loads; anything may import them afterwards.
    Planning runs on one thread, so no other import can see them hidden."""
    import sys

    hidden = [name for name in _DEEPDIFF_EXTRAS if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # import raises ImportError
    try:
        from deepdiff import DeepDiff
    finally:
        for name in hidden:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]
    return DeepDiff


def field_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[FieldChange]:
    """Per-field differences (leaf values, lists compared as wholes)."""
    if before == after:  # the common case, and far cheaper than a diff
        return []
    diff = _deepdiff()(
        before, after, ignore_order=False, verbose_level=2, view="tree", threshold_to_diff_deeper=0
    )
    out: list[FieldChange] = []
    for kind in (
        "values_changed",
        "type_changes",
        "dictionary_item_added",
        "dictionary_item_removed",
        "iterable_item_added",
        "iterable_item_removed",
    ):
        for item in diff.get(kind, []):
            path = item.path(output_format="list")
            if any(isinstance(p, int) for p in path):  # a list changed: show the whole list
                cut = next(i for i, p in enumerate(path) if isinstance(p, int))
                path = path[:cut]
            b, a = _get(before, path), _get(after, path)
            out.append(FieldChange(_path_text(path), b, a))
    unique = {c.path: c for c in out}
    return sorted(unique.values(), key=lambda c: c.path)


_MISSING = None


def _get(data: Any, path: Iterable[Any]) -> Any:
    for part in path:
        if (isinstance(data, dict) and part in data) or (
            isinstance(data, list) and isinstance(part, int) and part < len(data)
        ):
            data = data[part]
        else:
            return _MISSING
    return data


def apply_ignore(
    prior: Mapping[str, Any], desired: dict[str, Any], paths: Iterable[str]
) -> dict[str, Any]:
    """Desired with ignored spec paths set back to what was applied."""
    if not paths:  # the common case: desired is already this call's own JSON-typed copy
        return desired
    out: dict[str, Any] = json.loads(json.dumps(desired))
    for dotted in paths:
        parts = dotted.removeprefix("spec.").split(".")
        old = _get(prior.get("spec", {}), parts)
        node = out["spec"]
        for part in parts[:-1]:
            node = node.setdefault(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            if old is None:
                node.pop(parts[-1], None)
            else:
                node[parts[-1]] = old
    return out
