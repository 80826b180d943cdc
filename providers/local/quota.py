"""Quota on the local provider: limits recorded for the local executor, one JSON file each.

``<dataDir>/quotas/<name>.json`` holds the limits (gpus, gpuTypes, cpu, memory,
concurrentJobs; only those set), the namespace or team they apply to, and the owner
labels. The file is named after the Quota, or after the id it was imported
by (the external id). The local executor reads these files before starting a run; ``recorded_limits``
is its entry point. Quotas change in place: nothing about them forces a replacement.
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
from providers.local.settings import LocalSettings

LIMIT_FIELDS = ("gpus", "gpuTypes", "cpu", "memory", "concurrentJobs")
RECORD_KIND = "pipeform.local/Quota"


def quota_dir(settings: LocalSettings) -> Path:
    return settings.data_dir / "quotas"


def recorded_limits(settings: LocalSettings) -> dict[str, JSON]:
    """Every recorded quota's namespace and limits, by quota name (for the local executor)."""
    out: dict[str, JSON] = {}
    directory = quota_dir(settings)
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        record = files.read_json(path, settings.shown(path))
        if record is not None:
            out[path.stem] = _observed(record)
    return out


def _limits(spec: JSON) -> JSON:
    return {k: spec[k] for k in LIMIT_FIELDS if spec.get(k) is not None}


def _observed(record: JSON) -> JSON:
    return {"namespace": record.get("namespace"), "limits": dict(record.get("limits") or {})}


class QuotaHandler(KindHandler):
    kind = "Quota"

    def _path(self, name: str) -> Path:
        return quota_dir(self.settings) / f"{files.check_name(name, 'Quota name')}.json"

    def _outputs(self, path: Path, record: JSON) -> JSON:
        return {"file": self.settings.shown(path), "namespace": record.get("namespace")}

    def read(self, request: ReadRequest) -> ReadResponse:
        path = self._path(request.external_id or request.ctx.name)
        record = files.read_json(path, self.settings.shown(path))
        if record is None:
            return ReadResponse(exists=False)
        return ReadResponse(True, _observed(record), self._outputs(path, record), path.stem)

    def _write(self, ctx: ResourceContext, document: JSON, file_name: str | None) -> ApplyResponse:
        path = self._path(file_name or ctx.name)
        files.claim(path, ctx, self.settings.shown(path), path.stem)
        spec = inner_spec(document)
        record = {
            "kind": RECORD_KIND,
            "name": path.stem,
            "namespace": spec.get("namespace") or ctx.name,
            "limits": _limits(spec),
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
            raise PermanentError(f"there is no quota file {shown} to import")
        record[files.LABELS] = request.ctx.owner_labels
        files.write_json(path, record)
        observed = _observed(record)
        return ImportResponse(
            observed, _spec_of(request.ctx, observed), self._outputs(path, record), path.stem
        )


def _spec_of(ctx: ResourceContext, observed: JSON) -> JSON:
    """The imported quota in spec terms, shaped as the spec model writes it."""
    limits: dict[str, Any] = observed["limits"]
    namespace = observed.get("namespace")
    return {
        "provider": None,
        "namespace": None if namespace in (None, ctx.name) else namespace,
        **{k: limits.get(k) for k in LIMIT_FIELDS},
    }
