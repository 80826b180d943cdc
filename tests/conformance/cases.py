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
from dataclasses import replace
from pathlib import Path

import pytest

from providers.local import LocalProvider
from providers.testing import FakeProvider
from tests.conformance.local_samples import LOCAL_CONFIG, LOCAL_SAMPLES
from tests.conformance.sample import (
    KindSample,
    ProviderCase,
    document,
    no_upstream,
    nothing,
)

__all__ = ["CASES", "KindSample", "ProviderCase", "document", "load_cases"]

ENV = "PIPEFORM_CONFORMANCE_CASES"


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


def _as_for_the_fake(sample: KindSample) -> KindSample:
    """The fake realises every kind without reading sources or upstream objects."""
    return replace(sample, prepare=nothing, upstream=no_upstream, exclusive=True, importable=True)


CASES: list[ProviderCase] = [
    ProviderCase(
        "fake",
        _fake,
        (QUOTA, SECRET_FROM_ENV, *map(_as_for_the_fake, LOCAL_SAMPLES)),
        scratch=frozenset({"live/calls.jsonl"}),  # its call log, for engine tests
    ),
    ProviderCase(
        "local",
        lambda root: LocalProvider(LOCAL_CONFIG, root),
        (QUOTA, SECRET_FROM_ENV, SECRET_FROM_FILE, *LOCAL_SAMPLES),
    ),
]


def load_cases() -> list[ProviderCase]:
    """The built-in cases and those named in PIPEFORM_CONFORMANCE_CASES."""
    from tests.aws.conformance_cases import CASE as AWS  # these import this module
    from tests.kubernetes.conformance_cases import CASE as KUBERNETES
    from tests.monitoring.conformance_cases import CASE as PROMETHEUS

    cases = [*CASES, PROMETHEUS, AWS, KUBERNETES]
    for entry in filter(None, (e.strip() for e in os.environ.get(ENV, "").split(","))):
        module, _, attribute = entry.partition(":")
        found = getattr(importlib.import_module(module), attribute or "CASES")
        cases.extend(found if isinstance(found, list | tuple) else [found])
    return cases
