"""What a conformance case is made of: a provider factory and one sample object per kind.

``cases.py`` lists the cases; this module holds the types (re-exported there) so that
modules of samples can import them without importing the list.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from providers.base import Provider
from reconciler.kinds import KINDS
from reconciler.plan.planner import desired_document

Prepare = Callable[[pytest.MonkeyPatch, Path], None]
#: the spec tree -> the outputs of the objects a sample depends on, by address (made there)
Upstream = Callable[[Path], Mapping[str, Any]]


def document(kind: str, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """A desired document exactly as the planner hands it to providers (validated)."""
    model = KINDS[kind].model_validate(
        {"apiVersion": "pipeform/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}
    )
    return desired_document(model, {})


def nothing(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    return None


def no_upstream(root: Path) -> Mapping[str, Any]:
    return {}


@dataclass(frozen=True)
class KindSample:
    """One object of one kind: as first applied, and as changed by an update."""

    kind: str
    name: str
    spec: dict[str, Any]
    changed: dict[str, Any]
    prepare: Prepare = nothing  # set environment variables, write source files
    upstream: Upstream = no_upstream  # make what it depends on; passed to create and update
    importable: bool = True  # the provider imports objects of this kind
    #: True: the object has one name per address, so another state's object in its place
    #: is refused; False: each state makes objects of its own (training runs), and another
    #: state's are left alone
    exclusive: bool = True

    @property
    def address(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class ProviderCase:
    id: str
    factory: Callable[[Path], Provider]  # the spec tree root -> a configured provider
    samples: tuple[KindSample, ...]
    # Files the provider writes for its own bookkeeping rather than as live objects
    # (relative to the tree): left out when checking that reading changes nothing.
    scratch: frozenset[str] = field(default_factory=frozenset)
    supports_import: bool = True
    #: a pytest fixture the provider needs (a server), asked for before the factory runs
    fixture: str | None = None
