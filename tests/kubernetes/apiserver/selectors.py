"""Label and field selectors as the API server parses them: ``a=b``, ``a==b``, ``a!=b``,
``a in (x,y)``, ``a notin (x)``, ``a``, ``!a`` joined by commas; field selectors
``path=value``, ``path==value``, ``path!=value`` over the object's dotted paths."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from tests.kubernetes.apiserver.resources import ApiError

Matcher = Callable[[dict[str, Any]], bool]

_SET_TERM = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*(?:\s(in|notin)\s*\(([^)]*)\))?\s*$")


def _split_terms(selector: str) -> list[str]:
    """Commas split terms except inside ``( )``."""
    terms: list[str] = []
    current: list[str] = []
    depth = 0
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(char)
    terms.append("".join(current))
    return [t for t in (t.strip() for t in terms) if t]


def _label_term(term: str) -> Callable[[dict[str, str]], bool]:
    for op in ("!=", "==", "="):
        if op in term and "(" not in term:
            key, _, value = term.partition(op)
            key, value = key.strip(), value.strip()
            if not key:
                break
            if op == "!=":
                return lambda labels: labels.get(key) != value
            return lambda labels: labels.get(key) == value
    match = _SET_TERM.match(term)
    if not match:
        raise ApiError.bad_request(f"unable to parse requirement: {term!r}: invalid label selector")
    negate, key, op, values_text = match.groups()
    if op is None:
        if negate:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    if negate:
        raise ApiError.bad_request(f"unable to parse requirement: {term!r}")
    values = {v.strip() for v in values_text.split(",") if v.strip()}
    if op == "in":
        return lambda labels: labels.get(key) in values
    return lambda labels: labels.get(key) not in values


def label_matcher(selector: str | None) -> Matcher | None:
    if not selector or not selector.strip():
        return None
    terms = [_label_term(t) for t in _split_terms(selector)]

    def matches(obj: dict[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(term(labels) for term in terms)

    return matches


def _field_value(obj: dict[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, dict):
            return ""
        value = value.get(part)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def field_matcher(selector: str | None) -> Matcher | None:
    if not selector or not selector.strip():
        return None
    terms: list[tuple[str, bool, str]] = []
    for term in _split_terms(selector):
        for op in ("!=", "==", "="):
            if op in term:
                path, _, value = term.partition(op)
                terms.append((path.strip(), op != "!=", value.strip()))
                break
        else:
            raise ApiError.bad_request(
                f'invalid selector: "{selector}"; can\'t understand "{term}"'
            )

    def matches(obj: dict[str, Any]) -> bool:
        return all((_field_value(obj, p) == v) == equal for p, equal, v in terms)

    return matches


def name_from_field_selector(selector: str | None) -> str | None:
    """``metadata.name=x`` alone: the one object a list can be answered from by key."""
    if not selector or "," in selector:
        return None
    for op in ("==", "="):
        path, sep, value = selector.partition(op)
        if sep and path.strip() == "metadata.name" and "!" not in path:
            return value.strip()
    return None
