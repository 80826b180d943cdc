"""Start and stop a real ``moto_server`` (the AWS API emulator) on 127.0.0.1.

One server per test session (``moto_server`` in tests/conftest.py): a plain process in
its own process group on a free port, stopped afterwards with every process it started.
``reset()`` empties every emulated service between tests (``POST /moto-api/reset``). In
CI (``CI=true``) a server that cannot start fails the tests; elsewhere they skip.
Test credentials are fake and set only in the environment of the tests that use them.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration.servers import HOST, free_port, in_ci, stop_process_group, wait_answering

#: fake credentials moto accepts; never real ones
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing-access-key",
    "AWS_SECRET_ACCESS_KEY": "testing-secret-key",
    "AWS_DEFAULT_REGION": "us-east-1",
}
#: set while a session's server runs, for factories that get no fixtures (conformance)
RUNNING: list[MotoServer] = []


class ServerUnavailable(RuntimeError):
    pass


@dataclass
class MotoServer:
    url: str
    log_path: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    def reset(self) -> None:
        """Forget every bucket, secret, budget and alarm."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200

    def settings(self) -> dict[str, object]:
        """The Workspace's providers.aws block (camelCase) for this server."""
        return {"region": "us-east-1", "endpointUrl": self.url}

    def stop(self) -> None:
        stop_process_group(self.process)


def start(workdir: Path, timeout: float = 60.0) -> MotoServer:
    executable = Path(sys.executable).with_name("moto_server")
    if not executable.exists():
        raise ServerUnavailable(f"moto[server] is not installed ({executable} is missing)")
    port = free_port()
    log_path = workdir / "moto.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(executable), "-H", HOST, "-p", str(port)],
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    url = f"http://{HOST}:{port}"
    if not wait_answering(
        f"{url}/moto-api/", process, time.monotonic() + timeout, timeout=2, interval=0.2
    ):
        stop_process_group(process)
        raise ServerUnavailable(f"moto_server did not answer {url} in time; log {log_path}")
    return MotoServer(url, log_path, process)


def session(workdir: Path) -> Iterator[MotoServer]:
    """The body of the session fixture: start (fail in CI, skip elsewhere), yield, stop."""
    try:
        server = start(workdir)
    except ServerUnavailable as error:
        if in_ci():
            pytest.fail(
                f"CI needs moto_server (pip install 'moto[server]'): {error}", pytrace=False
            )
        pytest.skip(f"moto_server unavailable: {error}")
    RUNNING.append(server)
    try:
        yield server
    finally:
        RUNNING.remove(server)
        server.stop()
