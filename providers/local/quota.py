"""Quota on the local provider: limits recorded for the local executor, one JSON file each.

``<dataDir>/quotas/<name>.json`` holds the limits (gpus, gpuTypes, cpu, memory,
concurrentJobs; only those set), the namespace or team they apply to, and the owner
labels. The file is named after the Quota, or after the id it was imported by (the
external id). The local executor reads these files before starting a run;
``recorded_limits`` is its entry point. Quotas change in place: nothing about them forces
a replacement. Reading, writing, deleting and importing the file is
``providers.local.records``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from providers.base import JSON, ResourceContext
from providers.local import files
from providers.local.records import RecordHandler
from providers.local.settings import LocalSettings

LIMIT_FIELDS = ("gpus", "gpuTypes", "cpu", "memory", "concurrentJobs")
RECORD_KIND = "pipeform.local/Quota"
DIRECTORY = "quotas"


def quota_dir(settings: LocalSettings) -> Path:
    return settings.data_dir / DIRECTORY


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


class QuotaHandler(RecordHandler):
    kind = "Quota"
    record_kind = RECORD_KIND
    directory = DIRECTORY

    def fields(self, ctx: ResourceContext, spec: JSON) -> JSON:
        return {"namespace": spec.get("namespace") or ctx.name, "limits": _limits(spec)}

    def observed(self, record: JSON) -> JSON:
        return _observed(record)

    def outputs(self, path: Path, record: JSON) -> JSON:
        return {"file": self.settings.shown(path), "namespace": record.get("namespace")}

    def spec_of(self, ctx: ResourceContext, observed: JSON) -> JSON:
        """The imported quota in spec terms, shaped as the spec model writes it."""
        limits: dict[str, Any] = observed["limits"]
        namespace = observed.get("namespace")
        return {
            "provider": None,
            "namespace": None if namespace in (None, ctx.name) else namespace,
            **{k: limits.get(k) for k in LIMIT_FIELDS},
        }
