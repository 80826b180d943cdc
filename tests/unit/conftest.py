"""Fixtures shared by the unit tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.diagnostics import Diagnostics
from reconciler.spec import cache as speccache
from reconciler.spec import loader
from reconciler.spec import source as yamlsource
from reconciler.spec.loader import SpecTree


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The display names of the files the YAML parser reads, in order (the spec cache on)."""
    seen: list[str] = []
    real = yamlsource.parse_bytes  # what the loader calls

    def counting(data: bytes, display: str, diagnostics: Diagnostics) -> Any:
        seen.append(Path(display).name)
        return real(data, display, diagnostics)

    monkeypatch.setattr(loader, "parse_bytes", counting)
    monkeypatch.delenv(speccache.DISABLE_ENV, raising=False)
    return seen


def assert_same_documents(fresh: SpecTree, cached: SpecTree) -> None:
    """A tree loaded from the spec cache has the data, facts, models and places of a fresh
    parse, and built no model until one was asked for."""
    assert list(cached.documents) == list(fresh.documents)
    assert cached.workspace == fresh.workspace
    for address, doc in fresh.documents.items():
        again = cached.documents[address]
        assert again.raw.data == doc.raw.data
        assert again.facts == doc.facts
        assert again.validated is None, f"{address} was validated although it was cached"
        assert again.model == doc.model
        assert again.raw.positions == doc.raw.positions
        assert again.raw.key_positions == doc.raw.key_positions
