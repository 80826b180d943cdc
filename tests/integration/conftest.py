"""Fixtures for the integration tests: the Prometheus/Alertmanager/Pushgateway stack."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.prometheus_stack import Stack, running_stack


@pytest.fixture(scope="session")
def prometheus_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Prometheus, Alertmanager and a Pushgateway on 127.0.0.1, for the whole session."""
    with running_stack(tmp_path_factory.mktemp("prometheus-stack")) as stack:
        yield stack
