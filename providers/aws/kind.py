"""What one kind of the aws provider implements, and the ownership checks they share.

``providers.aws.AwsProvider`` dispatches every call to the handler registered for the
request's kind (``secrets``, ``budgets``, ``alarms``). Every object the provider makes
carries the ownership tags (``pipeform.dev/address``, ``pipeform.dev/lineage``): a create
that finds an object of ours adopts it, one of another state is refused with a pointer to
``pipeform import``.
"""

from __future__ import annotations

import abc
from typing import ClassVar

from providers.aws.session import AwsSettings, Clients
from providers.base import (
    JSON,
    OWNER_ADDRESS,
    OWNER_LINEAGE,
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


class AwsHandler(abc.ABC):
    kind: ClassVar[str] = ""
    replace_on: ClassVar[frozenset[str]] = frozenset()
    computed_outputs: ClassVar[tuple[str, ...]] = ()

    def __init__(self, settings: AwsSettings, clients: Clients) -> None:
        self.settings = settings
        self.clients = clients

    def validate(self, ctx: ResourceContext, spec: JSON) -> list[Diagnostic]:
        return []

    def check(self, request: CheckRequest) -> list[Diagnostic]:
        return []

    def plan(self, request: PlanRequest) -> PlanResponse:
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
        raise PermanentError(f"the aws provider cannot import {self.kind} resources")


def inner_spec(document: JSON | None) -> JSON:
    """The ``spec`` part of a desired or applied document (``{metadata, spec}``)."""
    spec = (document or {}).get("spec")
    return spec if isinstance(spec, dict) else {}


def owner(tags: dict[str, str]) -> tuple[str, str] | None:
    """(address, lineage) from an object's tags, None when pipeform did not make it."""
    if OWNER_ADDRESS in tags and OWNER_LINEAGE in tags:
        return tags[OWNER_ADDRESS], tags[OWNER_LINEAGE]
    return None


def is_ours(tags: dict[str, str], ctx: ResourceContext) -> bool:
    return owner(tags) == (ctx.address, ctx.lineage)


def claim(tags: dict[str, str], ctx: ResourceContext, what: str, external_id: str) -> None:
    """Refuse to take over an object that is not this resource's (of this state)."""
    found = owner(tags)
    if found == (ctx.address, ctx.lineage):
        return
    if found is None:
        whose = "was not made by pipeform"
    elif found[0] != ctx.address:
        whose = f"belongs to {found[0]}"
    else:
        whose = f"belongs to another state (lineage {found[1]})"
    raise PermanentError(
        f"{what} already exists and {whose}; to manage it as {ctx.address}, run "
        f"`pipeform import {ctx.address} {external_id}`, or give the resource another name"
    )
