"""The trainer image, built once per session (cached base and wheels), and podman helpers.

A test that needs podman skips where it is not installed, except in CI (``CI=true``),
where a missing podman fails the test: CI must prove the container executor ran.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from providers.local.container import PODMAN_GLOBAL
from tests.conftest import ROOT
from tests.integration.servers import in_ci
from trainer.version import TRAINER_VERSION

IMAGE = f"pipeform-trainer:{TRAINER_VERSION}"
#: a value planted in the build's and the run's environment, searched for in the layers
PLANTED = "planted-secret-7f3a9c"


def podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *PODMAN_GLOBAL, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def trainer_image() -> str:
    """pipeform-trainer:<version>, built by trainer/image/build.sh (what `make image` runs)."""
    if shutil.which("podman") is None:
        message = "podman not installed (Debian packages podman runc debootstrap)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    built = subprocess.run(
        ["bash", "trainer/image/build.sh"],
        cwd=ROOT,
        env={**os.environ, "PYTHON": sys.executable, "PLANTED_SECRET": PLANTED},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    assert f"built {IMAGE}: size" in built.stdout, built.stdout
    return IMAGE


@pytest.fixture(scope="session")
def process_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The quickstart applied with the process executor (the real trainer), once."""
    from tests.container.quickstart import apply, copy

    root = copy(tmp_path_factory.mktemp("process"), None)
    apply(root)
    return root
