"""``pipeform state migrate``: copy a state, every kept version and the journal from one
backend to another, keeping lineage and serial.

Both locks are held while it copies (the caller takes them). A target that already holds
a state of another lineage is never overwritten; one of the same lineage is replaced only
when it is not newer than the source (a migrate run again). What was written is read back
and compared before the command reports success.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.state.backend import StateBackend, StateError
from reconciler.state.model import Dump


@dataclass(frozen=True)
class Copied:
    lineage: str
    serial: int
    resources: int
    versions: int
    journal: int


def _empty(dump: Dump) -> bool:
    return dump.serial == 0 and not dump.versions and not dump.journal and not dump.resources


def copy(source: StateBackend, target: StateBackend) -> Copied:
    """Copy source's whole state into target (the caller holds both locks)."""
    dump = source.dump()
    if not source.exists or _empty(dump):
        raise StateError(
            f"there is no state to migrate in {source.describe()}: nothing was ever applied there"
        )
    there = target.dump()
    if not _empty(there) and there.lineage != dump.lineage:
        raise StateError(
            f"{target.describe()} already holds another state (lineage {there.lineage}, serial "
            f"{there.serial}, {len(there.resources)} resources), and state migrate never "
            "overwrites a state of another lineage; nothing was copied.\n  Point --to at an "
            "empty location, or remove that state first if it is no longer needed"
        )
    if not _empty(there) and there.serial > dump.serial:
        raise StateError(
            f"{target.describe()} holds this state at serial {there.serial}, newer than the "
            f"source's {dump.serial}: it was written after an earlier migrate. Nothing was "
            "copied; migrate from it instead"
        )
    target.load(dump)
    written = target.dump()
    if written != dump:
        raise StateError(
            f"the copy in {target.describe()} does not read back as the source (lineage, serial, "
            "resources, versions and journal compared); the source is untouched. Run the "
            "command again"
        )
    return Copied(
        dump.lineage, dump.serial, len(dump.resources), len(dump.versions), len(dump.journal)
    )
