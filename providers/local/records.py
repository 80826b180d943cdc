"""Kinds whose live object is one JSON record file with owner labels (Budget, Quota).

``<dataDir>/<directory>/<name>.json`` holds ``kind``, ``name``, the kind's own fields and
the owner labels. The file is named after the resource, or after the id it was imported
by (the external id). Such records change in place; creating over a record of ours (a
create retried after a crash) adopts and rewrites it, and a record another resource owns
is never taken over. A subclass names its directory and record kind and says how a spec
becomes the record's fields, what refresh observes, the outputs, and the imported spec.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import ClassVar

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


class RecordHandler(KindHandler):
    """read/create/update/delete/import of one JSON record file per resource."""

    #: the record's ``kind`` field, such as ``pipeform.local/Budget``
    record_kind: ClassVar[str] = ""
    #: the directory under the data directory that holds the records
    directory: ClassVar[str] = ""

    @abc.abstractmethod
    def fields(self, ctx: ResourceContext, spec: JSON) -> JSON:
        """The record's own fields from the resource's spec."""

    @abc.abstractmethod
    def observed(self, record: JSON) -> JSON:
        """What refresh compares with the spec."""

    @abc.abstractmethod
    def outputs(self, path: Path, record: JSON) -> JSON: ...

    @abc.abstractmethod
    def spec_of(self, ctx: ResourceContext, observed: JSON) -> JSON:
        """An imported record in spec terms, shaped as the spec model writes it."""

    def owned_records(self) -> tuple[str, ...]:
        return (f"{self.directory}/*.json",)

    def _path(self, name: str) -> Path:
        file_name = files.check_name(name, f"{self.kind} name")
        return self.settings.data_dir / self.directory / f"{file_name}.json"

    def read(self, request: ReadRequest) -> ReadResponse:
        path = self._path(request.external_id or request.ctx.name)
        record = files.read_json(path, self.settings.shown(path))
        if record is None:
            return ReadResponse(exists=False)
        return ReadResponse(True, self.observed(record), self.outputs(path, record), path.stem)

    def _write(self, ctx: ResourceContext, document: JSON, file_name: str | None) -> ApplyResponse:
        path = self._path(file_name or ctx.name)
        files.claim(path, ctx, self.settings.shown(path), path.stem)
        record = {
            "kind": self.record_kind,
            "name": path.stem,
            **self.fields(ctx, inner_spec(document)),
            files.LABELS: ctx.owner_labels,
        }
        files.ensure_dir(path.parent)
        files.write_json(path, record)
        return ApplyResponse(self.outputs(path, record), path.stem, self.observed(record))

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
            raise PermanentError(f"there is no {self.kind.lower()} file {shown} to import")
        record[files.LABELS] = request.ctx.owner_labels
        files.write_json(path, record)
        observed = self.observed(record)
        spec = self.spec_of(request.ctx, observed)
        return ImportResponse(observed, spec, self.outputs(path, record), path.stem)
