"""Budget on the local provider: the budget recorded as one JSON file, for tools to read.

``<dataDir>/budgets/<name>.json`` holds the amount (a decimal string), currency, period,
scope labels, alert thresholds, whether it is enforced, and the owner labels. Enforcement
itself happens at plan time (``reconciler.plan.policy``) against the specs; the record is the
live object that refresh compares and that burn alerts and dashboards may read. The file
is named after the Budget, or after the id it was imported by. Budgets change in place.
Reading, writing, deleting and importing the file is ``providers.local.records``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from providers.base import JSON, ResourceContext
from providers.local.records import RecordHandler

RECORD_KIND = "pipeform.local/Budget"
FIELDS = ("amount", "currency", "period", "scope", "thresholds", "enforce")


def _observed(record: JSON) -> JSON:
    return {k: record.get(k) for k in FIELDS}


def _record_of(spec: JSON) -> JSON:
    """The budget's settings from its spec, as written by the spec model (camelCase)."""
    scope = spec.get("scope") or {}
    return {
        "amount": str(spec.get("amount")),
        "currency": spec.get("currency") or "USD",
        "period": spec.get("period") or "monthly",
        "scope": {"labels": dict(scope.get("labels") or {})},
        "thresholds": [float(t) for t in spec.get("thresholds") or []],
        "enforce": bool(spec.get("enforce", False)),
    }


class BudgetHandler(RecordHandler):
    kind = "Budget"
    record_kind = RECORD_KIND
    directory = "budgets"

    def fields(self, ctx: ResourceContext, spec: JSON) -> JSON:
        return _record_of(spec)

    def observed(self, record: JSON) -> JSON:
        return _observed(record)

    def outputs(self, path: Path, record: JSON) -> JSON:
        return {"file": self.settings.shown(path), "amount": record.get("amount")}

    def spec_of(self, ctx: ResourceContext, observed: JSON) -> JSON:
        """The imported budget in spec terms, shaped as the spec model writes it."""
        spec: dict[str, Any] = {"provider": None, **observed}
        spec["scope"] = {"labels": dict((observed.get("scope") or {}).get("labels") or {})}
        return spec
