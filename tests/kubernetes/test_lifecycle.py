"""The test API server's kubelet and controller controls (Jobs, PyTorchJobs, quotas),
read back through the real ``kubernetes`` client as pipeform reads them."""

from __future__ import annotations

import pytest
from kubernetes import client, dynamic
from kubernetes.client.exceptions import ApiException

from tests.kubernetes.apiserver import KubeServer
from tests.kubernetes.samples import APPLY, apply_job, job, pytorchjob


def test_pod_log_tail_and_a_job_that_fails_by_its_pod_failure_policy(
    kube_api: client.ApiClient, kube_server: KubeServer
) -> None:
    policy = {
        "rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            {
                "action": "FailJob",
                "onExitCodes": {"containerName": "main", "operator": "In", "values": [3]},
            },
        ]
    }
    apply_job(kube_api, job(podFailurePolicy=policy))
    batch, core = client.BatchV1Api(kube_api), client.CoreV1Api(kube_api)
    kube_server.job_pending("ml", "train")
    assert batch.read_namespaced_job_status("train", "ml").status.active == 1
    kube_server.job_running("ml", "train")
    assert kube_server.job_pod_failed("ml", "train", 143, "preempted", disruption=True) == "Ignore"
    assert batch.read_namespaced_job_status("train", "ml").status.failed in (None, 0)
    assert kube_server.job_pod_failed("ml", "train", 3, "gated", log="a\nb\nc\n") == "Failed"
    status = batch.read_namespaced_job_status("train", "ml").status
    assert [(c.type, c.reason) for c in status.conditions] == [
        ("FailureTarget", "PodFailurePolicy"),
        ("Failed", "PodFailurePolicy"),
    ]
    assert (
        "failed with exit code 3 matching FailJob rule at index 1" in status.conditions[1].message
    )
    pods = core.list_namespaced_pod("ml", label_selector="batch.kubernetes.io/job-name=train").items
    failed = [p for p in pods if p.status.phase == "Failed"]
    preempted = [
        p for p in failed if any(c.type == "DisruptionTarget" for c in p.status.conditions)
    ]
    assert len(failed) == 2 and preempted[0].status.conditions[-1].reason == "PreemptionByScheduler"
    gated = next(p for p in failed if p not in preempted)
    terminated = gated.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.message) == (3, "gated")
    assert core.read_namespaced_pod_log(gated.metadata.name, "ml", tail_lines=2) == "b\nc\n"


def test_job_success_and_backoff_limit(kube_api: client.ApiClient, kube_server: KubeServer) -> None:
    batch = client.BatchV1Api(kube_api)
    apply_job(kube_api, job("ok"))
    kube_server.job_running("ml", "ok")
    kube_server.job_succeeded("ml", "ok", message='{"status": "succeeded"}')
    status = batch.read_namespaced_job_status("ok", "ml").status
    assert [c.type for c in status.conditions] == ["SuccessCriteriaMet", "Complete"]
    assert (status.succeeded, status.active) == (1, 0)
    pod = (
        client.CoreV1Api(kube_api).list_namespaced_pod("ml", label_selector="job-name=ok").items[0]
    )
    assert pod.status.container_statuses[0].state.terminated.reason == "Completed"
    assert pod.status.container_statuses[0].state.terminated.message == '{"status": "succeeded"}'

    apply_job(kube_api, job("flaky", backoffLimit=1))
    assert kube_server.job_pod_failed("ml", "flaky", 1, "boom") == "Count"
    assert kube_server.job_pod_failed("ml", "flaky", 1, "boom") == "Failed"
    status = batch.read_namespaced_job_status("flaky", "ml").status
    assert status.failed == 2 and status.conditions[-1].reason == "BackoffLimitExceeded"


