"""The test API server, driven through the real ``kubernetes`` client: what the provider's
tests rely on answers as a real API server would (codes, Status bodies, managedFields)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from tests.kubernetes.apiserver import KubeServer
from tests.kubernetes.conftest import write_kubeconfig
from tests.kubernetes.samples import APPLY, MERGE, apply_job, job, status_of


def test_create_get_and_the_errors_of_a_create(kube_api: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_api)
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
        client.BatchV1Api(kube_api).create_namespaced_job("ml", job("Bad_Name"))
    assert bad_name.value.status == 422
    status = status_of(bad_name.value)
    assert status["reason"] == "Invalid"
    assert status["message"].startswith(
        'Job.batch "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 label'
    )


def test_list_with_selectors_across_namespaces_and_its_resource_version(
    kube_api: client.ApiClient, kube_server: KubeServer
) -> None:
    core = client.CoreV1Api(kube_api)
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
    kube_api: client.ApiClient, kube_server: KubeServer
) -> None:
    body = job(activeDeadlineSeconds=600, ttlSecondsAfterFinished=3600)
    made, code, _ = apply_job(kube_api, body)
    assert code == 201
    version = made.metadata.resource_version
    entry = made.metadata.managed_fields[0]
    assert (entry.manager, entry.operation) == ("pipeform", "Apply")
    containers = entry.fields_v1["f:spec"]["f:template"]["f:spec"]["f:containers"]
    assert containers['k:{"name":"main"}'] == {".": {}, "f:args": {}, "f:image": {}, "f:name": {}}

    again, code, _ = apply_job(kube_api, body)
    assert code == 200 and again.metadata.resource_version == version  # a no-op

    kube_server.edit("batch", "v1", "jobs", "ml", "train", {"spec": {"activeDeadlineSeconds": 60}})
    with pytest.raises(ApiException) as conflict:
        apply_job(kube_api, body)
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
    forced, code, _ = apply_job(kube_api, body, force=True)
    assert code == 200
    assert forced.spec.active_deadline_seconds == 600
    assert forced.spec.ttl_seconds_after_finished is None
    managers = {m.manager for m in forced.metadata.managed_fields}
    assert managers == {"pipeform"}  # kubectl-edit owned nothing else

    with pytest.raises(ApiException) as no_manager:
        client.BatchV1Api(kube_api).patch_namespaced_job("train", "ml", body, _content_type=APPLY)
    assert no_manager.value.status == 422


def test_a_job_template_is_immutable(kube_api: client.ApiClient) -> None:
    apply_job(kube_api, job())
    with pytest.raises(ApiException) as error:
        apply_job(kube_api, job(image="trainer@sha256:def"))
    assert error.value.status == 422
    status = status_of(error.value)
    assert status["message"].startswith(
        'Job.batch "train" is invalid: spec.template: Invalid value: '
    )
    assert status["message"].endswith(": field is immutable")
    assert status["details"]["causes"][0]["field"] == "spec.template"


def test_replace_with_a_stale_resource_version_conflicts(kube_api: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_api)
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


def test_status_is_written_through_its_subresource_only(kube_api: client.ApiClient) -> None:
    batch = client.BatchV1Api(kube_api)
    apply_job(kube_api, job())
    batch.patch_namespaced_job("train", "ml", {"status": {"active": 3}}, _content_type=MERGE)
    assert batch.read_namespaced_job_status("train", "ml").status.active is None
    batch.patch_namespaced_job_status(
        "train", "ml", {"status": {"active": 1}, "spec": {"backoffLimit": 9}}, _content_type=MERGE
    )
    read = batch.read_namespaced_job("train", "ml")
    assert (read.status.active, read.spec.backoff_limit) == (1, 2)


def test_delete_propagates_to_pods_as_asked(
    kube_api: client.ApiClient, kube_server: KubeServer
) -> None:
    batch, core = client.BatchV1Api(kube_api), client.CoreV1Api(kube_api)
    for name in ("background", "orphan"):
        apply_job(kube_api, job(name))
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
    kube_api = config.new_client_from_config(config_file=str(path), context="test")
    with pytest.raises(ApiException) as error:
        client.CoreV1Api(kube_api).list_namespace()
    assert error.value.status == 401
    assert status_of(error.value)["reason"] == "Unauthorized"


def test_rules_forbid_what_they_do_not_allow(
    kube_api: client.ApiClient, kube_server: KubeServer
) -> None:
    kube_server.enforce_rules(
        [
            {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list"]},
            {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        ]
    )
    batch = client.BatchV1Api(kube_api)
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


def test_watch_streams_changes(kube_api: client.ApiClient, kube_server: KubeServer) -> None:
    core = client.CoreV1Api(kube_api)
    start = core.list_namespaced_config_map("ml").metadata.resource_version
    threading.Timer(
        0.2, lambda: core.create_namespaced_config_map("ml", {"metadata": {"name": "w"}})
    ).start()
    stream = watch.Watch().stream(
        core.list_namespaced_config_map, "ml", resource_version=start, timeout_seconds=1
    )
    events = [(e["type"], e["object"].metadata.name) for e in stream]
    assert events == [("ADDED", "w")]


@pytest.mark.slow
def test_thousands_of_objects_are_created_and_listed_quickly(
    kube_api: client.ApiClient, kube_server: KubeServer
) -> None:
    core = client.CoreV1Api(kube_api)
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


def test_lists_of_named_maps_merge_by_name_and_what_the_applier_dropped_goes(
    kube_api: client.ApiClient, kube_server: KubeServer
) -> None:
    custom = client.CustomObjectsApi(kube_api)
    args = ("monitoring.coreos.com", "v1", "ml", "prometheusrules", "alerts")

    def rule(*groups: str) -> dict[str, Any]:
        return {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PrometheusRule",
            "metadata": {"name": "alerts"},
            "spec": {
                "groups": [
                    {"name": g, "rules": [{"alert": g.upper(), "expr": "1"}]} for g in groups
                ]
            },
        }

    made = custom.patch_namespaced_custom_object(
        *args, rule("a", "b"), field_manager="pipeform", _content_type=APPLY
    )
    # An apply that creates answers 201, which CustomObjectsApi does not map: it returns None
    # (as against a real cluster); read the object back.
    assert made is None
    current = kube_server.get("monitoring.coreos.com", "v1", "prometheusrules", "ml", "alerts")
    assert current is not None
    groups = current["spec"]["groups"] + [{"name": "c", "rules": []}]
    kube_server.edit(
        "monitoring.coreos.com",
        "v1",
        "prometheusrules",
        "ml",
        "alerts",
        {"spec": {"groups": groups}},
    )
    after = custom.patch_namespaced_custom_object(
        *args, rule("a"), field_manager="pipeform", _content_type=APPLY
    )
    assert [g["name"] for g in after["spec"]["groups"]] == ["a", "c"]  # c is kubectl-edit's
    changed = rule("a")
    changed["spec"]["groups"][0]["rules"][0]["expr"] = "2"
    kube_server.edit(
        "monitoring.coreos.com",
        "v1",
        "prometheusrules",
        "ml",
        "alerts",
        {
            "spec": {
                "groups": [{"name": "a", "rules": [{"alert": "A", "expr": "0"}]}, {"name": "c"}]
            }
        },
    )
    with pytest.raises(ApiException) as conflict:
        custom.patch_namespaced_custom_object(
            *args, changed, field_manager="pipeform", _content_type=APPLY
        )
    assert status_of(conflict.value)["message"] == (
        'Apply failed with 1 conflict: conflict with "kubectl-edit" using monitoring.coreos.com/v1: '
        '.spec.groups[name="a"].rules'
    )


def test_dry_run_answers_without_storing(
    kube_api: client.ApiClient, kube_server: KubeServer
) -> None:
    core = client.CoreV1Api(kube_api)
    before = core.list_namespaced_config_map("ml").metadata.resource_version
    made = core.create_namespaced_config_map("ml", {"metadata": {"name": "dry"}}, dry_run="All")
    assert made.metadata.name == "dry"
    assert core.list_namespaced_config_map("ml").items == []
    assert core.list_namespaced_config_map("ml").metadata.resource_version == before
    with pytest.raises(ApiException) as error:
        core.create_namespaced_config_map("nope", {"metadata": {"name": "dry"}}, dry_run="All")
    assert error.value.status == 404


def test_a_job_gets_the_api_servers_defaults(kube_api: client.ApiClient) -> None:
    body = job()
    del body["spec"]["backoffLimit"]
    made, _, _ = apply_job(kube_api, body)
    uid = made.metadata.uid
    assert made.spec.selector.match_labels == {"batch.kubernetes.io/controller-uid": uid}
    assert made.spec.template.metadata.labels["batch.kubernetes.io/job-name"] == "train"
    assert (made.spec.backoff_limit, made.spec.completions, made.spec.parallelism) == (6, 1, 1)
    container = made.spec.template.spec.containers[0]
    assert container.termination_message_path == "/dev/termination-log"
    assert made.metadata.generation == 1
    again, _, _ = apply_job(kube_api, body)  # the defaults do not make a re-apply a change
    assert again.metadata.resource_version == made.metadata.resource_version
    body["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    with pytest.raises(ApiException) as error:
        apply_job(kube_api, {**body, "metadata": {"name": "always"}})
    assert (
        status_of(error.value)["details"]["causes"][0]["field"]
        == "spec.template.spec.restartPolicy"
    )


def test_injected_errors_answer_the_next_matching_requests(
    kube_api: client.ApiClient, kube_server: KubeServer
) -> None:
    batch = client.BatchV1Api(kube_api)
    kube_server.inject_errors(503, times=1, verb="list", resource="jobs")
    client.CoreV1Api(kube_api).list_namespaced_pod("ml")  # not a match: answered
    with pytest.raises(ApiException) as error:
        batch.list_namespaced_job("ml")
    assert (error.value.status, status_of(error.value)["reason"]) == (503, "ServiceUnavailable")
    assert batch.list_namespaced_job("ml").items == []
    # with Retry-After, urllib3 retries a GET itself: the caller sees only the answer
    kube_server.reset_requests()
    kube_server.inject_errors(429, times=1, verb="list", resource="jobs", retry_after=0)
    assert batch.list_namespaced_job("ml").items == []
    assert [r.verb for r in kube_server.requests] == ["list", "list"]


def test_secret_string_data_is_stored_as_data(kube_api: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_api)
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "token"},
        "stringData": {"token": "s3cret"},
    }
    core.patch_namespaced_secret("token", "ml", body, field_manager="pipeform", _content_type=APPLY)
    stored = core.read_namespaced_secret("token", "ml")
    assert (stored.data, stored.string_data, stored.type) == ({"token": "czNjcmV0"}, None, "Opaque")
    again = core.patch_namespaced_secret(
        "token", "ml", body, field_manager="pipeform", _content_type=APPLY
    )
    assert again.metadata.resource_version == stored.metadata.resource_version
    with pytest.raises(ApiException) as error:
        core.create_namespaced_secret("ml", {"metadata": {"name": "bad"}, "data": {"k": "%%"}})
    assert error.value.status == 400
    assert core.list_namespaced_secret("no-such-namespace").items == []
