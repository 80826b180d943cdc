"""Spec models for every kind, and the registry mapping kind names to models.

A kind's module is imported the first time its model is asked for (``KINDS[kind]`` or
``from reconciler.kinds import TrainingJob``): building pydantic model classes is most
of pipeform's start-up, and a plan only needs the kinds its spec tree holds. Importing
this package, for ``API_VERSION`` and ``KINDS``, imports no pydantic: a plan of a tree
whose every file is in the spec cache needs no model at all.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

API_VERSION = "pipeform/v1"

if TYPE_CHECKING:
    from reconciler.kinds.common import Document, Metadata
    from reconciler.kinds.data import Dataset, FeatureSet
    from reconciler.kinds.observability import SLO, Alert
    from reconciler.kinds.platform import Budget, Quota, Secret
    from reconciler.kinds.reference import Reference
    from reconciler.kinds.training import TrainingJob
    from reconciler.kinds.workspace import Workspace

#: Each kind's module under reconciler.kinds, in the order kinds are listed to users.
_MODULES: dict[str, str] = {
    "Workspace": "workspace",
    "Dataset": "data",
    "FeatureSet": "data",
    "TrainingJob": "training",
    "Quota": "platform",
    "Secret": "platform",
    "Alert": "observability",
    "SLO": "observability",
    "Budget": "platform",
}


class _Registry(Mapping[str, "type[Document]"]):
    """Kind name -> model class, importing a kind's module on first lookup."""

    def __init__(self) -> None:
        self._loaded: dict[str, type[Document]] = {}

    def __getitem__(self, kind: str) -> type[Document]:
        model = self._loaded.get(kind)  # looked up once per document: keep it a dict hit
        if model is None:
            module = _MODULES[kind]  # KeyError for an unknown kind, as a dict
            model = getattr(importlib.import_module(f"{__name__}.{module}"), kind)
            self._loaded[kind] = model
        return model

    def __iter__(self) -> Iterator[str]:
        return iter(_MODULES)

    def __len__(self) -> int:
        return len(_MODULES)

    def __contains__(self, kind: object) -> bool:
        return kind in _MODULES


KINDS: Mapping[str, type[Document]] = _Registry()


#: Names of reconciler.kinds.common offered here too, loaded (with pydantic) on first use.
_COMMON = ("Document", "Metadata", "Reference")


def __getattr__(name: str) -> Any:
    if name in _MODULES:  # every model class is named after its kind
        return KINDS[name]
    if name in _COMMON:
        return getattr(importlib.import_module(f"{__name__}.common"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "API_VERSION",
    "KINDS",
    "SLO",
    "Alert",
    "Budget",
    "Dataset",
    "Document",
    "FeatureSet",
    "Metadata",
    "Quota",
    "Reference",
    "Secret",
    "TrainingJob",
    "Workspace",
]
