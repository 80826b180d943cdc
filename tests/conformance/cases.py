"""The providers and sample specs the conformance suite runs against: one entry each.

A provider joins the suite with one ``ProviderCase`` in ``CASES``: a factory that builds
it for a fresh spec tree, and a ``KindSample`` for every kind it realises (a spec, a
changed spec, and what the samples need from the environment). Providers outside this
repository name their cases in ``PIPEFORM_CONFORMANCE_CASES`` (``module:attribute``,
comma-separated; the attribute is a ProviderCase or a list of them) and run
``pytest tests/conformance`` from a pipeform checkout.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from providers.base import Provider
from providers.local import LocalProvider
from providers.testing import FakeProvider
from reconciler.kinds import KINDS
from reconciler.plan.planner import desired_document

ENV = "PIPEFORM_CONFORMANCE_CASES"
Prepare = Callable[[pytest.MonkeyPatch, Path], None]


def document(kind: str, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """A desired document exactly as the planner hands it to providers (validated)."""
    model = KINDS[kind].model_validate(
        {"apiVersion": "pipeform/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}
    )
    return desired_document(model, {})


def _nothing(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    return None


@dataclass(frozen=True)
class KindSample:
    """One object of one kind: as first applied, and as changed by an update."""

    kind: str
    name: str
    spec: dict[str, Any]
    changed: dict[str, Any]
    prepare: Prepare = _nothing  # set environment variables, write source files

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


def _secret_env(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    # Values unique to each test run; the tests never print them.
    monkeypatch.setenv("CONFORMANCE_TOKEN", os.urandom(12).hex())
    monkeypatch.setenv("CONFORMANCE_TOKEN_NEXT", os.urandom(12).hex())


def _secret_file(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    (root / "secrets").mkdir(exist_ok=True)
    (root / "secrets" / "first.txt").write_bytes(os.urandom(16))
    (root / "secrets" / "second.txt").write_bytes(os.urandom(16))


QUOTA = KindSample(
    "Quota",
    "team-a",
    document("Quota", "team-a", {"gpus": 2, "memory": "16Gi", "concurrentJobs": 1}),
    document("Quota", "team-a", {"gpus": 4, "memory": "16Gi", "concurrentJobs": 2}),
)
SECRET_FROM_ENV = KindSample(
    "Secret",
    "api-token",
    document("Secret", "api-token", {"from": {"env": "CONFORMANCE_TOKEN"}}),
    document("Secret", "api-token", {"from": {"env": "CONFORMANCE_TOKEN_NEXT"}}),
    _secret_env,
)
SECRET_FROM_FILE = KindSample(
    "Secret",
    "signing-key",
    document("Secret", "signing-key", {"from": {"file": "secrets/first.txt"}}),
    document("Secret", "signing-key", {"from": {"file": "secrets/second.txt"}}),
    _secret_file,
)


def _fake(root: Path) -> FakeProvider:
    (root / "live").mkdir()  # the fake makes its store on first use, even when reading
    return FakeProvider({"store": str(root / "live")}, root)


CASES: list[ProviderCase] = [
    ProviderCase(
        "fake",
        _fake,
        (QUOTA, SECRET_FROM_ENV),
        scratch=frozenset({"live/calls.jsonl"}),  # its call log, for engine tests
    ),
    ProviderCase(
        "local",
        lambda root: LocalProvider({"dataDir": ".pipeform/data"}, root),
        (QUOTA, SECRET_FROM_ENV, SECRET_FROM_FILE),
    ),
]


def load_cases() -> list[ProviderCase]:
    """The built-in cases and those named in PIPEFORM_CONFORMANCE_CASES."""
    from tests.aws.conformance_cases import CASE as AWS  # these import this module
    from tests.monitoring.conformance_cases import CASE as PROMETHEUS

    cases = [*CASES, PROMETHEUS, AWS]
    for entry in filter(None, (e.strip() for e in os.environ.get(ENV, "").split(","))):
        module, _, attribute = entry.partition(":")
        found = getattr(importlib.import_module(module), attribute or "CASES")
        cases.extend(found if isinstance(found, list | tuple) else [found])
    return cases
