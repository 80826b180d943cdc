"""Masking of sensitive values, shared by every plan renderer (text, JSON, Markdown).

A field change marked ``sensitive`` and every path in ``ResourceChange.sensitive_paths``
(written from the document root, or relative to ``spec``) render as "(sensitive)".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from reconciler.plan.model import SENSITIVE, FieldChange, ResourceChange

_PATH_PART = re.compile(r"\[(\d+)\]|([^.\[\]]+)")
_TOP_LEVEL = ("spec", "metadata")


def normalise_path(path: str) -> str:
    """A document path: sensitive paths may be written relative to ``spec``."""
    head = re.split(r"[.\[]", path, maxsplit=1)[0]
    return path if head in _TOP_LEVEL else f"spec.{path}"


def _parts(path: str) -> list[str | int]:
    return [int(index) if index else key for index, key in _PATH_PART.findall(path)]


def _under(path: str, ancestor: str) -> bool:
    """Whether ``path`` is ``ancestor`` or lies inside it."""
    return path == ancestor or path.startswith((ancestor + ".", ancestor + "["))


def mask(value: Any, parts: list[str | int]) -> Any:
    """A copy of ``value`` with whatever sits at ``parts`` replaced by SENSITIVE."""
    if not parts:
        return SENSITIVE
    head, rest = parts[0], parts[1:]
    if isinstance(value, Mapping) and head in value:
        return {k: mask(v, rest) if k == head else v for k, v in value.items()}
    if isinstance(value, list) and isinstance(head, int) and head < len(value):
        return [mask(v, rest) if i == head else v for i, v in enumerate(value)]
    return value


def sensitive_paths(change: ResourceChange) -> list[str]:
    """Every document path of ``change`` whose value must not be shown, sorted."""
    paths = {normalise_path(p) for p in change.sensitive_paths}
    paths |= {f.path for f in change.field_changes if f.sensitive}
    return sorted(paths)


def _masked_document(document: dict[str, Any] | None, paths: Iterable[str]) -> Any:
    if document is None:
        return None
    out: Any = document
    for path in paths:
        out = mask(out, _parts(path))
    return out


def masked_before(change: ResourceChange) -> Any:
    return _masked_document(change.before, sensitive_paths(change))


def masked_after(change: ResourceChange) -> Any:
    return _masked_document(change.after, sensitive_paths(change))


def mask_field(field: FieldChange, paths: Iterable[str] = ()) -> FieldChange:
    """``field`` with its values masked where it, or anything inside it, is sensitive."""
    if field.sensitive:
        return replace(field, before=SENSITIVE, after=SENSITIVE)
    before, after = field.before, field.after
    for path in paths:
        if _under(field.path, path):
            return replace(field, before=SENSITIVE, after=SENSITIVE, sensitive=True)
        if _under(path, field.path):  # a sensitive value inside a changed list or object
            inner = _parts(path)[len(_parts(field.path)) :]
            before, after = mask(before, inner), mask(after, inner)
    return replace(field, before=before, after=after)


def masked_field_changes(change: ResourceChange) -> list[FieldChange]:
    paths = sensitive_paths(change)
    return [mask_field(f, paths) for f in change.field_changes]
