"""The trainer's compact result for a pod's termination message (config version 4).

Kubernetes keeps at most 4096 bytes of ``terminationMessagePath`` and shows them in the
pod's status (``containerStatuses[].state.terminated.message``), so pipeform reads how a
run ended without another channel. The message is one compact JSON object: ``status``,
``run_id``, ``metrics``, ``model_version``, ``model_uri``, ``package_sha256``,
``promoted``, ``promotion``, ``error``, and ``trimmed: true`` when something had to be
left out to fit (the full ``result.json`` stays in the run's output directory). Texts
longer than 512 characters are cut; past the limit the error, the promotion text and the
URI are cut to 200 characters (and left out if still too long), and the metrics that fit
are kept, in name order.

Standard library and ``trainer.config`` only: the reconciler reads messages with it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trainer.config import TERMINATION_MESSAGE_LIMIT, RunResult

#: the longest error or promotion text kept whole
TEXT_LIMIT = 512
FIELDS = (
    "status",
    "run_id",
    "metrics",
    "model_version",
    "model_uri",
    "package_sha256",
    "promoted",
    "promotion",
    "error",
)


def _encoded(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()


def _short(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[: max(0, limit - 1)] + "…"


def message_of(result: RunResult, limit: int = TERMINATION_MESSAGE_LIMIT) -> bytes:
    """The compact JSON of a result, always under ``limit`` bytes."""
    full = result.model_dump(mode="json")
    message: dict[str, Any] = {k: full[k] for k in FIELDS if full.get(k) is not None}
    for key in ("error", "promotion"):
        message[key] = _short(message.get(key), TEXT_LIMIT)
    message = {k: v for k, v in message.items() if v is not None}
    encoded = _encoded(message)
    if len(encoded) < limit:
        return encoded
    message["trimmed"] = True
    metrics = message.pop("metrics", None) or {}
    for key in ("error", "promotion", "model_uri"):
        if key in message:
            message[key] = _short(str(message[key]), 200)
    for key in ("promotion", "model_uri", "error"):  # the essentials first
        if len(_encoded(message)) < limit - 64:
            break
        message.pop(key, None)
    kept: dict[str, Any] = {}
    used = len(_encoded({**message, "metrics": {}}))
    for name in sorted(metrics):  # then metrics, in name order, while they fit
        cost = len(_encoded({name: metrics[name]})) - 1  # '"name":value' and a comma
        if used + cost >= limit:
            break
        kept[name] = metrics[name]
        used += cost
    if kept:
        message["metrics"] = kept
    encoded = _encoded(message)
    assert len(encoded) < limit, "a run id and a status always fit"
    return encoded


def write_message(path: str, result: RunResult) -> None:
    """Write the message (a file Kubernetes mounted; not atomic: it reads it after exit)."""
    Path(path).write_bytes(message_of(result))


def parse_message(text: str) -> dict[str, Any] | None:
    """A termination message written by ``write_message``, or None (empty, or the log tail
    Kubernetes falls back to when the trainer wrote nothing)."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return None
    if not isinstance(value, dict) or not isinstance(value.get("status"), str):
        return None
    if not isinstance(value.get("run_id"), str):
        return None
    return value
