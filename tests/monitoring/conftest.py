"""Fixtures shared by the monitoring tests."""

from __future__ import annotations

import shutil

import pytest

from tests.integration.servers import in_ci


@pytest.fixture(scope="session")
def promtool() -> str:
    """promtool's path. A test that needs it skips where it is not installed, except in CI
    (``CI=true``), where a missing promtool fails the test: CI must prove the checks ran."""
    found = shutil.which("promtool")
    if found is None:
        message = "promtool not installed (Debian package prometheus)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return found
