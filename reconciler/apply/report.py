"""What an apply did: one Outcome per change (succeeded, failed or skipped), the report
that collects them with the state serial it ended at, and the listener told of each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from reconciler.plan.model import Action, ResourceChange


@dataclass(frozen=True)
class Outcome:
    address: str
    action: Action
    status: str  # succeeded | failed | skipped
    error: str | None = None
    seconds: float = 0.0
    note: str | None = None  # the provider's word on a success (a promotion held back)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "address": self.address,
            "action": self.action.value,
            "status": self.status,
            "error": self.error,
            "seconds": round(self.seconds, 3),
        }
        if self.note:
            out["detail"] = self.note
        return out


@dataclass
class ApplyReport:
    outcomes: list[Outcome] = field(default_factory=list)
    serial: int = 0

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def failed(self) -> bool:
        return self.count("failed") > 0


#: told of each change as it starts (outcome None) and finishes
Listener = Callable[[str, ResourceChange, Outcome | None], None]


@dataclass(frozen=True)
class ApplyOptions:
    """How the providers are asked to make each change (``providers.base.ApplyRequest``)."""

    force_conflicts: bool = False  # apply --force-conflicts: take fields other managers hold
    wait: bool = True  # apply --no-wait: record started jobs as running, do not wait
