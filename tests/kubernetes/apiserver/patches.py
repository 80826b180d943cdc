"""JSON merge patch (RFC 7386) and JSON patch (RFC 6902), as the API server applies them
for ``application/merge-patch+json`` and ``application/json-patch+json``."""

from __future__ import annotations

import copy
from typing import Any

from tests.kubernetes.apiserver.resources import ApiError


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError(
            422,
            "Invalid",
            f"the server rejected our request due to an error in our request: invalid JSON pointer {path!r}",
        )
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str]) -> tuple[Any, str]:
    node = doc
    for part in parts[:-1]:
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError, TypeError):
            raise _missing(parts) from None
    return node, parts[-1]


def _missing(parts: list[str]) -> ApiError:
    return ApiError(
        422,
        "Invalid",
        f'the server rejected our request due to an error in our request: doc is missing path: "/{"/".join(parts)}"',
    )


def _get(doc: Any, parts: list[str]) -> Any:
    if not parts:
        return doc
    node, last = _parent(doc, parts)
    try:
        return node[int(last)] if isinstance(node, list) else node[last]
    except (KeyError, IndexError, ValueError, TypeError):
        raise _missing(parts) from None


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    node, last = _parent(doc, parts)
    if isinstance(node, list):
        if last == "-":
            node.append(value)
        else:
            index = int(last)
            if index > len(node):
                raise _missing(parts)
            node.insert(index, value)
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise _missing(parts)
    return doc


def _remove(doc: Any, parts: list[str]) -> Any:
    node, last = _parent(doc, parts)
    try:
        if isinstance(node, list):
            del node[int(last)]
        else:
            del node[last]
    except (KeyError, IndexError, ValueError, TypeError):
        raise _missing(parts) from None
    return doc


def json_patch(doc: Any, operations: Any) -> Any:
    if not isinstance(operations, list):
        raise ApiError.bad_request("json patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in operations:
        kind, parts = op.get("op"), _pointer(op.get("path", ""))
        if kind == "add":
            doc = _add(doc, parts, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            doc = _remove(doc, parts)
        elif kind == "replace":
            _get(doc, parts)
            doc = (
                _add(_remove(doc, parts), parts, copy.deepcopy(op.get("value")))
                if parts
                else op.get("value")
            )
        elif kind in ("move", "copy"):
            source = _pointer(op.get("from", ""))
            value = copy.deepcopy(_get(doc, source))
            if kind == "move":
                doc = _remove(doc, source)
            doc = _add(doc, parts, value)
        elif kind == "test":
            if _get(doc, parts) != op.get("value"):
                raise ApiError(
                    422,
                    "Invalid",
                    f"the server rejected our request due to an error in our request: testing value /{'/'.join(parts)} failed",
                )
        else:
            raise ApiError.bad_request(f"Unexpected kind: {kind}")
    return doc
