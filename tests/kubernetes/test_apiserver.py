"""The test API server, driven through the real ``kubernetes`` client: what the provider's
tests rely on answers as a real API server would (codes, Status bodies, managedFields)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, dynamic, watch
from kubernetes.client.exceptions import ApiException

from tests.kubernetes.apiserver import KubeServer
from tests.kubernetes.conftest import write_kubeconfig

APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"


@pytest.fixture
def api(kubeconfig: Path) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(kubeconfig), context="test")


def status_of(error: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(error.body)
    return body


def job(name: str = "train", image: str = "trainer@sha256:abc", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "pipeform"}},
        "spec": {
            "backoffLimit": 2,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": image, "args": ["train"]}],
                }
            },
            **spec,
        },
    }


def apply_job(api: client.ApiClient, body: dict[str, Any], force: bool = False) -> Any:
    return client.BatchV1Api(api).patch_namespaced_job_with_http_info(
        body["metadata"]["name"],
        "ml",
        body,
        field_manager="pipeform",
        force=force,
        _content_type=APPLY,
    )


def test_create_get_and_the_errors_of_a_create(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    body = {"metadata": {"name": "run-config", "labels": {"a": "1"}}, "data": {"k": "v"}}
    made = core.create_namespaced_config_map("ml", body, field_manager="pipeform")
    assert made.metadata.uid and int(made.metadata.resource_version) > 0
    assert made.metadata.creation_timestamp is not None
    assert [(m.manager, m.operation) for m in made.metadata.managed_fields] == [
        ("pipeform", "Update")
    ]
    assert made.metadata.managed_fields[0].fields_v1 == {
        "f:data": {"f:k": {}},
        "f:metadata": {"f:labels": {"f:a": {}}},
    }
    assert core.read_namespaced_config_map("run-config", "ml").data == {"k": "v"}

    with pytest.raises(ApiException) as again:
        core.create_namespaced_config_map("ml", body)
    assert again.value.status == 409
    assert status_of(again.value)["reason"] == "AlreadyExists"
    assert status_of(again.value)["message"] == 'configmaps "run-config" already exists'

    with pytest.raises(ApiException) as no_namespace:
        core.create_namespaced_config_map("nope", body)
    assert no_namespace.value.status == 404
    assert status_of(no_namespace.value)["message"] == 'namespaces "nope" not found'

    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("absent", "ml")
    assert (missing.value.status, status_of(missing.value)["reason"]) == (404, "NotFound")

    with pytest.raises(ApiException) as bad_name:
        client.BatchV1Api(api).create_namespaced_job("ml", job("Bad_Name"))
    assert bad_name.value.status == 422
    status = status_of(bad_name.value)
    assert status["reason"] == "Invalid"
    assert status["message"].startswith(
        'Job.batch "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 label'
    )


def test_list_with_selectors_across_namespaces_and_its_resource_version(
    api: client.ApiClient, kube_server: KubeServer
) -> None:
    core = client.CoreV1Api(api)
    for n, (tier, ns) in enumerate([("a", "ml"), ("b", "ml"), ("c", "ml"), ("a", "default")]):
        labels = {"tier": tier, **({"gpu": "yes"} if n % 2 else {})}
        core.create_namespaced_secret(ns, {"metadata": {"name": f"s{n}", "labels": labels}})

    def names(selector: str, ns: str = "ml") -> list[str]:
        return [
            s.metadata.name for s in core.list_namespaced_secret(ns, label_selector=selector).items
        ]

    assert names("tier=a") == ["s0"]
    assert names("tier==b") == ["s1"]
    assert names("tier!=a") == ["s1", "s2"]
    assert names("tier in (a, c)") == ["s0", "s2"]
    assert names("tier notin (a,c)") == ["s1"]
    assert names("gpu") == ["s1"]
    assert names("!gpu") == ["s0", "s2"]
    assert names("tier in (a,b),!gpu") == ["s0"]
    named = core.list_namespaced_secret("ml", field_selector="metadata.name=s2")
    assert [s.metadata.name for s in named.items] == ["s2"]
    everywhere = core.list_secret_for_all_namespaces(label_selector="tier=a")
    assert sorted((s.metadata.namespace, s.metadata.name) for s in everywhere.items) == [
        ("default", "s3"),
        ("ml", "s0"),
    ]
    before = int(core.list_namespaced_secret("ml").metadata.resource_version)
    core.delete_namespaced_secret("s0", "ml")
    assert int(core.list_namespaced_secret("ml").metadata.resource_version) > before
    page = core.list_namespaced_secret("ml", limit=1)
    assert len(page.items) == 1 and page.metadata._continue
    rest = core.list_namespaced_secret("ml", limit=5, _continue=page.metadata._continue)
    assert [s.metadata.name for s in rest.items] == ["s2"]


def test_server_side_apply_creates_no_ops_conflicts_and_forces(
    api: client.ApiClient, kube_server: KubeServer
) -> None:
    body = job(activeDeadlineSeconds=600, ttlSecondsAfterFinished=3600)
    made, code, _ = apply_job(api, body)
    assert code == 201
    version = made.metadata.resource_version
    entry = made.metadata.managed_fields[0]
    assert (entry.manager, entry.operation) == ("pipeform", "Apply")
    containers = entry.fields_v1["f:spec"]["f:template"]["f:spec"]["f:containers"]
    assert containers['k:{"name":"main"}'] == {".": {}, "f:args": {}, "f:image": {}, "f:name": {}}

    again, code, _ = apply_job(api, body)
    assert code == 200 and again.metadata.resource_version == version  # a no-op

    kube_server.edit("batch", "v1", "jobs", "ml", "train", {"spec": {"activeDeadlineSeconds": 60}})
    with pytest.raises(ApiException) as conflict:
        apply_job(api, body)
    assert conflict.value.status == 409
    status = status_of(conflict.value)
    assert status["reason"] == "Conflict"
    assert status["message"] == (
        'Apply failed with 1 conflict: conflict with "kubectl-edit" using batch/v1: '
        ".spec.activeDeadlineSeconds"
    )
    assert status["details"]["causes"] == [
        {
            "type": "FieldManagerConflict",
            "message": 'conflict with "kubectl-edit" using batch/v1',
            "field": ".spec.activeDeadlineSeconds",
        }
    ]

    del body["spec"]["ttlSecondsAfterFinished"]  # applied before, omitted now: removed
    forced, code, _ = apply_job(api, body, force=True)
    assert code == 200
    assert forced.spec.active_deadline_seconds == 600
    assert forced.spec.ttl_seconds_after_finished is None
    managers = {m.manager for m in forced.metadata.managed_fields}
    assert managers == {"pipeform"}  # kubectl-edit owned nothing else

    with pytest.raises(ApiException) as no_manager:
        client.BatchV1Api(api).patch_namespaced_job("train", "ml", body, _content_type=APPLY)
    assert no_manager.value.status == 422


def test_a_job_template_is_immutable(api: client.ApiClient) -> None:
    apply_job(api, job())
    with pytest.raises(ApiException) as error:
        apply_job(api, job(image="trainer@sha256:def"))
    assert error.value.status == 422
    status = status_of(error.value)
    assert status["message"].startswith(
        'Job.batch "train" is invalid: spec.template: Invalid value: '
    )
    assert status["message"].endswith(": field is immutable")
    assert status["details"]["causes"][0]["field"] == "spec.template"


def test_replace_with_a_stale_resource_version_conflicts(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map("ml", {"metadata": {"name": "c"}, "data": {"a": "1"}})
    first = core.read_namespaced_config_map("c", "ml")
    first.data = {"a": "2"}
    replaced = core.replace_namespaced_config_map("c", "ml", first)
    assert replaced.data == {"a": "2"}
    first.data = {"a": "3"}  # still carries the old resourceVersion
    with pytest.raises(ApiException) as error:
        core.replace_namespaced_config_map("c", "ml", first)
    assert error.value.status == 409
    assert status_of(error.value)["message"] == (
        'Operation cannot be fulfilled on configmaps "c": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    merged = core.patch_namespaced_config_map("c", "ml", {"data": {"b": "x"}}, _content_type=MERGE)
    assert merged.data == {"a": "2", "b": "x"}
    patched = core.patch_namespaced_config_map("c", "ml", [{"op": "remove", "path": "/data/a"}])
    assert patched.data == {"b": "x"}


def test_status_is_written_through_its_subresource_only(api: client.ApiClient) -> None:
    batch = client.BatchV1Api(api)
    apply_job(api, job())
    batch.patch_namespaced_job("train", "ml", {"status": {"active": 3}}, _content_type=MERGE)
    assert batch.read_namespaced_job_status("train", "ml").status.active is None
    batch.patch_namespaced_job_status(
        "train", "ml", {"status": {"active": 1}, "spec": {"backoffLimit": 9}}, _content_type=MERGE
    )
    read = batch.read_namespaced_job("train", "ml")
    assert (read.status.active, read.spec.backoff_limit) == (1, 2)


def test_delete_propagates_to_pods_as_asked(api: client.ApiClient, kube_server: KubeServer) -> None:
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    for name in ("background", "orphan"):
        apply_job(api, job(name))
        kube_server.job_running("ml", name, pods=2)
    assert len(core.list_namespaced_pod("ml").items) == 4
    batch.delete_namespaced_job("background", "ml", propagation_policy="Background")
    left = core.list_namespaced_pod("ml").items
    assert {p.metadata.labels["job-name"] for p in left} == {"orphan"}
    batch.delete_namespaced_job("orphan", "ml")  # batch/v1's default: orphan the pods
    left = core.list_namespaced_pod("ml").items
    assert len(left) == 2 and all(p.metadata.owner_references is None for p in left)
    with pytest.raises(ApiException) as gone:
        batch.delete_namespaced_job("orphan", "ml")
    assert gone.value.status == 404
    core.delete_namespace("ml")
    assert kube_server.objects("", "v1", "pods") == []


def test_a_wrong_token_is_401(kube_server: KubeServer, tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "bad", kube_server.url, "wrong-token")
    api = config.new_client_from_config(config_file=str(path), context="test")
    with pytest.raises(ApiException) as error:
        client.CoreV1Api(api).list_namespace()
    assert error.value.status == 401
    assert status_of(error.value)["reason"] == "Unauthorized"


def test_rules_forbid_what_they_do_not_allow(
    api: client.ApiClient, kube_server: KubeServer
) -> None:
    kube_server.enforce_rules(
        [
            {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list"]},
            {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        ]
    )
    batch = client.BatchV1Api(api)
    batch.list_namespaced_job("ml")
    with pytest.raises(ApiException) as error:
        batch.create_namespaced_job("ml", job())
    assert error.value.status == 403
    assert status_of(error.value)["message"] == (
        'jobs.batch is forbidden: User "pipeform-test" cannot create resource "jobs" in API '
        'group "batch" in the namespace "ml"'
    )
    with pytest.raises(ApiException) as status_error:
        batch.patch_namespaced_job_status("train", "ml", {"status": {}}, _content_type=MERGE)
    assert 'cannot patch resource "jobs/status"' in status_of(status_error.value)["message"]
    assert kube_server.calls() == {
        ("list", "batch", "jobs"),
        ("create", "batch", "jobs"),
        ("patch", "batch", "jobs/status"),
    }
    kube_server.reset_requests()
    assert kube_server.requests == []


def test_pod_log_tail_and_a_job_that_fails_by_its_pod_failure_policy(
    api: client.ApiClient, kube_server: KubeServer
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
    apply_job(api, job(podFailurePolicy=policy))
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
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


def test_job_success_and_backoff_limit(api: client.ApiClient, kube_server: KubeServer) -> None:
    batch = client.BatchV1Api(api)
    apply_job(api, job("ok"))
    kube_server.job_running("ml", "ok")
    kube_server.job_succeeded("ml", "ok", message='{"status": "succeeded"}')
    status = batch.read_namespaced_job_status("ok", "ml").status
    assert [c.type for c in status.conditions] == ["SuccessCriteriaMet", "Complete"]
    assert (status.succeeded, status.active) == (1, 0)
    pod = client.CoreV1Api(api).list_namespaced_pod("ml", label_selector="job-name=ok").items[0]
    assert pod.status.container_statuses[0].state.terminated.reason == "Completed"
    assert pod.status.container_statuses[0].state.terminated.message == '{"status": "succeeded"}'

    apply_job(api, job("flaky", backoffLimit=1))
    assert kube_server.job_pod_failed("ml", "flaky", 1, "boom") == "Count"
    assert kube_server.job_pod_failed("ml", "flaky", 1, "boom") == "Failed"
    status = batch.read_namespaced_job_status("flaky", "ml").status
    assert status.failed == 2 and status.conditions[-1].reason == "BackoffLimitExceeded"


def pytorchjob(name: str = "dist") -> dict[str, Any]:
    template = {"spec": {"containers": [{"name": "pytorch", "image": "trainer@sha256:abc"}]}}
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name},
        "spec": {
            "runPolicy": {"backoffLimit": 3},
            "pytorchReplicaSpecs": {
                "Master": {"replicas": 1, "restartPolicy": "ExitCode", "template": template},
                "Worker": {"replicas": 2, "restartPolicy": "ExitCode", "template": template},
            },
        },
    }


def test_pytorchjob_through_custom_objects(api: client.ApiClient, kube_server: KubeServer) -> None:
    custom = client.CustomObjectsApi(api)
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
        client.CoreV1Api(api)
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
    kube_server.pytorchjob_succeeded("ok", "dist", message="done")
    final = custom.get_namespaced_custom_object_status(
        "kubeflow.org", "v1", "ok", "pytorchjobs", "dist"
    )
    assert [(c["type"], c["status"]) for c in final["status"]["conditions"]] == [
        ("Created", "True"),
        ("Running", "False"),
        ("Succeeded", "True"),
    ] or final["status"]["conditions"][-1]["type"] == "Succeeded"


def test_quota_status_and_discovery_for_the_dynamic_client(
    api: client.ApiClient, kube_server: KubeServer
) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_resource_quota(
        "ml", {"metadata": {"name": "q"}, "spec": {"hard": {"requests.nvidia.com/gpu": "4"}}}
    )
    kube_server.set_quota_used("ml", "q", {"requests.nvidia.com/gpu": "3"})
    status = core.read_namespaced_resource_quota_status("q", "ml").status
    assert (status.hard, status.used) == (
        {"requests.nvidia.com/gpu": "4"},
        {"requests.nvidia.com/gpu": "3"},
    )
    dyn = dynamic.DynamicClient(api)
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
    assert client.VersionApi(api).get_code().git_version.startswith("v1.")


def test_watch_streams_changes(api: client.ApiClient, kube_server: KubeServer) -> None:
    core = client.CoreV1Api(api)
    start = core.list_namespaced_config_map("ml").metadata.resource_version
    threading.Timer(
        0.2, lambda: core.create_namespaced_config_map("ml", {"metadata": {"name": "w"}})
    ).start()
    stream = watch.Watch().stream(
        core.list_namespaced_config_map, "ml", resource_version=start, timeout_seconds=2
    )
    events = [(e["type"], e["object"].metadata.name) for e in stream]
    assert events == [("ADDED", "w")]


def test_thousands_of_objects_are_created_and_listed_quickly(
    api: client.ApiClient, kube_server: KubeServer
) -> None:
    core = client.CoreV1Api(api)
    began = time.perf_counter()
    for n in range(3000):
        core.create_namespaced_config_map(
            "ml",
            {"metadata": {"name": f"c{n}", "labels": {"shard": str(n % 3)}}, "data": {"n": str(n)}},
        )
    listed = core.list_namespaced_config_map("ml", label_selector="shard=1")
    elapsed = time.perf_counter() - began
    assert len(listed.items) == 1000
    assert elapsed < 30, f"3,000 creates and a list took {elapsed:.1f}s"
