"""Budget on the local provider: the budget recorded as one JSON file, for tools to read.

``<dataDir>/budgets/<name>.json`` holds the amount (a decimal string), currency, period,
scope labels, alert thresholds, whether it is enforced, and the owner labels. Enforcement
itself happens at plan time (``reconciler.policy``) against the specs; the record is the
live object that refresh compares and that burn alerts and dashboards may read. The file
is named after the Budget, or after the id it was imported by. Budgets change in place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from providers.base import (
    JSON,
    ApplyRequest,
    ApplyResponse,
    DeleteRequest,
    ImportRequest,
    ImportResponse,
    PermanentError,
    ReadRequest,
    ReadResponse,
    ResourceContext,
)
from providers.local import files
from providers.local.kind import KindHandler, inner_spec

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


class BudgetHandler(KindHandler):
    kind = "Budget"

    def _path(self, name: str) -> Path:
        directory = self.settings.data_dir / "budgets"
        return directory / f"{files.check_name(name, 'Budget name')}.json"

    def _outputs(self, path: Path, record: JSON) -> JSON:
        return {"file": self.settings.shown(path), "amount": record.get("amount")}

    def read(self, request: ReadRequest) -> ReadResponse:
        path = self._path(request.external_id or request.ctx.name)
        record = files.read_json(path, self.settings.shown(path))
        if record is None:
            return ReadResponse(exists=False)
        return ReadResponse(True, _observed(record), self._outputs(path, record), path.stem)

    def _write(self, ctx: ResourceContext, document: JSON, file_name: str | None) -> ApplyResponse:
        path = self._path(file_name or ctx.name)
        files.claim(path, ctx, self.settings.shown(path), path.stem)
        record = {
            "kind": RECORD_KIND,
            "name": path.stem,
            **_record_of(inner_spec(document)),
            files.LABELS: ctx.owner_labels,
        }
        files.ensure_dir(path.parent)
        files.write_json(path, record)
        return ApplyResponse(self._outputs(path, record), path.stem, _observed(record))

    def create(self, request: ApplyRequest) -> ApplyResponse:
        # An existing file of ours (a create retried after a crash) is adopted and rewritten.
        return self._write(request.ctx, request.spec, request.external_id)

    def update(self, request: ApplyRequest) -> ApplyResponse:
        return self._write(request.ctx, request.spec, request.external_id)

    def delete(self, request: DeleteRequest) -> None:
        path = self._path(request.external_id or request.ctx.name)
        record = files.read_json(path, self.settings.shown(path))
        if record is None:
            return
        if not files.is_ours(record, request.ctx):
            raise files.not_ours(request.ctx, record, self.settings.shown(path), path.stem)
        files.remove(path)

    def import_(self, request: ImportRequest) -> ImportResponse:
        path = self._path(request.id)
        shown = self.settings.shown(path)
        record = files.read_json(path, shown)
        if record is None:
            raise PermanentError(f"there is no budget file {shown} to import")
        record[files.LABELS] = request.ctx.owner_labels
        files.write_json(path, record)
        observed = _observed(record)
        return ImportResponse(observed, _spec_of(observed), self._outputs(path, record), path.stem)


def _spec_of(observed: JSON) -> JSON:
    """The imported budget in spec terms, shaped as the spec model writes it."""
    spec: dict[str, Any] = {"provider": None, **observed}
    spec["scope"] = {"labels": dict((observed.get("scope") or {}).get("labels") or {})}
    return spec
