"""Fixtures for the engine tests (helpers live in tests.engine.harness).

Most of these tests run real `pipeform` processes, and each spends most of its second
starting up. A test module that defines ``schedule_in_background(runner, params,
tmp_path_factory)`` has its parametrized cases started on a thread pool as soon as the
first engine test runs, and its tests (moved after the other engine tests) collect the
outcomes: the scenarios use the cores while the other tests run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine.harness import Background

HERE = Path(__file__).resolve().parent
WORKERS = max(2, min(4, os.cpu_count() or 2))


def _schedules(item: pytest.Item) -> bool:
    return hasattr(getattr(item, "module", None), "schedule_in_background")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Move the background modules' tests after the other engine tests."""
    deferred = [item for item in items if _schedules(item)]
    if not deferred:
        return
    rest = [item for item in items if not _schedules(item)]
    engine = [i for i, item in enumerate(rest) if HERE in item.path.resolve().parents]
    at = engine[-1] + 1 if engine else len(rest)
    items[:] = rest[:at] + deferred + rest[at:]


@pytest.fixture(scope="session", autouse=True)
def background(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Background]:
    runner = Background(tmp_path_factory.mktemp("engine"), WORKERS)
    try:
        for item in request.session.items:
            callspec = getattr(item, "callspec", None)
            if _schedules(item) and callspec is not None:
                item.module.schedule_in_background(runner, callspec.params, tmp_path_factory)  # type: ignore[attr-defined]
        yield runner
    finally:
        runner.close()


@pytest.fixture(scope="session")
def applied_tree(background: Background) -> Path:
    """The ten-resource tree, applied once; copy it (harness.copy_tree) before changing it."""
    return background.applied()
