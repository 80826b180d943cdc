"""specs/examples/kubernetes, pointed at the test API server through the CLI: what its plan
shows (the ResourceQuota, the Secret masked, the PrometheusRules; once the Quota and Secret
exist, the Job with a GPU on the gpuType's nodes), and an apply while the test plays the
kubelet and the Job controller, after which a plan has nothing to do."""

from __future__ import annotations

import concurrent.futures as cf
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.kubernetes.cluster import Cluster, pipeform
from tests.kubernetes.training_bench import message

TOKEN = "example-token-9c1f"  # the Secret's value: never in a plan
GROWTH = "growth"  # the Quota's namespace, where the TrainingJob runs


def _on_the_test_cluster(root: Path, cluster: Cluster) -> Path:
    """The example with its kubeconfig and context replaced by the test server's, as a
    user points it at their own cluster; nothing else changes."""
    workspace = root / "pipeform.yaml"
    text = workspace.read_text()
    for old, new in (
        ("kubeconfig: ~/.kube/config", f"kubeconfig: {cluster.kubeconfig}"),
        ("context: gpu-cluster", "context: test"),
        ("mountPath: /pipeform}", "mountPath: /pipeform}\n      pollSeconds: 0.05"),
    ):
        assert old in text, f"the example's pipeform.yaml no longer says {old!r}"
        text = text.replace(old, new, 1)
    workspace.write_text(text)
    cluster.server.add_namespace(GROWTH)
    return root


@pytest.fixture
def example(
    kube_cluster: Cluster,
    copy_example: Callable[[str], Path],
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    monkeypatch.setenv("QUICKSTART_METRICS_TOKEN", TOKEN)
    root = _on_the_test_cluster(copy_example("kubernetes"), kube_cluster)
    # the Dataset and FeatureSet first (local handlers): the Job's manifest shows once the
    # FeatureSet it reads is materialised
    done = pipeform("apply", "--auto-approve", "--target", "FeatureSet/hie-features", str(root))
    assert done.exit_code == 0, done.output
    return root


def _changes(root: Path) -> dict[str, Any]:
    done = pipeform("plan", "--json", str(root))
    assert done.exit_code == 0, done.output
    assert TOKEN not in done.output
    start = done.output.index("{")  # progress lines, if any, come before the document
    plan = json.loads(done.output[start:])
    return {c["address"]: c for c in plan["resource_changes"]}


def _manifests(change: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["kind"]: m for m in change["change"]["after"]["manifests"]}


def test_the_plan_shows_the_gpu_job_quota_masked_secret_and_rules(
    example: Path, kube_cluster: Cluster
) -> None:
    text = pipeform("plan", str(example))
    assert text.exit_code == 0, text.output
    assert TOKEN not in text.output
    for address in ("TrainingJob/expense-model", "Quota/growth-gpu", "Secret/metrics-token"):
        assert address in text.output

    changes = _changes(example)
    quota = _manifests(changes["Quota/growth-gpu"])["ResourceQuota"]
    assert quota["metadata"]["namespace"] == GROWTH
    assert quota["spec"]["hard"]["requests.nvidia.com/gpu"] == "1"
    secret = _manifests(changes["Secret/metrics-token"])["Secret"]
    assert secret["metadata"]["namespace"] == GROWTH
    assert set(secret["data"].values()) == {"(sensitive)"}
    for address in ("Alert/expense-model-failed", "SLO/expense-model-success"):
        rule = _manifests(changes[address])["PrometheusRule"]
        assert rule["spec"]["groups"][0]["rules"], address
    # the Job's manifest needs the Quota's namespace and the Secret: not yet known
    assert "manifests" not in changes["TrainingJob/expense-model"]["change"]["after"]
    writes = [r for r in kube_cluster.server.requests if r.verb not in ("get", "list")]
    assert not [r for r in writes if r.resource in ("jobs", "resourcequotas", "secrets")]

    targets = ("--target", "Quota/growth-gpu", "--target", "Secret/metrics-token")
    done = pipeform("apply", "--auto-approve", *targets, str(example))
    assert done.exit_code == 0, done.output
    job = _manifests(_changes(example)["TrainingJob/expense-model"])
    assert set(job) == {"ConfigMap", "Job"}
    assert job["Job"]["metadata"]["namespace"] == GROWTH
    pod = job["Job"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["image"].startswith("registry.example.com/pipeform-trainer@sha256:")
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    toleration = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    assert toleration in pod["tolerations"]
    token = next(e for e in container["env"] if e["name"] == "METRICS_TOKEN")
    assert token["valueFrom"]["secretKeyRef"]["name"] == "metrics-token"
    claims = [v.get("persistentVolumeClaim", {}).get("claimName") for v in pod["volumes"]]
    assert "pipeform-data" in claims


def _wait_for_job(cluster: Cluster, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = cluster.server.objects("batch", "v1", "jobs", GROWTH)
        if jobs:
            return jobs[-1]
        time.sleep(0.05)
    raise AssertionError(f"no Job appeared in namespace {GROWTH} within {timeout}s")


def test_apply_runs_the_job_and_a_second_plan_has_nothing_to_do(
    example: Path, kube_cluster: Cluster
) -> None:
    server = kube_cluster.server
    with cf.ThreadPoolExecutor(1) as pool:
        applying = pool.submit(pipeform, "apply", "--auto-approve", str(example))
        job = _wait_for_job(kube_cluster)
        name = job["metadata"]["name"]
        run_id = job["spec"]["template"]["metadata"]["labels"]["pipeform.dev/run-id"]
        server.job_running(GROWTH, name)
        said = message("succeeded", run_id, metrics={"auc": 0.75}, model_version="1")
        server.job_succeeded(GROWTH, name, message=said)
        done = applying.result(timeout=120)
    assert done.exit_code == 0, done.output
    assert TOKEN not in done.output
    secret = server.get("", "v1", "secrets", GROWTH, "metrics-token")
    assert secret is not None and TOKEN not in json.dumps(secret)  # base64 in data
    assert server.get("", "v1", "resourcequotas", GROWTH, "growth-gpu") is not None
    rules = server.objects("monitoring.coreos.com", "v1", "prometheusrules", "ml")
    assert {r["metadata"]["name"] for r in rules} == {
        "alert-expense-model-failed",
        "slo-expense-model-success",
    }
    again = pipeform("plan", "--detailed-exitcode", str(example))
    assert again.exit_code == 0, again.output
