"""What one kind family of the local provider implements, so kinds plug in one module each.

``providers.local.LocalProvider`` dispatches every call to the handler registered for the
request's kind. A new kind (Dataset, TrainingJob, Alert...) is a subclass of
``KindHandler`` in its own module, added to ``providers.local.HANDLERS``.
"""

from __future__ import annotations

import abc
from typing import ClassVar

from providers.base import (
    JSON,
    ApplyRequest,
    ApplyResponse,
    CheckRequest,
    DeleteRequest,
    ImportRequest,
    ImportResponse,
    OwnedObject,
    PermanentError,
    PlanRequest,
    PlanResponse,
    ReadRequest,
    ReadResponse,
    ResourceContext,
    default_plan,
)
from providers.local import files
from providers.local.settings import LocalSettings
from reconciler.diagnostics import Diagnostic


class KindHandler(abc.ABC):
    """The provider protocol for one kind, with the local provider's settings at hand."""

    kind: ClassVar[str] = ""
    #: spec fields (dotted, such as ``spec.source.uri``) whose change forces a replacement
    replace_on: ClassVar[frozenset[str]] = frozenset()
    #: outputs only a create or update can tell (used by the default ``plan``)
    computed_outputs: ClassVar[tuple[str, ...]] = ()
    #: for a kind that cannot be imported: what to do instead, in words
    instead_of_import: ClassVar[str] = ""

    def __init__(self, settings: LocalSettings) -> None:
        self.settings = settings

    def validate(self, ctx: ResourceContext, spec: JSON) -> list[Diagnostic]:
        return []

    def check(self, request: CheckRequest) -> list[Diagnostic]:
        """What a create or update needs from outside the specs, before any change starts."""
        return []

    def plan(self, request: PlanRequest) -> PlanResponse:
        """Content-addressed kinds override this to return an inputs fingerprint."""
        return default_plan(request, self.replace_on, self.computed_outputs)

    @abc.abstractmethod
    def read(self, request: ReadRequest) -> ReadResponse: ...

    @abc.abstractmethod
    def create(self, request: ApplyRequest) -> ApplyResponse: ...

    @abc.abstractmethod
    def update(self, request: ApplyRequest) -> ApplyResponse: ...

    @abc.abstractmethod
    def delete(self, request: DeleteRequest) -> None: ...

    def import_(self, request: ImportRequest) -> ImportResponse:
        """Adopt an existing object; kinds that can override this (see ``importable``)."""
        raise PermanentError(f"the local provider cannot import {self.kind} resources")

    @classmethod
    def importable(cls) -> bool:
        return cls.import_ is not KindHandler.import_

    def owned_records(self) -> tuple[str, ...]:
        """Where this kind's records live: glob patterns under the data directory. The id
        of an object is the part the last ``*`` matches (``quotas/*.json``: the file's
        name; ``datasets/*/current.json``: the directory's)."""
        return ()

    def owned(self) -> list[OwnedObject]:
        """The records of this kind that carry ownership labels (any lineage)."""
        found = []
        for pattern in self.owned_records():
            by_file = "*" in pattern.rsplit("/", 1)[-1]
            for path in sorted(self.settings.data_dir.glob(pattern)):
                labels = files.owner_labels(path)
                if labels is not None:
                    object_id = path.stem if by_file else path.parent.name
                    found.append(OwnedObject(*labels, object_id, self.settings.shown(path)))
        return found


def inner_spec(document: JSON | None) -> JSON:
    """The ``spec`` part of a desired or applied document (``{metadata, spec}``)."""
    spec = (document or {}).get("spec")
    return spec if isinstance(spec, dict) else {}
