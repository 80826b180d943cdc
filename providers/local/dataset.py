"""Dataset on the local provider: a validated, content-addressed parquet snapshot of a source.

The live object is ``<dataDir>/datasets/<name>/current.json``: the owner labels, the
current snapshot id, the source it came from (with its size, modification time and
fingerprint, so the next look at an unchanged file costs one ``stat``) and the outputs.
``read`` observes the source's fingerprint and the current snapshot; ``plan`` predicts the
snapshot id from the spec and the source's bytes, so a plan knows when nothing changed
(same id: no unknown outputs) and says why when something did ("source changed (...)").
``create``/``update`` take the snapshot (``providers.local.data.snapshot``) and point
``current.json`` at it; a failed validation leaves ``current.json`` as it was.
pyarrow is imported only when a snapshot is taken.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from providers.base import (
    JSON,
    ApplyRequest,
    ApplyResponse,
    DeleteRequest,
    ImportRequest,
    ImportResponse,
    PermanentError,
    PlanRequest,
    PlanResponse,
    ReadRequest,
    ReadResponse,
    ResourceContext,
    report_progress,
)
from providers.local import files
from providers.local.data.layout import (
    current_path,
    dataset_dir,
    manifest_unverified,
    same_material,
    snapshot_id,
    snapshot_key,
)
from providers.local.data.readers import Source, open_source
from providers.local.kind import KindHandler, inner_spec
from providers.local.settings import LocalSettings
from reconciler.kinds.data import DatasetSpec
from reconciler.kinds.data import Source as SourceSpec

RECORD_KIND = "pipeform.local/Dataset"
#: outputs a new snapshot changes
SNAPSHOT_OUTPUTS = ("snapshot", "path", "sha256", "rows", "report", "createdAt", "fingerprint")


def short(fingerprint: str) -> str:
    """'sha256:1f2e3d4c…' — enough of a fingerprint to tell two apart in a plan."""
    algorithm, _, digest = fingerprint.partition(":")
    return f"{algorithm}:{digest[:8]}…"


class DatasetHandler(KindHandler):
    kind = "Dataset"
    computed_outputs = SNAPSHOT_OUTPUTS

    # --- helpers -------------------------------------------------------------------------

    def _spec(self, document: JSON | None) -> DatasetSpec:
        try:
            return DatasetSpec.model_validate(inner_spec(document))
        except ValidationError as exc:
            raise PermanentError(
                f"the Dataset spec is not valid: {exc.errors()[0]['msg']}"
            ) from None

    def _source(self, source: SourceSpec) -> Source:
        fmt = source.inferred_format()
        assert fmt is not None  # the spec model refuses a source whose format is unknown
        return open_source(source.uri, fmt, source.csv, self.settings)

    def _record(self, name: str) -> tuple[Path, JSON | None]:
        path = current_path(self.settings, name)
        return path, files.read_json(path, self.settings.shown(path))

    def _snapshot_exists(self, name: str, record: JSON) -> bool:
        sid = record.get("snapshot")
        directory = dataset_dir(self.settings, name) / "snapshots" / str(sid)
        return isinstance(sid, str) and (directory / "data.parquet").is_file()

    # --- protocol ------------------------------------------------------------------------

    def owned_records(self) -> tuple[str, ...]:
        return ("datasets/*/current.json",)

    def read(self, request: ReadRequest) -> ReadResponse:
        name = request.external_id or request.ctx.name
        _, record = self._record(name)
        if record is None or not self._snapshot_exists(name, record):
            return ReadResponse(exists=False)
        return ReadResponse(True, self._observed(record), dict(record.get("outputs") or {}), name)

    def _observed(self, record: JSON) -> JSON:
        """The live state: the recorded source's fingerprint now, and the current snapshot."""
        fingerprint = None
        stored = record.get("source") or {}
        try:
            source = self._source(SourceSpec.model_validate(stored.get("spec") or {}))
            fingerprint = source.fingerprint(stored)
        except (PermanentError, ValidationError):
            pass  # a source that is gone or refused: plan says so in words
        return {"fingerprint": fingerprint, "snapshot": record.get("snapshot")}

    def plan(self, request: PlanRequest) -> PlanResponse:
        spec = self._spec(request.desired_spec)
        _, record = self._record(request.ctx.name)
        source = self._source(spec.source)
        cached = (record or {}).get("source")
        fingerprint = source.fingerprint(cached if isinstance(cached, dict) else None)
        key = snapshot_key(spec, fingerprint)
        inputs = f"sha256:{key}"
        prior = request.prior_outputs
        if prior.get("snapshot") == snapshot_id(key):
            return PlanResponse(inputs_fingerprint=inputs)
        before = prior.get("fingerprint")
        if isinstance(before, str) and before != fingerprint:
            detail = f"source changed ({short(before)} → {short(fingerprint)})"
        elif prior:
            detail = self._retake_reason(request.ctx.name, prior.get("snapshot"), spec, fingerprint)
        else:
            detail = None
        return PlanResponse(
            unknown_outputs=list(SNAPSHOT_OUTPUTS),
            inputs_fingerprint=inputs,
            reason_detail=detail,
            trigger=self.settings.engine_note("rules checked"),
        )

    def _retake_reason(self, name: str, sid: Any, spec: DatasetSpec, fingerprint: str) -> str:
        """Why the snapshot of an unchanged source is taken again: its spec changed, or only
        the way pipeform writes snapshots (their id names the reader and snapshot format)."""
        manifest = None
        if isinstance(sid, str):
            directory = dataset_dir(self.settings, name) / "snapshots" / sid
            manifest = manifest_unverified(directory)
        if manifest is not None and same_material(manifest, spec, fingerprint):
            return "snapshot format changed (pipeform upgrade); re-taking the snapshot"
        return "schema or validation rules changed"

    def create(self, request: ApplyRequest) -> ApplyResponse:
        # a current.json of ours (a create retried after a crash) is adopted
        return self._snapshot(request.ctx, request.spec, request.external_id)

    def update(self, request: ApplyRequest) -> ApplyResponse:
        return self._snapshot(request.ctx, request.spec, request.external_id)

    def _snapshot(
        self, ctx: ResourceContext, document: JSON, external_id: str | None
    ) -> ApplyResponse:
        from providers.local.data import snapshot

        name = external_id or ctx.name
        spec = self._spec(document)
        path, _ = self._record(name)
        shown = self.settings.shown(path)
        record = files.claim(path, ctx, shown, name)
        previous = cached = None
        if record is not None and self._snapshot_exists(name, record):
            cached = record.get("source") if isinstance(record.get("source"), dict) else None
            previous = snapshot.load_manifest_unverified(
                dataset_dir(self.settings, name) / "snapshots" / str(record["snapshot"])
            )
        source = self._source(spec.source)
        taken = snapshot.take(self.settings, name, spec, source, previous, cached)
        outputs = _outputs(taken.manifest, taken.data, taken.report)
        if self.settings.has_artifacts_bucket:
            outputs["uri"] = _store(self.settings, taken.data, str(taken.manifest["sha256"]))
        report_progress(ctx.address, {"event": "validated", "summary": outputs["summary"]})
        new = {
            "kind": RECORD_KIND,
            "name": name,
            "snapshot": taken.id,
            "source": {
                "spec": spec.source.model_dump(mode="json", by_alias=True),
                **taken.manifest["source"],
            },
            "outputs": outputs,
            files.LABELS: ctx.owner_labels,
        }
        if new != record:  # nothing is rewritten when nothing changed
            files.ensure_dir(path.parent)
            files.write_json(path, new)
        observed = {"fingerprint": taken.manifest["source"]["fingerprint"], "snapshot": taken.id}
        return ApplyResponse(outputs, name, observed)

    def delete(self, request: DeleteRequest) -> None:
        name = request.external_id or request.ctx.name
        path, record = self._record(name)
        if record is None:
            return
        if not files.is_ours(record, request.ctx):
            raise files.not_ours(request.ctx, record, self.settings.shown(path), name)
        directory = dataset_dir(self.settings, name)
        # snapshots first: a crash in between leaves a record that reads as gone, and a
        # retried delete finishes the job
        for part in ("snapshots", "reports"):
            shutil.rmtree(directory / part, ignore_errors=True)
        files.remove(path)
        if directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()

    def import_(self, request: ImportRequest) -> ImportResponse:
        name = files.check_name(request.id, "Dataset name")
        path, record = self._record(name)
        shown = self.settings.shown(path)
        if record is None or not self._snapshot_exists(name, record):
            raise PermanentError(f"there is no dataset snapshot record {shown} to import")
        record[files.LABELS] = request.ctx.owner_labels
        files.write_json(path, record)
        return ImportResponse(self._observed(record), None, dict(record.get("outputs") or {}), name)


