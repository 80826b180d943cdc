"""plan, apply, drift and destroy of Quota, Secret, Alert and SLO on the kubernetes
provider, through the CLI (in this process) against the test API server."""

from __future__ import annotations

import json
import sqlite3
import textwrap
from pathlib import Path

import pytest

from tests.kubernetes.cluster import NAMESPACE, Cluster, pipeform

TOKEN = "k8s-secret-value-5c1e9a"
ROTATED = "k8s-secret-rotated-77d0b3"

DOCUMENTS = """
    apiVersion: pipeform/v1
    kind: Quota
    metadata: {name: team-a, labels: {team: growth}}
    spec: {cpu: 4, memory: 8Gi, gpus: 2, concurrentJobs: 3}
    ---
    apiVersion: pipeform/v1
    kind: Secret
    metadata: {name: api-token}
    spec:
      from: {env: PF_KUBE_TOKEN}
      targets: [{provider: kubernetes}]
    ---
    apiVersion: pipeform/v1
    kind: Alert
    metadata: {name: model-failed}
    spec:
      expr: sum(rate(http_requests_total{code="500"}[5m])) > 1
      severity: critical
    ---
    apiVersion: pipeform/v1
    kind: SLO
    metadata: {name: model-success}
    spec:
      sli:
        good: 'sum(rate(http_requests_total{code="200"}[{{window}}]))'
        total: 'sum(rate(http_requests_total[{{window}}]))'
      objective: 95
    """


run = pipeform


