"""docs/kubernetes-rbac.yaml allows every request the kubernetes provider makes: plan,
apply, a rotation and destroy run under exactly its rules (the test API server answers
anything else 403), and every (verb, group, resource) seen is one a rule grants."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kubernetes.cluster import Cluster, pipeform
from tests.kubernetes.test_provider_engine import DOCUMENTS, tree

RBAC = Path(__file__).parents[2] / "docs" / "kubernetes-rbac.yaml"


def role_rules() -> list[dict[str, Any]]:
    documents = list(yaml.safe_load_all(RBAC.read_text()))
    (role,) = [d for d in documents if d["kind"] == "Role"]
    assert not [d for d in documents if d["kind"] == "ClusterRole"], "none is needed"
    rules: list[dict[str, Any]] = role["rules"]
    return rules


def allowed(rules: list[dict[str, Any]], verb: str, group: str, resource: str) -> bool:
    return any(
        group in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"]
        for rule in rules
    )


def test_the_role_allows_every_call_of_plan_apply_and_destroy(
    kube_cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = role_rules()
    server = kube_cluster.server
    server.enforce_rules(rules)
    monkeypatch.setenv("PF_KUBE_TOKEN", "rbac-token-one")
    root = tree(tmp_path / "tree", kube_cluster, DOCUMENTS)
    for args in (("plan",), ("apply", "--auto-approve")):
        result = pipeform(*args, str(root))
        assert result.exit_code == 0, result.output
    monkeypatch.setenv("PF_KUBE_TOKEN", "rbac-token-two")
    server.edit("", "v1", "resourcequotas", "ml", "team-a", {"spec": {"hard": {"limits.cpu": "9"}}})
    for args in (("apply", "--auto-approve", "--force-conflicts"), ("destroy", "--auto-approve")):
        result = pipeform(*args, str(root))
        assert result.exit_code == 0, result.output
    calls = server.calls()
    assert {verb for verb, _, _ in calls} >= {"get", "list", "create", "patch", "delete"}
    assert all(allowed(rules, *call) for call in calls), sorted(calls)


def test_the_role_covers_what_training_jobs_need() -> None:
    """TrainingJob's verbs (jobs, pytorchjobs, pods, pods/log, configmaps) are granted
    already, so that the file is complete for the whole provider."""
    rules = role_rules()
    for verb, group, resource in [
        ("patch", "batch", "jobs"),
        ("delete", "batch", "jobs"),
        ("patch", "kubeflow.org", "pytorchjobs"),
        ("list", "", "pods"),
        ("get", "", "pods/log"),
        ("patch", "", "configmaps"),
    ]:
        assert allowed(rules, verb, group, resource), (verb, group, resource)
