"""Fixtures for the registry tests: a real MLflow server for the session, shown on failure."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.mlflow_server import MlflowServer, mlflow_server_session

_STARTED: list[MlflowServer] = []


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """``mlflow server`` on 127.0.0.1 (SQLite store, artifacts served by the server)."""
    for server in mlflow_server_session(tmp_path_factory.mktemp("mlflow")):
        _STARTED.append(server)
        yield server


@pytest.fixture
def package(tmp_path: Path) -> Path:
    """A small model package: weights, a nested file and metadata."""
    root = tmp_path / "package"
    (root / "weights").mkdir(parents=True)
    (root / "weights" / "model.safetensors").write_bytes(bytes(range(256)) * 64)
    (root / "metadata.json").write_text('{"task": "binary-classification"}\n')
    (root / "signature.json").write_text('{"inputs": ["age", "income"]}\n')
    return root


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Attach the MLflow server's log to the report of a failed test that used it."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed and "mlflow_server" in getattr(item, "fixturenames", ()) and _STARTED:
        server = _STARTED[-1]
        report.sections.append((f"mlflow server log ({server.log_path})", server.log_tail()))
