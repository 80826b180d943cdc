"""A lost or damaged state: noticing it, and bringing a kept version back.

An empty state beside live objects that carry this spec tree's ownership labels usually
means the state was lost (a 0-byte or replaced state file, a dropped table): the next
apply would make everything again, or fail on objects that belong to the old lineage.
Each provider says what it owns (``Provider.list_owned``), so no provider is special
here. ``restore`` makes the state what it was at a kept version, under the lock and
journalled, as one new version.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from providers import base
from reconciler.diagnostics import PipeformError
from reconciler.plan.planner import Providers
from reconciler.state.backend import StateBackend
from reconciler.state.model import JournalEntry, LockInfo, State, argv_command, now

if TYPE_CHECKING:
    from reconciler.state.migrate import Copied

SHOWN = 10  # addresses a warning names before "and N more"


def owned_without_state(providers: Providers, root: Path, state: State) -> list[base.OwnedObject]:
    """Objects the providers find with ownership labels when state holds no resource
    (none otherwise: the question is only asked of an empty state)."""
    if state.resources:
        return []
    request = base.ListOwnedRequest(root, state.lineage)
    found: list[base.OwnedObject] = []
    for _, provider in sorted(providers.instances.items()):
        try:
            found += provider.list_owned(request).objects
        except (base.ProviderError, OSError):
            continue  # advice only: a provider that cannot look says nothing
    return found


def owned_warning(objects: list[base.OwnedObject], state: State) -> list[str]:
    """The warning for objects found beside an empty state: how many, which addresses,
    which state made them, and the ways back."""
    if not objects:
        return []
    addresses = sorted({o.address for o in objects})
    n = len(objects)
    lines = [
        f"Warning: the state holds no resources, but the providers found {n} object"
        f"{'s' if n != 1 else ''} that pipeform made for {len(addresses)} address"
        f"{'es' if len(addresses) != 1 else ''} of this spec tree:"
    ]
    for address in addresses[:SHOWN]:
        mine = [o for o in objects if o.address == address]
        where = ", ".join(o.where for o in mine[:2]) + (" ..." if len(mine) > 2 else "")
        lines.append(f"  {address}  (id {mine[0].id}: {where})")
    if len(addresses) > SHOWN:
        lines.append(f"  ... and {len(addresses) - SHOWN} more")
    others = sorted({o.lineage for o in objects if o.lineage and o.lineage != state.lineage})
    if others:
        now_lineage = state.lineage or "none yet"
        lines.append(
            f"  They belong to the state with lineage {', '.join(others)}; this state's "
            f"lineage is {now_lineage}."
        )
    lines.append(
        "  If the state was lost or damaged, do not apply: bring it back with "
        "`pipeform state versions` and `pipeform state restore SERIAL`, or adopt each "
        "object with `pipeform import ADDRESS ID`. Applying now makes them again, or fails "
        "where an object belongs to another state. If you removed them from the state on "
        "purpose (state rm), they are unmanaged, as intended."
    )
    return lines


@dataclass(frozen=True)
class Restored:
    serial: int  # the new version
    restored_from: int
    changes: dict[str, str]  # address -> added | changed | removed
    resources: int


def restore(backend: StateBackend, serial: int, lineage: str | None = None) -> Restored:
    """Make the state what it was at serial, as one new version, journalled (the caller
    holds the lock)."""
    command = argv_command()
    started = now()
    who = LockInfo.for_this_process(command).who
    entry = JournalEntry(command, who, started, "", None, None, 0, 0)
    new, changes = backend.restore(serial, entry, lineage)
    return Restored(new, serial, changes, len(backend.read().resources))


def read_state_block(path: Path) -> dict[str, Any]:
    """The state block in a YAML file (``state: {...}``, or the block alone), checked
    against the Workspace's model; one error naming the file when it is not one."""
    from pydantic import TypeAdapter, ValidationError

    from reconciler.diagnostics import Diagnostics
    from reconciler.kinds.workspace import StateBackend as StateBlock
    from reconciler.spec.source import parse_bytes, read_bytes

    found = Diagnostics()
    data = read_bytes(path, str(path), found)
    documents = parse_bytes(data, str(path), found) if data is not None else []
    if found.has_errors:
        raise PipeformError(found)
    body = documents[0].data if len(documents) == 1 else None
    if isinstance(body, dict) and isinstance(body.get("spec"), dict):
        body = body["spec"]
    if isinstance(body, dict) and "state" in body:
        body = body["state"]
    if not isinstance(body, dict):
        raise PipeformError(
            f"{path}: expected one YAML document holding a Workspace state block, such as "
            "state: {backend: postgres, dsn: {env: PIPEFORM_PG_DSN}, schemaName: churn}"
        )
    try:
        block = TypeAdapter(StateBlock).validate_python(body)
    except ValidationError as exc:
        problems = "; ".join(
            f"state.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise PipeformError(f"{path}: not a valid state block: {problems}") from None
    result: dict[str, Any] = block.model_dump()
    return result


def migrate(source: StateBackend, target: StateBackend, timeout: float) -> Copied:
    """Copy source into target holding both locks (the source's first), then release them."""
    from reconciler.state import migrate as copying

    if source.describe() == target.describe():
        raise PipeformError(f"the state is already in {target.describe()}: nothing to migrate")
    command = argv_command()
    first, second = LockInfo.for_this_process(command), LockInfo.for_this_process(command)
    source.acquire_lock(first, timeout)
    try:
        target.acquire_lock(second, timeout)
        try:
            return copying.copy(source, target)
        finally:
            target.release_lock(second.id)
    finally:
        source.release_lock(first.id)
