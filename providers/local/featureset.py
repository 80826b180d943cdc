"""FeatureSet on the local provider: content-addressed feature tables on the filesystem.

Layout under ``<dataDir>/features/<name>/``: one directory per materialisation,
``<id>/{train.parquet, validation.parquet, transform.json, stats.json, manifest.json}``,
never rewritten once in place, and ``current.json``, the record (owner labels, current id):
the live object. The id is content-addressed: ``fs-`` + the first 24 hex digits of the
inputs fingerprint, sha256 over the spec's hash, the Dataset snapshot id,
``TRANSFORM_CODE_VERSION`` and ``TABLE_FORMAT``. So nothing is materialised again unless
one of those moved (a pipeform upgrade that moves a version plans one re-materialisation),
and an apply whose directory already exists (and verifies) only points at it. Tables are
written into ``.<id>.<pid>-<start>.<random>/`` and renamed into place; what a killed apply
left there is removed by the next apply of the FeatureSet (``providers.leftovers``).

Reading verifies the tables: observed is ``{id, trainSha256, validationSha256}`` from the
files, so an edited table shows as drift and an apply writes a fresh copy. pyarrow is
imported only when something is materialised (``providers.local.data.features_build``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from providers import leftovers
from providers.base import (
    JSON,
    ApplyRequest,
    ApplyResponse,
    DeleteRequest,
    PermanentError,
    PlanRequest,
    PlanResponse,
    ReadRequest,
    ReadResponse,
)
from providers.local import files
from providers.local.kind import KindHandler, inner_spec
from providers.local.settings import LocalSettings
from reconciler import faults

RECORD_KIND = "pipeform.local/FeatureSet"
#: the value upstream outputs hold while they are pending (reconciler.plan.model.UNKNOWN)
UNKNOWN_PREFIX = "(known"
OUTPUTS = (
    "id",
    "dir",
    "train",
    "validation",
    "features",
    "featureTypes",
    "label",
    "entity",
    "segments",
    "transform",
    "stats",
    "datasetSnapshot",
)
#: kept in sync with providers.local.data.features.TRANSFORM_CODE_VERSION and
#: features_build.TABLE_FORMAT (a test checks); repeated here so that planning does not
#: import pyarrow
TRANSFORM_CODE_VERSION = 1
TABLE_FORMAT = 3


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def spec_hash(spec: JSON) -> str:
    """The hash of what shapes the tables: the inner spec without the provider choice."""
    shaped = {k: v for k, v in spec.items() if k != "provider"}
    return hashlib.sha256(_canonical(shaped).encode()).hexdigest()


def inputs_fingerprint(spec: JSON, snapshot: str, table_format: int | None = None) -> str:
    """sha256 over the spec hash, the Dataset snapshot id, the transform code version and
    the table format (this code's unless given; left out at format 1, so that format 1's
    ids are as they were)."""
    table_format = TABLE_FORMAT if table_format is None else table_format
    text = f"{spec_hash(spec)}\n{snapshot}\n{TRANSFORM_CODE_VERSION}"
    if table_format > 1:
        text += f"\n{table_format}"
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def feature_set_id(fingerprint: str) -> str:
    return "fs-" + fingerprint.removeprefix("sha256:")[:24]


def is_pending(value: object) -> bool:
    return value is None or (isinstance(value, str) and value.startswith(UNKNOWN_PREFIX))


def _snapshot(spec: JSON, upstream: Mapping[str, JSON]) -> tuple[str, JSON]:
    address = f"Dataset/{spec.get('dataset')}"
    outputs = upstream.get(address) or {}
    return address, outputs


def _reason(spec: JSON, snapshot: str, prior: JSON) -> str:
    """Why the FeatureSet is materialised again: a new snapshot, only a new table format
    (the prior id is this spec and snapshot at an older format), or the spec or code."""
    before = prior.get("datasetSnapshot")
    if before and before != snapshot:
        return f"dataset snapshot changed ({before} -> {snapshot})"
    older = range(1, TABLE_FORMAT)
    if prior.get("id") in {feature_set_id(inputs_fingerprint(spec, snapshot, f)) for f in older}:
        return "feature table format changed (pipeform upgrade); re-materialising"
    return "feature transform code or spec changed"


class FeatureSetHandler(KindHandler):
    kind = "FeatureSet"
    computed_outputs = OUTPUTS
    instead_of_import = (
        "apply it instead: tables already materialised from the same inputs are verified "
        "and reused, not built again"
    )

    def _root(self, name: str) -> Path:
        return self.settings.data_dir / "features" / files.check_name(name, "FeatureSet name")

    # --- plan ------------------------------------------------------------------------

    def plan(self, request: PlanRequest) -> PlanResponse:
        spec = inner_spec(request.desired_spec)
        address, upstream = _snapshot(spec, request.upstream)
        snapshot = upstream.get("snapshot")
        if is_pending(snapshot) or is_pending(upstream.get("path")):
            pending = "sha256:" + hashlib.sha256(f"{spec_hash(spec)}\npending".encode()).hexdigest()
            return PlanResponse(
                unknown_outputs=list(OUTPUTS),
                inputs_fingerprint=pending,
                reason_detail=f"input {address} changes (new snapshot known after apply)",
                trigger=self.settings.engine_note("runs"),
            )
        fingerprint = inputs_fingerprint(spec, str(snapshot))
        if feature_set_id(fingerprint) == request.prior_outputs.get("id"):
            return PlanResponse(inputs_fingerprint=fingerprint)
        return PlanResponse(
            unknown_outputs=list(OUTPUTS),
            inputs_fingerprint=fingerprint,
            reason_detail=_reason(spec, str(snapshot), request.prior_outputs),
            trigger=self.settings.engine_note("runs"),
        )

    # --- read ------------------------------------------------------------------------

    def owned_records(self) -> tuple[str, ...]:
        return ("features/*/current.json",)

    def read(self, request: ReadRequest) -> ReadResponse:
        root = self._root(request.ctx.name)
        record = files.read_json(root / "current.json", self.settings.shown(root / "current.json"))
        if record is None:
            return ReadResponse(exists=False)
        directory = root / files.check_name(str(record.get("id")), "FeatureSet id")
        manifest = files.read_json(directory / "manifest.json", self.settings.shown(directory))
        if manifest is None:
            return ReadResponse(exists=False)
        return ReadResponse(
            True, self._observed(directory), self._outputs(directory, manifest), record.get("id")
        )

    def _observed(self, directory: Path) -> JSON:
        from providers.durable import sha256_file

        def digest(split: str) -> str | None:
            path = directory / f"{split}.parquet"
            return sha256_file(path) if path.is_file() else None

        return {
            "id": directory.name,
            "trainSha256": digest("train"),
            "validationSha256": digest("validation"),
        }

    def _outputs(self, directory: Path, manifest: JSON) -> JSON:
        stored = _stored_uris(self.settings, manifest) if self.settings.has_artifacts_bucket else {}

        def table(split: str) -> JSON:
            found = {
                "path": str(directory / f"{split}.parquet"),
                "sha256": manifest["sha256"][split],
                "rows": manifest["rows"][split],
            }
            return {**found, "uri": stored[split]} if stored else found

        transform: JSON = {
            "path": str(directory / "transform.json"),
            "digest": manifest["transformDigest"],
        }
        if stored:
            transform["uri"] = stored["transform"]
        outputs: JSON = {
            "id": manifest["id"],
            "dir": str(directory),
            "train": table("train"),
            "validation": table("validation"),
            "features": list(manifest["features"]),
            "featureTypes": dict(manifest["featureTypes"]),
            "label": manifest["label"],
            "entity": list(manifest["entity"]),
            "segments": list(manifest.get("segments") or []),
            "transform": transform,
            "stats": str(directory / "stats.json"),
            "datasetSnapshot": manifest["datasetSnapshot"],
        }
        return outputs

    # --- create, update, delete ------------------------------------------------------

    def create(self, request: ApplyRequest) -> ApplyResponse:
        return self._apply(request)

    def update(self, request: ApplyRequest) -> ApplyResponse:
        return self._apply(request)

    def _apply(self, request: ApplyRequest) -> ApplyResponse:
        ctx, spec = request.ctx, inner_spec(request.spec)
        address, upstream = _snapshot(spec, request.upstream)
        snapshot, source = upstream.get("snapshot"), upstream.get("path")
        if is_pending(snapshot) or is_pending(source):
            raise PermanentError(
                f"{ctx.address} needs a snapshot of {address}, and there is none yet; "
                f"apply {address} first"
            )
        source_path = Path(str(source))
        if not source_path.is_file():
            raise PermanentError(
                f"the snapshot file of {address} ({source_path}) is missing; run pipeform "
                f"apply to snapshot {address} again"
            )
        root = self._root(ctx.name)
        record_path = root / "current.json"
        fs_id = feature_set_id(inputs_fingerprint(spec, str(snapshot)))
        files.claim(record_path, ctx, self.settings.shown(record_path), fs_id, importable=False)
        files.ensure_dir(root)
        leftovers.clean(root, ".")  # what a killed apply left: half-written tables, temp files
        directory = root / fs_id
        manifest = self._verified(directory)
        if manifest is None:
            manifest = self._materialise(ctx.address, spec, source_path, str(snapshot), directory)
        if self.settings.has_artifacts_bucket:
            _upload(self.settings, directory, manifest)
        record = {
            "kind": RECORD_KIND,
            "name": ctx.name,
            "id": fs_id,
            "datasetSnapshot": str(snapshot),
            files.LABELS: ctx.owner_labels,
        }
        if files.read_json(record_path, self.settings.shown(record_path)) != record:
            files.write_json(record_path, record)
        self._prune(root, keep={fs_id, str(request.prior_outputs.get("id"))})
        return ApplyResponse(self._outputs(directory, manifest), fs_id, self._observed(directory))

    def _verified(self, directory: Path) -> JSON | None:
        """The manifest of an existing materialisation whose tables match it, else None
        (a damaged or half-removed directory is removed, to be written again)."""
        if not directory.exists():
            return None
        from providers.durable import sha256_file

        manifest = files.read_json(directory / "manifest.json", self.settings.shown(directory))
        try:
            if manifest is not None and all(
                sha256_file(directory / f"{s}.parquet") == manifest["sha256"][s]
                for s in ("train", "validation")
            ):
                return manifest
        except (OSError, KeyError, TypeError):
            pass
        shutil.rmtree(directory)
        return None

    def _materialise(
        self, address: str, spec: JSON, source: Path, snapshot: str, directory: Path
    ) -> JSON:
        from providers.local.data.features import parse_spec
        from providers.local.data.features_build import materialise

        # named after this process, so a later apply can tell it was abandoned (_apply)
        temporary = directory.parent / leftovers.temp_name(f".{directory.name}")
        temporary.mkdir(mode=0o755)
        try:
            os.chmod(temporary, 0o755)
            if self.settings.engine:  # {type: spark, master: ...}: the same files, on Spark
                from providers.local.data.spark_engine import SparkSettings, materialise_spark

                engine = SparkSettings.from_config(self.settings.engine)
                parsed = parse_spec(spec)
                manifest = materialise_spark(
                    parsed, source, snapshot, directory.name, temporary, engine
                )
            else:
                manifest = materialise(
                    parse_spec(spec), source, snapshot, directory.name, temporary
                )
            faults.point("mid-materialise", address)  # tables written, not yet in place
            try:
                os.rename(temporary, directory)
            except OSError:  # another apply finished the same id first: its copy is as good
                if self._verified(directory) is None:
                    raise
            files.fsync_dir(directory.parent)
        finally:
            if temporary.exists():
                shutil.rmtree(temporary)
        return manifest

    def _prune(self, root: Path, keep: set[str]) -> None:
        """Remove materialisations other than the current and the previous one."""
        for path in root.iterdir():
            if path.is_dir() and path.name.startswith("fs-") and path.name not in keep:
                shutil.rmtree(path)

    def delete(self, request: DeleteRequest) -> None:
        root = self._root(request.ctx.name)
        record_path = root / "current.json"
        record = files.read_json(record_path, self.settings.shown(record_path))
        if record is None:
            return
        if not files.is_ours(record, request.ctx):
            raise files.not_ours(
                request.ctx,
                record,
                self.settings.shown(record_path),
                str(record.get("id")),
                importable=False,
            )
        for path in root.iterdir():
            if path.is_dir() and (path.name.startswith("fs-") or path.name.startswith(".fs-")):
                shutil.rmtree(path)
        files.remove(record_path)
        with contextlib.suppress(OSError):
            root.rmdir()


def _transform_sha256(manifest: JSON) -> str:
    """The key of transform.json in the artifacts bucket: its digest, as the manifest has it."""
    return str(manifest["transformDigest"]).removeprefix("sha256:")


def _stored_uris(settings: LocalSettings, manifest: JSON) -> dict[str, str]:
    """Where the tables and the transform are in the artifacts bucket (from their hashes)."""
    from providers.aws.artifacts import artifacts_for

    artifacts = artifacts_for(settings)
    assert artifacts is not None
    uris = {
        split: artifacts.content_uri("features", str(manifest["sha256"][split]), ".parquet")
        for split in ("train", "validation")
    }
    uris["transform"] = artifacts.content_uri("transforms", _transform_sha256(manifest), ".json")
    return uris


def _upload(settings: LocalSettings, directory: Path, manifest: JSON) -> None:
    """The tables and the transform into the artifacts bucket; what is there is not resent."""
    from providers.aws.artifacts import artifacts_for

    artifacts = artifacts_for(settings)
    assert artifacts is not None
    for name, uri in _stored_uris(settings, manifest).items():
        suffix = ".json" if name == "transform" else ".parquet"
        artifacts.put_file(directory / f"{name}{suffix}", uri)
