"""Fixtures for tests that drive the ``kubernetes`` client: ``kube_server`` (a test API
server with namespaces "default" and "ml", one per test) and ``kubeconfig`` (a kubeconfig
file whose context "test" points at it, user "pipeform-test" with its token)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from tests.kubernetes.apiserver import KubeServer


def write_kubeconfig(
    path: Path,
    url: str,
    token: str,
    context: str = "test",
    namespace: str | None = None,
    user: str = "pipeform-test",
) -> Path:
    """Write a kubeconfig with one cluster, one user (a bearer token) and one context."""
    context_body: dict[str, str] = {"cluster": context, "user": user}
    if namespace:
        context_body["namespace"] = namespace
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {"server": url}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": context, "context": context_body}],
        "current-context": context,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture
def kube_server() -> Iterator[KubeServer]:
    server = KubeServer().start()
    server.add_namespace("default")
    server.add_namespace("ml")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def kubeconfig(kube_server: KubeServer, tmp_path: Path) -> Path:
    return write_kubeconfig(tmp_path / "kubeconfig", kube_server.url, kube_server.token)


@pytest.fixture
def kube_api(kubeconfig: Path) -> client.ApiClient:
    """An ApiClient configured by ``kubernetes.config.load_kube_config`` from ``kubeconfig``."""
    configuration = client.Configuration()
    config.load_kube_config(
        config_file=str(kubeconfig), context="test", client_configuration=configuration
    )
    return client.ApiClient(configuration)
