"""What the applier schedules when: what each change waits for (dependencies first; when
deleting, dependents first), and what a failure or a stop holds back, with the reason
each held change is reported as skipped."""

from __future__ import annotations

from reconciler.apply.report import Outcome
from reconciler.plan.model import Action, ResourceChange


class Held:
    """What a failure holds back: resources that depend on a failed one are not started.

    A held change is reported as skipped, saying which dependency failed or was itself
    skipped (and, then, which failure upstream caused it). A held resource that had
    nothing to do (no-op) is not reported at all, and is looked through: what depends on
    it names the failure behind it."""

    def __init__(self, changes: dict[str, ResourceChange]) -> None:
        self.changes = changes
        self.failed: set[str] = set()
        self.roots: dict[str, set[str]] = {}  # held address -> the failures that hold it

    def blocked(self, address: str, waits: set[str]) -> bool:
        return any(w in self.failed or w in self.roots for w in waits)

    def skip(self, address: str, waits: set[str]) -> Outcome | None:
        """Hold back address: its skipped outcome, or None for a no-op."""
        through = [w for w in waits if w in self.roots]
        roots = {w for w in waits if w in self.failed}.union(*(self.roots[w] for w in through))
        self.roots[address] = roots
        change = self.changes[address]
        if change.action is Action.NOOP:
            return None
        unchanged = [w for w in through if self.changes[w].action is Action.NOOP]
        failed = {w for w in waits if w in self.failed}.union(*(self.roots[w] for w in unchanged))
        skipped = sorted(w for w in through if w not in unchanged)
        if not failed:  # only skipped dependencies: name the failure behind them
            were = "was" if len(skipped) == 1 else "were"
            reason = (
                f"depends on {' and '.join(skipped)}, which {were} skipped because "
                f"{' and '.join(sorted(roots))} failed"
            )
        else:
            parts = [f"{d}, which failed" for d in sorted(failed)]
            parts += [f"{d}, which was skipped" for d in skipped]
            reason = "depends on " + ", and on ".join(parts)
        return Outcome(address, change.action, "skipped", reason)


def stopped(change: ResourceChange) -> Outcome | None:
    """A change not started because the apply was asked to stop (SIGTERM to the
    controller); a no-op is not reported."""
    if change.action is Action.NOOP:
        return None
    return Outcome(change.address, change.action, "skipped", "not started: the apply was stopped")


def prerequisites(changes: dict[str, ResourceChange]) -> dict[str, set[str]]:
    """What must finish before each change starts: dependencies first; when deleting,
    dependents first."""
    deleting = {a for a, c in changes.items() if c.action is Action.DELETE}
    users: dict[str, set[str]] = {}
    for address, change in changes.items():
        for dependency in change.dependencies:
            users.setdefault(dependency, set()).add(address)
    waits: dict[str, set[str]] = {}
    for address, change in changes.items():
        if address in deleting:
            waits[address] = {u for u in users.get(address, ()) if u in deleting}
        else:
            waits[address] = {d for d in change.dependencies if d in changes and d not in deleting}
    return waits
