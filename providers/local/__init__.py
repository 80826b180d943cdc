"""The local provider: the embedded default, realising kinds on this machine's filesystem.

Everything it makes lives under the Workspace's ``providers.local.dataDir`` (default
``.pipeform/data``, relative to the spec tree). Each kind family is one module with a
``KindHandler`` (``dataset``, ``featureset``, ``training``, ``quota``, ``secrets``,
``budget``); this module only dispatches the provider calls to the handler for the
request's kind. Adding a kind is one module and one entry in ``HANDLERS``.

A handler's module is imported when the first call for its kind arrives (the engine
validates every document with its provider first, on the main thread), so a tree of
Quotas never imports the data plane, pyarrow or pydantic that Datasets and TrainingJobs
need: they were half of a no-op plan of 1,000 Quotas.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

from providers.base import (
    JSON,
    AliasRequest,
    AliasResponse,
    ImportRequest,
    ImportResponse,
    ListOwnedRequest,
    ListOwnedResponse,
    PermanentError,
    Provider,
)
from providers.handlers import Dispatching
from providers.local.kind import KindHandler
from providers.local.settings import LocalSettings

#: kind -> the module and class of its handler, imported on the first call for the kind
HANDLERS: Mapping[str, str] = {
    "Budget": "providers.local.budget:BudgetHandler",
    "Dataset": "providers.local.dataset:DatasetHandler",
    "FeatureSet": "providers.local.featureset:FeatureSetHandler",
    "Quota": "providers.local.quota:QuotaHandler",
    "Secret": "providers.local.secrets:SecretHandler",
    "TrainingJob": "providers.local.training:TrainingJobHandler",
}


def handler_class(kind: str) -> type[KindHandler]:
    """The handler class for kind, importing its module (PermanentError for other kinds)."""
    target = HANDLERS.get(kind)
    if target is None:
        raise PermanentError(
            f"the local provider cannot realise {kind} resources yet "
            f"(it realises {', '.join(sorted(HANDLERS))})"
        )
    module, _, name = target.partition(":")
    cls: type[KindHandler] = getattr(importlib.import_module(module), name)
    return cls


class LocalProvider(Dispatching, Provider):
    name: ClassVar[str] = "local"
    kinds: ClassVar[frozenset[str]] = frozenset(HANDLERS)
    # replace_on and computed_outputs are each handler's own: plan() goes to the handler

    def __init__(self, config: JSON | None = None, root: Path | None = None) -> None:
        super().__init__(config, root)
        self.settings = LocalSettings.from_config(self.config, self.root)
        self._handlers: dict[str, KindHandler] = {}
        self._loading = threading.Lock()  # the applier's workers may ask for a kind at once

    def handler(self, kind: str) -> KindHandler:
        found = self._handlers.get(kind)
        if found is None:
            with self._loading:
                found = self._handlers.get(kind)
                if found is None:
                    found = self._handlers[kind] = handler_class(kind)(self.settings)
        return found

    def import_(self, request: ImportRequest) -> ImportResponse:
        kind = request.ctx.kind
        cls = handler_class(kind) if kind in HANDLERS else None
        if cls is not None and not cls.importable():
            # an error path: loading every handler to name the importable kinds is fine here
            importable = sorted(k for k in HANDLERS if handler_class(k).importable())
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
        """Every record under the data directory that carries ownership labels (a tree
        never applied has no data directory: no handler is loaded to find that out)."""
        if not self.settings.data_dir.is_dir():
            return ListOwnedResponse([])
        return ListOwnedResponse(
            [o for kind in sorted(HANDLERS) for o in self.handler(kind).owned()]
        )


__all__ = ["HANDLERS", "LocalProvider", "handler_class"]
