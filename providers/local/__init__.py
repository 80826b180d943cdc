"""The local provider: the embedded default, realising kinds on this machine's filesystem.

Everything it makes lives under the Workspace's ``providers.local.dataDir`` (default
``.pipeform/data``, relative to the spec tree). Each kind family is one module with a
``KindHandler`` (``dataset``, ``featureset``, ``training``, ``quota``, ``secrets``, ``budget``); this module only dispatches the provider calls
to the handler for the request's kind. Adding a kind is one module and one entry in
``HANDLERS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

from providers.base import (
    JSON,
    AliasRequest,
    AliasResponse,
    ApplyRequest,
    ApplyResponse,
    CheckRequest,
    DeleteRequest,
    ImportRequest,
    ImportResponse,
    ListOwnedRequest,
    ListOwnedResponse,
    PermanentError,
    PlanRequest,
    PlanResponse,
    Provider,
    ReadRequest,
    ReadResponse,
    ResourceContext,
)
from providers.local.budget import BudgetHandler
from providers.local.dataset import DatasetHandler
from providers.local.featureset import FeatureSetHandler
from providers.local.kind import KindHandler
from providers.local.quota import QuotaHandler
from providers.local.secrets import SecretHandler
from providers.local.settings import LocalSettings
from providers.local.training import TrainingJobHandler
from reconciler.diagnostics import Diagnostic

HANDLERS: Mapping[str, type[KindHandler]] = {
    handler.kind: handler
    for handler in (
        BudgetHandler,
        DatasetHandler,
        FeatureSetHandler,
        QuotaHandler,
        SecretHandler,
        TrainingJobHandler,
    )
}


class LocalProvider(Provider):
    name: ClassVar[str] = "local"
    kinds: ClassVar[frozenset[str]] = frozenset(HANDLERS)
    # each kind's handler says which fields force a replacement and which outputs wait
    replace_on: ClassVar[Mapping[str, frozenset[str]]] = {
        kind: handler.replace_on for kind, handler in HANDLERS.items()
    }
    computed_outputs: ClassVar[Mapping[str, tuple[str, ...]]] = {
        kind: handler.computed_outputs for kind, handler in HANDLERS.items()
    }

    def __init__(self, config: JSON | None = None, root: Path | None = None) -> None:
        super().__init__(config, root)
        self.settings = LocalSettings.from_config(self.config, self.root)
        self._handlers: dict[str, KindHandler] = {}

    def handler(self, kind: str) -> KindHandler:
        if kind not in self._handlers:
            cls = HANDLERS.get(kind)
            if cls is None:
                raise PermanentError(
                    f"the local provider cannot realise {kind} resources yet "
                    f"(it realises {', '.join(sorted(HANDLERS))})"
                )
            self._handlers[kind] = cls(self.settings)
        return self._handlers[kind]

    def validate(self, ctx: ResourceContext, spec: JSON) -> list[Diagnostic]:
        return self.handler(ctx.kind).validate(ctx, spec)

    def read(self, request: ReadRequest) -> ReadResponse:
        return self.handler(request.ctx.kind).read(request)

    def plan(self, request: PlanRequest) -> PlanResponse:
        return self.handler(request.ctx.kind).plan(request)

    def check(self, request: CheckRequest) -> list[Diagnostic]:
        return self.handler(request.ctx.kind).check(request)

    def create(self, request: ApplyRequest) -> ApplyResponse:
        return self.handler(request.ctx.kind).create(request)

    def update(self, request: ApplyRequest) -> ApplyResponse:
        return self.handler(request.ctx.kind).update(request)

    def delete(self, request: DeleteRequest) -> None:
        self.handler(request.ctx.kind).delete(request)

    def import_(self, request: ImportRequest) -> ImportResponse:
        kind = request.ctx.kind
        cls = HANDLERS.get(kind)
        if cls is not None and not cls.importable():
            importable = sorted(k for k, handler in HANDLERS.items() if handler.importable())
            instead = f"; {cls.instead_of_import}" if cls.instead_of_import else ""
            raise PermanentError(
                f"the local provider cannot import {kind} resources (it can import "
                f"{', '.join(importable)}){instead}"
            )
        return self.handler(kind).import_(request)

    def move_alias(self, request: AliasRequest) -> AliasResponse:
        if request.ctx.kind != "TrainingJob":
            return super().move_alias(request)
        from providers.local.promotion import move_alias

        return move_alias(self.settings, request)

    def list_owned(self, request: ListOwnedRequest) -> ListOwnedResponse:
        """Every record under the data directory that carries ownership labels."""
        return ListOwnedResponse(
            [o for kind in sorted(HANDLERS) for o in self.handler(kind).owned()]
        )


__all__ = ["HANDLERS", "LocalProvider"]
