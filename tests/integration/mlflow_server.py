"""Start and stop a real ``mlflow server`` on 127.0.0.1 for a test session.

The server keeps its SQLite backend store, its artifacts and its log in one directory:
``--serve-artifacts --artifacts-destination <dir>/artifacts``, so clients upload and
download artifacts through the server's HTTP API (``mlflow-artifacts:/`` URIs) exactly
as they would against a remote server, and nothing is written next to the tests. It
binds 127.0.0.1 only, runs one uvicorn worker and no job-execution workers
(``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false``: they add seven huey processes and a few
seconds), and starts in its own process group so ``stop()`` can end every process it
spawned and check that none is left (``tests.integration.servers``).

Use it from a conftest as a session fixture (it takes 10-20 s to start)::

    @pytest.fixture(scope="session")
    def mlflow_server(tmp_path_factory):
        yield from mlflow_server_session(tmp_path_factory.mktemp("mlflow"))

In CI (``CI=true``) a server that cannot start fails the tests; elsewhere they skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration.servers import (
    HOST,
    free_port,
    in_ci,
    stop_process_group,
    wait_answering,
)

__all__ = ["MlflowServer", "free_port", "mlflow_server_session", "stop_process_group"]


class ServerUnavailable(RuntimeError):
    """The mlflow CLI is missing, or the server did not answer /health in time."""


@dataclass
class MlflowServer:
    """A running server; ``url`` is its tracking URI."""

    url: str
    port: int
    workdir: Path
    log_path: Path
    startup_seconds: float
    process: subprocess.Popen[bytes] = field(repr=False)

    def log_tail(self, lines: int = 80) -> str:
        if not self.log_path.exists():
            return "(no log)"
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        stop_process_group(self.process)


def mlflow_command() -> Path:
    return Path(sys.executable).with_name("mlflow")


def start_mlflow_server(workdir: Path, timeout: float = 120.0) -> MlflowServer:
    """Start ``mlflow server`` and wait until /health answers; raise ServerUnavailable."""
    executable = mlflow_command()
    if not executable.exists():
        raise ServerUnavailable(f"the mlflow CLI is not installed ({executable} is missing)")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = workdir / "mlflow-server.log"
    command = [
        str(executable),
        "server",
        "--backend-store-uri",
        f"sqlite:///{workdir / 'mlflow.db'}",
        "--serve-artifacts",
        "--artifacts-destination",
        str(workdir / "artifacts"),
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    started = time.monotonic()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = MlflowServer(
        url=f"http://{HOST}:{port}",
        port=port,
        workdir=workdir,
        log_path=log_path,
        startup_seconds=0.0,
        process=process,
    )
    try:
        _wait_healthy(server, started + timeout)
    except ServerUnavailable:
        stop_process_group(process)
        raise
    server.startup_seconds = time.monotonic() - started
    return server


def _wait_healthy(server: MlflowServer, deadline: float) -> None:
    url = f"{server.url}/health"
    if wait_answering(url, server.process, deadline, timeout=2, interval=0.2):
        return
    if server.process.poll() is not None:
        raise ServerUnavailable(
            f"mlflow server exited with code {server.process.returncode} before answering; "
            f"log {server.log_path}:\n{server.log_tail()}"
        )
    raise ServerUnavailable(
        f"mlflow server did not answer {server.url}/health in time; "
        f"log {server.log_path}:\n{server.log_tail()}"
    )


def mlflow_server_session(workdir: Path) -> Iterator[MlflowServer]:
    """The body of a session fixture: start (fail in CI, skip elsewhere), yield, stop."""
    try:
        server = start_mlflow_server(workdir)
    except ServerUnavailable as error:
        if in_ci():
            pytest.fail(f"CI needs a running MLflow server: {error}", pytrace=False)
        pytest.skip(f"MLflow server unavailable: {error}")
    try:
        yield server
    finally:
        server.stop()
