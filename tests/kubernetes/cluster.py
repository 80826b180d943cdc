"""A test cluster for the kubernetes provider's tests: k1's API server, a kubeconfig for
it, and the provider registered (the installed entry points may predate it).

``cluster(tmp_path)`` is what the root conftest's ``kube_cluster`` fixture yields;
``RUNNING`` holds the one running now, for the conformance case's factory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from click.testing import CliRunner, Result

from providers import base
from providers.kubernetes import KubernetesProvider
from reconciler import cli
from tests.kubernetes.apiserver import KubeServer
from tests.kubernetes.conftest import write_kubeconfig

NAMESPACE = "ml"


@dataclass
class Cluster:
    server: KubeServer
    kubeconfig: Path

    def settings(self, **extra: Any) -> dict[str, Any]:
        """providers.kubernetes settings (camelCase) pointing at the server."""
        return {"kubeconfig": str(self.kubeconfig), "namespace": NAMESPACE, **extra}

    def provider(self, root: Path, **extra: Any) -> KubernetesProvider:
        config = {**self.settings(**extra), "workspace": {"name": "test"}}
        return KubernetesProvider(config, root)

    def workspace(self, **extra: Any) -> str:
        """A pipeform.yaml whose default provider is this cluster."""
        lines = [
            "apiVersion: pipeform/v1",
            "kind: Workspace",
            "metadata: {name: kube}",
            "spec:",
            "  providers:",
            "    kubernetes:",
            f"      kubeconfig: {self.kubeconfig}",
            f"      namespace: {extra.pop('namespace', NAMESPACE)}",
        ]
        lines += [f"      {k}: {v}" for k, v in extra.items()]
        lines += ["  defaults:", "    provider: kubernetes"]
        return "\n".join(lines) + "\n"


RUNNING: list[Cluster] = []

_MAIN = click.Command(
    "pipeform",
    callback=lambda args: cli.main(list(args)),
    params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)],
    context_settings={"ignore_unknown_options": True},
)


def pipeform(*args: str, input: str | None = None) -> Result:
    """The console entry point (cli.main: errors reported, exit 1, no traceback), in this
    process; the result's output holds stdout and stderr."""
    return CliRunner().invoke(_MAIN, list(args), input=input)


def cluster(tmp_path: Path) -> Iterator[Cluster]:
    server = KubeServer().start()
    server.add_namespace("default")
    server.add_namespace(NAMESPACE)
    found = Cluster(server, write_kubeconfig(tmp_path / "kubeconfig", server.url, server.token))
    base.register(KubernetesProvider)
    RUNNING.append(found)
    try:
        yield found
    finally:
        RUNNING.remove(found)
        base.unregister(KubernetesProvider.name)
        server.stop()