def _store(settings: LocalSettings, data: Path, sha256: str) -> str:
    """Upload the snapshot to the artifacts bucket under its content hash; its s3:// URI."""
    from providers.aws.artifacts import artifacts_for

    artifacts = artifacts_for(settings)
    assert artifacts is not None
    uri = artifacts.content_uri("snapshots", sha256, ".parquet")
    artifacts.put_file(data, uri)
    return uri


def _drift(report: Path) -> dict[str, float]:
    """PSI by column against the previous snapshot, from the validation report's drift
    checks (none without validation.drift or a previous snapshot)."""
    try:
        checks = json.loads(report.read_text(encoding="utf-8")).get("checks") or []
    except (OSError, ValueError):
        return {}
    return {
        str(c["column"]): float(c["observed"])
        for c in checks
        if isinstance(c, dict)
        and c.get("rule") == "drift"
        and c.get("column")
        and isinstance(c.get("observed"), int | float)
    }


def _outputs(manifest: JSON, data: Path, report: Path) -> dict[str, Any]:
    return {
        "snapshot": manifest["id"],
        "path": str(data),
        "sha256": manifest["sha256"],
        "rows": manifest["rows"],
        "columns": [c["name"] for c in manifest["columns"]],
        "fingerprint": manifest["source"]["fingerprint"],
        "report": str(report),
        "createdAt": manifest["createdAt"],
        "summary": manifest["summary"],
        "drift": _drift(report),
    }
