"""Fixtures for the Dataset tests: a spec tree, a handler on it, and apply/plan helpers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from providers.base import (
    ApplyRequest,
    ApplyResponse,
    PlanRequest,
    PlanResponse,
    ReadRequest,
    ReadResponse,
    ResourceContext,
)
from providers.local.dataset import DatasetHandler
from providers.local.settings import LocalSettings

LINEAGE = "44444444-4444-4444-8444-444444444444"


def document(source: str = "file://data/t.csv", **spec: Any) -> dict[str, Any]:
    """A desired Dataset document as the planner passes it (defaults filled by the model)."""
    from reconciler.kinds.data import DatasetSpec

    full = DatasetSpec.model_validate({"source": {"uri": source}, **spec})
    return {
        "metadata": {"labels": {}, "annotations": {}},
        "spec": full.model_dump(mode="json", by_alias=True),
    }


class Harness:
    """One dataset named ``t`` in a spec tree at ``root``, driven through the handler."""

    def __init__(self, root: Path, allow_external: bool = False) -> None:
        self.root = root
        config = {"dataDir": ".pipeform/data", "allowExternalPaths": allow_external}
        self.handler = DatasetHandler(LocalSettings.from_config(config, root))
        self.ctx = ResourceContext.of("Dataset/t", LINEAGE, root)
        self.outputs: dict[str, Any] = {}
        self.applied: dict[str, Any] | None = None

    @property
    def dir(self) -> Path:
        return self.root / ".pipeform" / "data" / "datasets" / "t"

    def write(self, name: str, text: str | bytes) -> Path:
        path = self.root / "data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        return path

    def plan(self, doc: dict[str, Any]) -> PlanResponse:
        return self.handler.plan(PlanRequest(self.ctx, self.applied, doc, self.outputs, {}))

    def apply(self, doc: dict[str, Any]) -> ApplyResponse:
        call = self.handler.update if self.applied else self.handler.create
        response = call(ApplyRequest(self.ctx, doc, self.applied, self.outputs, None, {}))
        self.outputs, self.applied = response.outputs, doc
        return response

    def read(self) -> ReadResponse:
        return self.handler.read(ReadRequest(self.ctx, self.applied, self.outputs, None))

    def snapshot_dirs(self) -> list[str]:
        snapshots = self.dir / "snapshots"
        return sorted(p.name for p in snapshots.iterdir()) if snapshots.is_dir() else []

    def tree_bytes(self) -> dict[str, bytes]:
        """Every file under the dataset's directory except failed reports, with its bytes."""
        return {
            str(p.relative_to(self.dir)): p.read_bytes()
            for p in sorted(self.dir.rglob("*"))
            if p.is_file() and "reports" not in p.parts
        }


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


@pytest.fixture
def csv_rows() -> Callable[..., str]:
    def make(header: str, *rows: str) -> str:
        return "\n".join([header, *rows]) + "\n"

    return make
