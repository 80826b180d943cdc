"""``defaults: {provider: kubernetes}`` serves the quickstart's documents unchanged:
Dataset, FeatureSet and Budget run on the local provider's handlers (the data directory
the pods would mount), Quota and Secret become cluster objects."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.kubernetes.cluster import NAMESPACE, Cluster, pipeform


def quickstart_on_the_cluster(copy: Path, cluster: Cluster) -> Path:
    workspace = copy / "pipeform.yaml"
    text = workspace.read_text()
    text = text.replace(
        "  providers:\n",
        "  providers:\n"
        "    kubernetes:\n"
        f"      kubeconfig: {cluster.kubeconfig}\n"
        f"      namespace: {NAMESPACE}\n"
        "      namespaces: [growth]\n",
        1,
    )
    text = text.replace("    provider: local\n", "    provider: kubernetes\n", 1)
    workspace.write_text(text)
    # TrainingJob (the kubernetes provider's Job) has its own tests; the alerts watch it
    for name in ("training.yaml", "monitoring.yaml"):
        (copy / name).unlink()
    return copy


def test_the_quickstart_runs_with_the_kubernetes_provider_as_default(
    kube_cluster: Cluster,
    copy_example: Callable[[str], Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kube_cluster.server.add_namespace("growth")
    monkeypatch.setenv("QUICKSTART_METRICS_TOKEN", "quickstart-token-4e1d")
    root = quickstart_on_the_cluster(copy_example("quickstart"), kube_cluster)
    result = pipeform("apply", "--auto-approve", str(root))
    assert result.exit_code == 0, result.output
    server = kube_cluster.server
    quota = server.get("", "v1", "resourcequotas", "growth", "growth-cpu")
    assert quota is not None
    assert quota["spec"]["hard"]["count/jobs.batch"] == "1"
    assert server.get("", "v1", "secrets", NAMESPACE, "metrics-token") is not None
    assert any((root / ".pipeform" / "data").rglob("*.parquet")), "the Dataset was snapshotted"
    from reconciler.engine import open_state

    providers = {a: r.provider for a, r in open_state(root).read().resources.items()}
    assert set(providers.values()) == {"kubernetes"}
    assert {"Dataset/rand-hie", "Budget/growth-monthly"} <= set(providers)
    again = pipeform("plan", "--detailed-exitcode", str(root))
    assert again.exit_code == 0, again.output
