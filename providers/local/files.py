"""Files as the local provider's live objects: atomic writes, JSON records, ownership.

Every object the local provider realises is one JSON record on disk carrying the owner
labels (address and state lineage) of the resource that made it. Writes go through
``providers.durable``: a temporary file in the same directory, fsynced and renamed over the
target, then the directory fsynced, so a crash leaves either the old record or the new one,
never half of either.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from providers.base import JSON, OWNER_ADDRESS, OWNER_LINEAGE, PermanentError, ResourceContext
from providers.durable import atomic_write, durable_temp, fsync_dir, remove

__all__ = [  # atomic_write, fsync_dir and remove live in providers.durable
    "LABELS",
    "atomic_write",
    "check_name",
    "claim",
    "create_exclusive",
    "ensure_dir",
    "fsync_dir",
    "is_ours",
    "not_ours",
    "owner_labels",
    "read_json",
    "remove",
    "write_json",
]

LABELS = "labels"
# Names that become file names: no separators, no leading dot (temporary and key files
# start with one), at most 128 characters.
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def check_name(name: str, what: str) -> str:
    """A name safe to use as a file name in a store directory, or a PermanentError."""
    if not name or len(name) > 128 or name[0] == "." or not set(name) <= _NAME_CHARS:
        raise PermanentError(
            f"{what} {name!r} cannot be used as a local name: use at most 128 letters, "
            "digits, '.', '_' or '-', not starting with '.'"
        )
    return name


def ensure_dir(path: Path, mode: int = 0o755) -> None:
    """Create a directory (and parents) and set its mode, whatever the umask."""
    path.mkdir(parents=True, exist_ok=True, mode=mode)
    if path.stat().st_mode & 0o777 != mode:
        path.chmod(mode)


def create_exclusive(path: Path, data: bytes, mode: int = 0o600) -> bool:
    """Write path only if it does not exist yet (atomically); False when it already did."""
    tmp = durable_temp(path, data, mode)
    try:
        try:
            os.link(tmp, path)  # fails if another process made it first
        except FileExistsError:
            return False
        fsync_dir(path.parent)
        return True
    finally:
        os.unlink(tmp)


def write_json(path: Path, record: JSON, mode: int = 0o644) -> None:
    text = json.dumps(record, indent=2, sort_keys=True) + "\n"
    atomic_write(path, text.encode("utf-8"), mode)


def read_json(path: Path, shown: str) -> JSON | None:
    """The record at path, or None when there is none; a damaged record is an error."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        record: Any = json.loads(data.decode("utf-8"))
    except json.JSONDecodeError as exc:
        raise PermanentError(
            f"{shown} is not valid JSON ({exc.msg} at line {exc.lineno}); "
            "fix it, or delete it and apply again"
        ) from None
    except UnicodeDecodeError:
        raise PermanentError(f"{shown} is not UTF-8 text; delete it and apply again") from None
    if not isinstance(record, dict):
        raise PermanentError(f"{shown} does not hold a JSON object; delete it and apply again")
    return record


def owner_labels(path: Path) -> tuple[str, str] | None:
    """The (address, lineage) a record's ownership labels name, or None for a record that
    has none or cannot be read (looking for owned objects never fails on one)."""
    try:
        record = read_json(path, str(path))
    except (PermanentError, OSError):
        return None
    labels = (record or {}).get(LABELS)
    if not isinstance(labels, dict) or not isinstance(labels.get(OWNER_ADDRESS), str):
        return None
    return labels[OWNER_ADDRESS], str(labels.get(OWNER_LINEAGE) or "")


def is_ours(record: JSON, ctx: ResourceContext) -> bool:
    labels = record.get(LABELS)
    if not isinstance(labels, dict):
        return False
    return all(labels.get(k) == v for k, v in ctx.owner_labels.items())


def not_ours(
    ctx: ResourceContext, record: JSON, shown: str, object_id: str, importable: bool = True
) -> PermanentError:
    """The refusal to take over a record another resource (or nobody) owns; it gives the
    import command only for kinds the local provider imports."""
    labels = record.get(LABELS)
    labels = labels if isinstance(labels, dict) else {}
    if labels.get(OWNER_ADDRESS):
        owner = f"{labels.get(OWNER_ADDRESS)} in the state with lineage {labels.get(OWNER_LINEAGE)}"
    else:
        owner = "nothing pipeform manages (it has no ownership labels)"
    if importable:
        way = f"To manage it from here, run: pipeform import {ctx.address} {object_id}"
    else:
        way = (
            f"The local provider cannot import {ctx.kind} resources: destroy it from the "
            f"state that owns it, or give this {ctx.kind} another name"
        )
    return PermanentError(
        f"{shown} already exists and belongs to {owner}, not to {ctx.address} in this state "
        f"(lineage {ctx.lineage}), so it is left alone. {way}"
    )


def claim(
    path: Path, ctx: ResourceContext, shown: str, object_id: str, importable: bool = True
) -> JSON | None:
    """The existing record at path if it is ours (to adopt), None if there is none.

    Raises when a record exists that another resource owns: it is never taken over.
    """
    record = read_json(path, shown)
    if record is not None and not is_ours(record, ctx):
        raise not_ours(ctx, record, shown, object_id, importable)
    return record
