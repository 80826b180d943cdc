"""The kubernetes provider's entry for the conformance suite (tests/conformance), against
the test API server (tests/kubernetes/apiserver). Dataset, FeatureSet and Budget are the
local provider's handlers (delegated), checked by the local case; TrainingJob has its own
lifecycle tests."""

from __future__ import annotations

from pathlib import Path

from providers.kubernetes import KubernetesProvider
from tests.conformance.cases import QUOTA, KindSample, ProviderCase, _secret_env, document
from tests.kubernetes import cluster
from tests.monitoring.conformance_cases import ALERT, SLO


def _provider(root: Path) -> KubernetesProvider:
    (running,) = cluster.RUNNING  # the kube_cluster fixture started it
    return running.provider(root)


SECRET = KindSample(
    "Secret",
    "api-token",
    document(
        "Secret",
        "api-token",
        {"from": {"env": "CONFORMANCE_TOKEN"}, "targets": [{"provider": "kubernetes"}]},
    ),
    document(
        "Secret",
        "api-token",
        {"from": {"env": "CONFORMANCE_TOKEN_NEXT"}, "targets": [{"provider": "kubernetes"}]},
    ),
    _secret_env,
)

CASE = ProviderCase("kubernetes", _provider, (QUOTA, SECRET, ALERT, SLO), fixture="kube_cluster")