def tree(root: Path, cluster: Cluster, documents: str = DOCUMENTS, **settings: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pipeform.yaml").write_text(cluster.workspace(**settings))
    (root / "kube.yaml").write_text(textwrap.dedent(documents).lstrip())
    return root


def quota(cluster: Cluster) -> dict[str, object] | None:
    return cluster.server.get("", "v1", "resourcequotas", NAMESPACE, "team-a")


@pytest.fixture
def applied(kube_cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PF_KUBE_TOKEN", TOKEN)
    root = tree(tmp_path / "tree", kube_cluster)
    result = run("apply", "--auto-approve", str(root))
    assert result.exit_code == 0, result.output
    return root


def test_apply_makes_each_object_and_a_second_plan_lists_once_per_kind(
    applied: Path, kube_cluster: Cluster
) -> None:
    server = kube_cluster.server
    live = quota(kube_cluster)
    assert live is not None
    assert live["spec"] == {
        "hard": {
            "requests.cpu": "4",
            "limits.cpu": "4",
            "requests.memory": "8Gi",
            "limits.memory": "8Gi",
            "requests.nvidia.com/gpu": "2",
            "count/jobs.batch": "3",
        }
    }
    labels = live["metadata"]["labels"]  # type: ignore[index]
    assert labels["app.kubernetes.io/managed-by"] == "pipeform"
    assert labels["team"] == "growth"
    assert live["metadata"]["annotations"] == {"pipeform.dev/address": "Quota/team-a"}  # type: ignore[index]
    rule = server.get(
        "monitoring.coreos.com", "v1", "prometheusrules", NAMESPACE, "alert-model-failed"
    )
    assert rule is not None
    assert rule["spec"]["groups"][0]["name"] == "Alert/model-failed"
    assert server.get(
        "monitoring.coreos.com", "v1", "prometheusrules", NAMESPACE, "slo-model-success"
    )
    assert server.get("", "v1", "secrets", NAMESPACE, "api-token") is not None

    server.reset_requests()
    again = run("plan", "--detailed-exitcode", str(applied))
    assert again.exit_code == 0, again.output
    lists = [(r.resource, r.namespace) for r in server.requests if r.verb == "list"]
    assert sorted(lists) == [
        ("prometheusrules", NAMESPACE),
        ("resourcequotas", NAMESPACE),
        ("secrets", NAMESPACE),
    ]
    others = [r for r in server.requests if r.verb != "list"]
    # the fingerprint key, read once for every Secret; nothing else
    assert [(r.verb, r.name) for r in others] == [("get", "pipeform-fingerprint-key")]


def test_plan_json_shows_the_manifests_with_the_secret_masked(
    kube_cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PF_KUBE_TOKEN", TOKEN)
    root = tree(tmp_path / "tree", kube_cluster)
    result = run("plan", "--json", str(root))
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    changes = {c["address"]: c["change"]["after"] for c in plan["resource_changes"]}
    (secret,) = changes["Secret/api-token"]["manifests"]
    assert secret["data"] == {"value": "(sensitive)"}
    assert secret["metadata"]["namespace"] == NAMESPACE
    (rq,) = changes["Quota/team-a"]["manifests"]
    assert rq["kind"] == "ResourceQuota"
    assert rq["spec"]["hard"]["requests.nvidia.com/gpu"] == "2"
    assert rq["metadata"]["labels"]["pipeform.dev/address-hash"]
    (rule,) = changes["Alert/model-failed"]["manifests"]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert TOKEN not in result.output


def test_the_secret_value_is_never_in_state_plans_or_output(
    applied: Path,
    kube_cluster: Cluster,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import base64
    import logging

    caplog.set_level(logging.DEBUG)
    live = kube_cluster.server.get("", "v1", "secrets", NAMESPACE, "api-token")
    assert live is not None
    assert base64.b64decode(live["data"]["value"]).decode() == TOKEN
    monkeypatch.setenv("PF_KUBE_TOKEN", ROTATED)
    plan = run("plan", "--json", str(applied))
    text = run("plan", str(applied))
    applied_again = run("apply", "--auto-approve", str(applied))
    assert applied_again.exit_code == 0, applied_again.output
    state = sqlite3.connect(applied / ".pipeform" / "state.db")
    dumped = "\n".join(state.iterdump())  # resources, versions and the journal
    files = b"".join(p.read_bytes() for p in (applied / ".pipeform").rglob("*") if p.is_file())
    shown = plan.output + text.output + applied_again.output + caplog.text
    for secret in (TOKEN, ROTATED):
        for encoded in (secret, base64.b64encode(secret.encode()).decode()):
            assert encoded not in dumped
            assert encoded.encode() not in files
            assert encoded not in shown


def test_a_rotated_source_plans_an_update_of_the_secret(
    applied: Path, kube_cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    import base64

    monkeypatch.setenv("PF_KUBE_TOKEN", ROTATED)
    plan = json.loads(run("plan", "--json", str(applied)).output)
    actions = {c["address"]: c["change"]["actions"] for c in plan["resource_changes"]}
    assert actions["Secret/api-token"] == ["update"]
    assert actions["Quota/team-a"] == ["no-op"]
    result = run("apply", "--auto-approve", str(applied))
    assert result.exit_code == 0, result.output
    live = kube_cluster.server.get("", "v1", "secrets", NAMESPACE, "api-token")
    assert base64.b64decode(live["data"]["value"]).decode() == ROTATED  # type: ignore[index]
    assert run("plan", "--detailed-exitcode", str(applied)).exit_code == 0


def test_a_change_by_hand_is_drift_that_conflicts_until_forced(
    applied: Path, kube_cluster: Cluster
) -> None:
    kube_cluster.server.edit(
        "", "v1", "resourcequotas", NAMESPACE, "team-a", {"spec": {"hard": {"limits.cpu": "64"}}}
    )
    plan = json.loads(run("plan", "--json", str(applied)).output)
    (drift,) = plan["resource_drift"]
    assert drift["address"] == "Quota/team-a"
    refused = run("apply", "--auto-approve", str(applied))
    assert refused.exit_code == 1, refused.output
    assert '"kubectl-edit"' in refused.output
    assert ".spec.hard.limits.cpu" in refused.output
    assert "pipeform apply --force-conflicts" in refused.output
    assert "Traceback" not in refused.output
    assert quota(kube_cluster)["spec"]["hard"]["limits.cpu"] == "64"  # type: ignore[index]

    forced = run("apply", "--auto-approve", "--force-conflicts", str(applied))
    assert forced.exit_code == 0, forced.output
    assert quota(kube_cluster)["spec"]["hard"]["limits.cpu"] == "4"  # type: ignore[index]
    assert run("plan", "--detailed-exitcode", str(applied)).exit_code == 0


def test_a_deletion_by_hand_is_drift_and_apply_recreates(
    applied: Path, kube_cluster: Cluster
) -> None:
    kube_cluster.server.remove("", "v1", "resourcequotas", NAMESPACE, "team-a")
    plan = json.loads(run("plan", "--json", str(applied)).output)
    actions = {c["address"]: c["change"]["actions"] for c in plan["resource_changes"]}
    assert actions["Quota/team-a"] == ["create"]
    result = run("apply", "--auto-approve", str(applied))
    assert result.exit_code == 0, result.output
    assert quota(kube_cluster) is not None
    assert run("plan", "--detailed-exitcode", str(applied)).exit_code == 0


def test_destroy_removes_every_object_it_made(applied: Path, kube_cluster: Cluster) -> None:
    result = run("destroy", "--auto-approve", str(applied))
    assert result.exit_code == 0, result.output
    server = kube_cluster.server
    assert quota(kube_cluster) is None
    assert server.objects("monitoring.coreos.com", "v1", "prometheusrules", NAMESPACE) == []
    names = [s["metadata"]["name"] for s in server.objects("", "v1", "secrets", NAMESPACE)]
    assert names == ["pipeform-fingerprint-key"]  # kept: fingerprints stay comparable


def test_quota_outputs_carry_what_the_cluster_counts_as_used(
    applied: Path, kube_cluster: Cluster
) -> None:
    from providers.kubernetes.quota import live_quota

    kube_cluster.server.set_quota_used(NAMESPACE, "team-a", {"requests.nvidia.com/gpu": "1"})
    provider = kube_cluster.provider(applied)
    found = live_quota(provider.client, NAMESPACE, "team-a")
    assert found is not None
    assert found["used"] == {"requests.nvidia.com/gpu": "1"}
    assert found["hard"]["requests.nvidia.com/gpu"] == "2"
    from providers.base import ReadRequest, ResourceContext
    from reconciler.engine import open_state

    state = open_state(applied).read()
    recorded = state.resources["Quota/team-a"]
    ctx = ResourceContext.of("Quota/team-a", state.lineage, applied)
    request = ReadRequest(ctx, recorded.spec, recorded.outputs, recorded.external_id)
    (read,) = provider.read_batch([request]) or []  # what refresh sees at plan time
    assert read.outputs["used"] == {"requests.nvidia.com/gpu": "1"}
    assert read.observed == recorded.observed  # usage is no drift


def test_dashboards_follow_the_rules_as_configmaps_for_the_grafana_sidecar(
    kube_cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kubernetes_validate

    monkeypatch.setenv("PF_KUBE_TOKEN", TOKEN)
    root = tree(tmp_path / "tree", kube_cluster, dashboards="true")
    assert run("apply", "--auto-approve", str(root)).exit_code == 0
    server = kube_cluster.server
    maps = server.objects("", "v1", "configmaps", NAMESPACE)
    assert sorted(m["metadata"]["name"] for m in maps) == [
        "pipeform-kube-debug",
        "pipeform-kube-executive",
        "pipeform-kube-oncall",
    ]
    for found in maps:
        assert found["metadata"]["labels"]["grafana_dashboard"] == "1"
        ((name, text),) = found["data"].items()
        assert json.loads(text)["title"], name
        manifest = {k: v for k, v in found.items() if k in ("data",)}
        manifest.update(
            apiVersion="v1",
            kind="ConfigMap",
            metadata={"name": found["metadata"]["name"], "labels": found["metadata"]["labels"]},
        )
        kubernetes_validate.validate(manifest, "1.37.0", strict=True)
    assert run("plan", "--detailed-exitcode", str(root)).exit_code == 0
    assert run("destroy", "--auto-approve", str(root)).exit_code == 0
    assert server.objects("", "v1", "configmaps", NAMESPACE) == []


def test_an_object_made_by_hand_is_refused_until_imported(
    kube_cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kubernetes import client, config

    api = client.CoreV1Api(config.new_client_from_config(str(kube_cluster.kubeconfig)))
    api.create_namespaced_resource_quota(
        NAMESPACE,
        {"metadata": {"name": "team-a"}, "spec": {"hard": {"requests.cpu": "2"}}},
        field_manager="kubectl-create",
    )
    monkeypatch.setenv("PF_KUBE_TOKEN", TOKEN)
    root = tree(tmp_path / "tree", kube_cluster)
    refused = run("apply", "--auto-approve", str(root))
    assert refused.exit_code == 1
    assert "ResourceQuota ml/team-a already exists and was not made by pipeform" in refused.output
    assert "pipeform import Quota/team-a ml/team-a" in refused.output
    assert "Nothing was changed." in refused.output

    imported = run("import", "Quota/team-a", "ml/team-a", str(root))
    assert imported.exit_code == 0, imported.output
    plan = json.loads(run("plan", "--json", str(root)).output)
    (change,) = [c for c in plan["resource_changes"] if c["address"] == "Quota/team-a"]
    assert change["change"]["actions"] == ["update"]
    assert {f["path"] for f in change["change"]["field_changes"]} == {
        "metadata.labels.team",  # the document's labels, which the object lacked
        "spec.cpu",
        "spec.memory",
        "spec.gpus",
        "spec.concurrentJobs",
    }
    applied = run("apply", "--auto-approve", "--force-conflicts", str(root))
    assert applied.exit_code == 0, applied.output
    assert quota(kube_cluster)["spec"]["hard"]["requests.cpu"] == "4"  # type: ignore[index]
    assert run("plan", "--detailed-exitcode", str(root)).exit_code == 0


def test_a_lost_state_is_noticed_from_the_objects_on_the_cluster(
    applied: Path, kube_cluster: Cluster
) -> None:
    (applied / ".pipeform" / "state.db").rename(applied / "lost-state.db")
    result = run("apply", str(applied), input="no\n")
    assert "Warning: the state holds no resources, but the providers found" in result.output
    assert "Quota/team-a  (id ml/team-a: ResourceQuota ml/team-a on http://" in result.output
    assert "Alert/model-failed" in result.output
    # and the apply refuses to take the old state's objects
    assert "belongs to another state" in result.output
    assert "Nothing was changed." in result.output


def test_refresh_lists_once_per_kind_and_namespace_whatever_the_count(
    kube_cluster: Cluster, tmp_path: Path
) -> None:
    kube_cluster.server.add_namespace("growth")
    quotas = "---\n".join(
        f"apiVersion: pipeform/v1\nkind: Quota\nmetadata: {{name: q{i}}}\n"
        f"spec: {{cpu: {i + 1}, namespace: {'growth' if i % 2 else NAMESPACE}}}\n"
        for i in range(40)
    )
    root = tree(tmp_path / "tree", kube_cluster, quotas, namespaces="[growth]")
    assert run("apply", "--auto-approve", str(root)).exit_code == 0
    kube_cluster.server.reset_requests()
    assert run("plan", "--detailed-exitcode", str(root)).exit_code == 0
    seen = sorted((r.verb, r.resource, r.namespace) for r in kube_cluster.server.requests)
    assert seen == [("list", "resourcequotas", "growth"), ("list", "resourcequotas", NAMESPACE)]
