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

from providers import base
from reconciler.plan.planner import Providers
from reconciler.state.backend import StateBackend
from reconciler.state.model import JournalEntry, LockInfo, State, argv_command, now

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
