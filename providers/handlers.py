"""Providers made of one handler per kind: the handler's protocol and the dispatch to it.

A provider that realises several kinds (``local``, ``aws``) keeps one ``KindHandler``
subclass per kind and mixes in ``Dispatching``, which sends every call of the provider
protocol to the handler of the request's kind. Shared here so that the providers do not
each carry a copy.
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
    PermanentError,
    PlanRequest,
    PlanResponse,
    ReadRequest,
    ReadResponse,
    ResourceContext,
    default_plan,
)
from reconciler.diagnostics import Diagnostic


class KindHandler(abc.ABC):
    """The provider protocol for one kind of one provider."""

    kind: ClassVar[str] = ""
    provider: ClassVar[str] = ""  # the provider's name, for messages
    #: spec fields (dotted, such as ``spec.source.uri``) whose change forces a replacement
    replace_on: ClassVar[frozenset[str]] = frozenset()
    #: outputs only a create or update can tell (used by the default ``plan``)
    computed_outputs: ClassVar[tuple[str, ...]] = ()

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
        raise PermanentError(f"the {self.provider} provider cannot import {self.kind} resources")

    @classmethod
    def importable(cls) -> bool:
        return cls.import_ is not KindHandler.import_


class Dispatching(abc.ABC):
    """Every call of the provider protocol goes to ``handler(kind)``; mixed into a Provider."""

    @abc.abstractmethod
    def handler(self, kind: str) -> KindHandler: ...

    def validate(self, ctx: ResourceContext, spec: JSON) -> list[Diagnostic]:
        return self.handler(ctx.kind).validate(ctx, spec)

    def check(self, request: CheckRequest) -> list[Diagnostic]:
        return self.handler(request.ctx.kind).check(request)

    def read(self, request: ReadRequest) -> ReadResponse:
        return self.handler(request.ctx.kind).read(request)

    def plan(self, request: PlanRequest) -> PlanResponse:
        return self.handler(request.ctx.kind).plan(request)

    def create(self, request: ApplyRequest) -> ApplyResponse:
        return self.handler(request.ctx.kind).create(request)

    def update(self, request: ApplyRequest) -> ApplyResponse:
        return self.handler(request.ctx.kind).update(request)

    def delete(self, request: DeleteRequest) -> None:
        self.handler(request.ctx.kind).delete(request)

    def import_(self, request: ImportRequest) -> ImportResponse:
        return self.handler(request.ctx.kind).import_(request)


def claim_owned(
    found: tuple[str, str] | None, ctx: ResourceContext, shown: str, external_id: str
) -> None:
    """Refuse to take over an object whose owner marks (address, lineage), ``found``, are
    not this resource's of this state; shared by the providers that adopt on create."""
    if found == (ctx.address, ctx.lineage):
        return
    if found is None:
        whose = "was not made by pipeform"
    elif found[0] != ctx.address:
        whose = f"belongs to {found[0]}"
    else:
        whose = f"belongs to another state (lineage {found[1]})"
    raise PermanentError(
        f"{shown} already exists and {whose}; to manage it as {ctx.address}, run "
        f"`pipeform import {ctx.address} {external_id}`, or give the resource another name"
    )


def inner_spec(document: JSON | None) -> JSON:
    """The ``spec`` part of a desired or applied document (``{metadata, spec}``)."""
    spec = (document or {}).get("spec")
    return spec if isinstance(spec, dict) else {}