def test_pytorchjob_through_custom_objects(
    kube_api: client.ApiClient, kube_server: KubeServer
) -> None:
    custom = client.CustomObjectsApi(kube_api)
    args = ("kubeflow.org", "v1", "ml", "pytorchjobs")
    custom.patch_namespaced_custom_object(
        *args, "dist", pytorchjob(), field_manager="pipeform", _content_type=APPLY
    )
    assert kube_server.pytorchjob_running("ml", "dist") == [
        "dist-master-0",
        "dist-worker-0",
        "dist-worker-1",
    ]
    status = custom.get_namespaced_custom_object_status(*args, "dist")["status"]
    assert [c["type"] for c in status["conditions"]] == ["Created", "Running"]
    assert status["replicaStatuses"] == {"Master": {"active": 1}, "Worker": {"active": 2}}
    assert kube_server.pytorchjob_pod_failed("ml", "dist", 143, "preempted") == "Restarting"
    status = custom.get_namespaced_custom_object_status(*args, "dist")["status"]
    assert [c["type"] for c in status["conditions"]] == ["Created", "Restarting"]
    assert kube_server.pytorchjob_pod_failed("ml", "dist", 2, "bad input") == "Failed"
    status = custom.get_namespaced_custom_object_status(*args, "dist")["status"]
    assert status["conditions"][-1]["type"] == "Failed"
    pods = (
        client.CoreV1Api(kube_api)
        .list_namespaced_pod(
            "ml",
            label_selector="training.kubeflow.org/job-name=dist,training.kubeflow.org/replica-type=master",
        )
        .items
    )
    assert pods[0].status.container_statuses[0].state.terminated.message == "bad input"
    with pytest.raises(ApiException) as strategic:
        custom.patch_namespaced_custom_object(
            *args, "dist", {"spec": {}}, _content_type="application/strategic-merge-patch+json"
        )
    assert strategic.value.status == 415  # custom resources take no strategic merge patch
    kube_server.add_namespace("ok")
    custom.create_namespaced_custom_object("kubeflow.org", "v1", "ok", "pytorchjobs", pytorchjob())
    kube_server.pytorchjob_running("ok", "dist")
    kube_server.pytorchjob_succeeded("ok", "dist", message="done")
    final = custom.get_namespaced_custom_object_status(
        "kubeflow.org", "v1", "ok", "pytorchjobs", "dist"
    )
    assert [(c["type"], c["status"]) for c in final["status"]["conditions"]] == [
        ("Created", "True"),
        ("Running", "False"),
        ("Succeeded", "True"),
    ]


def test_quota_status_and_discovery_for_the_dynamic_client(
    kube_api: client.ApiClient, kube_server: KubeServer
) -> None:
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_resource_quota(
        "ml", {"metadata": {"name": "q"}, "spec": {"hard": {"requests.nvidia.com/gpu": "4"}}}
    )
    kube_server.set_quota_used("ml", "q", {"requests.nvidia.com/gpu": "3"})
    status = core.read_namespaced_resource_quota_status("q", "ml").status
    assert (status.hard, status.used) == (
        {"requests.nvidia.com/gpu": "4"},
        {"requests.nvidia.com/gpu": "3"},
    )
    dyn = dynamic.DynamicClient(kube_api)
    rules = dyn.resources.get(api_version="monitoring.coreos.com/v1", kind="PrometheusRule")
    rules.create(
        body={
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PrometheusRule",
            "metadata": {"name": "alerts"},
            "spec": {"groups": []},
        },
        namespace="ml",
    )
    assert [r.metadata.name for r in rules.get(namespace="ml").items] == ["alerts"]
    assert client.VersionApi(kube_api).get_code().git_version.startswith("v1.")


def test_a_pending_pod_says_why_and_a_failure_falls_back_to_its_log(
    kube_api: client.ApiClient, kube_server: KubeServer
) -> None:
    core = client.CoreV1Api(kube_api)
    body = job()
    body["spec"]["template"]["spec"]["containers"][0]["terminationMessagePolicy"] = (
        "FallbackToLogsOnError"
    )
    apply_job(kube_api, body)
    gpu = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    [name] = kube_server.job_pending("ml", "train", unschedulable=gpu)
    pod = core.read_namespaced_pod_status(name, "ml")
    assert (pod.status.phase, pod.status.conditions[0].reason) == ("Pending", "Unschedulable")
    events = core.list_namespaced_event("ml", field_selector=f"involvedObject.name={name}").items
    assert [(e.reason, e.message) for e in events] == [("FailedScheduling", gpu)]
    kube_server.job_pending("ml", "train", waiting=("ImagePullBackOff", "Back-off pulling image"))
    waiting = core.read_namespaced_pod_status(name, "ml").status.container_statuses[0].state
    assert waiting.waiting.reason == "ImagePullBackOff"
    log = "".join(f"line {n}\n" for n in range(100))
    kube_server.job_pod_failed("ml", "train", 1, log=log)
    failed = core.read_namespaced_pod_status(name, "ml").status.container_statuses[0]
    assert failed.state.terminated.message == "".join(f"line {n}\n" for n in range(20, 100))
