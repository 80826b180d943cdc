"""TrainingJob on the kubernetes provider: the Job lifecycle, the test playing the kubelet
and the Job controller (tests/kubernetes/apiserver/lifecycle.py) while pipeform waits."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from providers import base
from providers.base import PermanentError
from providers.kubernetes.client import Conflict
from providers.local import executor
from tests.kubernetes.apiserver import KubeServer
from tests.kubernetes.training_bench import DIGEST, NAMESPACE, KubeBench, make_bench, message


@pytest.fixture
def bench(kube_server: KubeServer, kubeconfig: Path, tmp_path: Path) -> KubeBench:
    return make_bench(kube_server, kubeconfig, tmp_path)


@pytest.fixture
def progress() -> Any:
    lines: list[str] = []
    base.set_progress(lambda address, event: lines.append(str(event.get("message") or "")))
    yield lines
    base.set_progress(None)


def _seen(lines: list[str], text: str, timeout: float = 20) -> None:
    """Wait until pipeform reported a progress line holding text."""
    deadline = time.monotonic() + timeout
    while not any(text in line for line in lines):
        assert time.monotonic() < deadline, f"no progress line with {text!r} in {lines}"
        time.sleep(0.01)


def _run_id(bench: KubeBench, name: str) -> str:
    config = bench.config_of(name)
    return str(config["run_id"])


def test_success_records_the_termination_message(
    bench: KubeBench, kube_server: KubeServer, progress: list[str]
) -> None:
    doc = bench.doc()
    applying = bench.start(doc)
    name = bench.wait_for_job()
    run_id = _run_id(bench, name)
    kube_server.job_pending(NAMESPACE, name)
    _seen(progress, "pending")
    kube_server.job_running(NAMESPACE, name)
    _seen(progress, "running 1/1 pods")
    metrics = {"auc": 0.81, "loss": 0.42}
    kube_server.job_succeeded(
        NAMESPACE, name, message=message("succeeded", run_id, metrics=metrics, model_version="1")
    )
    done = applying.result(timeout=30)
    assert done.outputs["status"] == "succeeded" and done.outputs["runId"] == run_id
    assert done.outputs["metrics"] == metrics and done.outputs["modelVersion"] == 1
    assert progress[-1] == f"Job {NAMESPACE}/{name} succeeded"
    config = bench.config_of(name)
    assert config["output_dir"] == f"/pipeform/runs/churn-model/{run_id}"
    assert config["termination_message_path"] == "/dev/termination-log"
    record = bench.record(run_id)
    assert record["status"] == "succeeded" and record["cluster"]["name"] == name
    # a finished run is its record: the Job gone with its TTL is no drift
    kube_server.remove("batch", "v1", "jobs", NAMESPACE, name)
    live = bench.read_batch(done, doc)
    assert live.exists and live.observed == done.observed
    # and the next plan trains nothing
    assert bench.plan(doc, done).unknown_outputs == []


def test_a_retryable_failure_then_success(bench: KubeBench, kube_server: KubeServer) -> None:
    applying, name, run_id = bench.start_running(bench.doc())
    assert kube_server.job_pod_failed(NAMESPACE, name, 1, log="CUDA error\n") == "Count"
    kube_server.job_running(NAMESPACE, name)
    kube_server.job_succeeded(NAMESPACE, name, message=message("succeeded", run_id))
    done = applying.result(timeout=30)
    assert done.outputs["status"] == "succeeded"
    record = bench.record(run_id)
    assert [a["status"] for a in record["attempts"]] == ["failed", "succeeded"]
    assert record["failures"] == 1
    assert [r["status"] for r in done.outputs["runs"]] == ["failed", "succeeded"]
    assert len(bench.jobs()) == 1  # the Job retried by itself: one Job, two pods


def test_a_gate_failure_fails_at_once_and_registers_nothing(
    bench: KubeBench, kube_server: KubeServer
) -> None:
    applying, name, run_id = bench.start_running(bench.doc())
    gated = message("gated", run_id, metrics={"auc": 0.55})
    assert kube_server.job_pod_failed(NAMESPACE, name, 4, gated, log="gate failed\n") == "Failed"
    with pytest.raises(PermanentError, match="failed its evaluation gates"):
        applying.result(timeout=30)
    record = bench.record(run_id)
    assert record["status"] == "gated" and record["failures"] == 0
    assert [a["status"] for a in record["attempts"]] == ["gated"]
    assert not (bench.data_dir / "registry").exists()  # nothing registered
    job = bench.jobs()[0]
    assert job["status"]["failed"] == 1  # no retry: the podFailurePolicy failed the Job


def test_bad_input_is_not_retried_and_shows_the_log(
    bench: KubeBench, kube_server: KubeServer
) -> None:
    applying, name, run_id = bench.start_running(bench.doc())
    said = message("failed", run_id, error="the train table's sha256 differs")
    log = "loading\ntrainer: error: the train table's sha256 differs\n"
    assert kube_server.job_pod_failed(NAMESPACE, name, 3, said, log=log) == "Failed"
    with pytest.raises(PermanentError) as failed:
        applying.result(timeout=30)
    text = str(failed.value)
    assert "PodFailurePolicy" in text and "sha256 differs" in text
    assert "Last lines of pod" in text and "exit 3" in text


def test_preemption_is_not_counted_and_resumes_from_the_same_checkpoint(
    bench: KubeBench, kube_server: KubeServer, progress: list[str]
) -> None:
    doc = bench.doc(retries=0)  # any counted failure would end the run
    applying = bench.start(doc)
    name = bench.wait_for_job()
    run_id = _run_id(bench, name)
    checkpoints = bench.config_of(name)["checkpoint"]["dir"]
    uid = bench.jobs()[0]["metadata"]["uid"]
    kube_server.job_running(NAMESPACE, name)
    preempted = message("preempted", run_id)
    outcome = kube_server.job_pod_failed(NAMESPACE, name, 143, preempted, disruption=True)
    assert outcome == "Ignore"
    kube_server.job_running(NAMESPACE, name)
    kube_server.job_succeeded(NAMESPACE, name, message=message("succeeded", run_id))
    done = applying.result(timeout=30)
    assert done.outputs["status"] == "succeeded"
    record = bench.record(run_id)
    assert [a["status"] for a in record["attempts"]] == ["preempted", "succeeded"]
    assert record["failures"] == 0
    assert any("preempted" in line and "not counted" in line for line in progress)
    # the same Job and ConfigMap: the next pod reads the same checkpoint directory
    assert [j["metadata"]["uid"] for j in bench.jobs()] == [uid]
    assert bench.config_of(name)["checkpoint"]["dir"] == checkpoints


def test_deleted_by_hand_is_drift_and_the_apply_recreates_it(
    bench: KubeBench, kube_server: KubeServer
) -> None:
    doc = bench.doc()
    started = bench.apply(doc, wait=False)
    assert started.outputs["status"] == "running"
    name = bench.wait_for_job()
    assert bench.read_batch(started, doc).exists
    kube_server.remove("batch", "v1", "jobs", NAMESPACE, name)
    assert not bench.read_batch(started, doc).exists  # drift: gone
    applying = bench.start(doc)  # the planner's create for a vanished object
    kube_server_job = bench.wait_for_job()
    assert kube_server_job == name  # the same run, the same Job name
    run_id = _run_id(bench, name)
    kube_server.job_succeeded(NAMESPACE, name, message=message("succeeded", run_id))
    done = applying.result(timeout=30)
    assert done.outputs["runId"] == started.outputs["runId"] == run_id


def test_changed_by_hand_is_drift_and_is_applied_back(
    bench: KubeBench, kube_server: KubeServer
) -> None:
    doc = bench.doc()
    started = bench.apply(doc, wait=False)
    name = bench.wait_for_job()
    assert bench.read_batch(started, doc).observed == started.observed
    kube_server.edit("batch", "v1", "jobs", NAMESPACE, name, {"spec": {"backoffLimit": 9}})
    drifted = bench.read_batch(started, doc)
    assert drifted.exists and drifted.observed != started.observed
    assert drifted.observed["job"]["spec"]["backoffLimit"] == 9
    with pytest.raises(Conflict, match=r'"kubectl-edit".*--force-conflicts'):
        bench.apply(doc, started, wait=False)
    again = bench.apply(doc, started, wait=False, force_conflicts=True)
    assert bench.jobs()[0]["spec"]["backoffLimit"] == 2
    assert bench.read_batch(again, doc).observed == again.observed == started.observed


def test_no_wait_then_refresh_shows_the_outcome_and_apply_records_it(
    bench: KubeBench, kube_server: KubeServer
) -> None:
    doc = bench.doc()
    started = bench.apply(doc, wait=False)
    name = bench.wait_for_job()
    run_id = started.outputs["runId"]
    assert started.outputs["cluster"] == {"namespace": NAMESPACE, "kind": "Job", "name": name}
    kube_server.job_running(NAMESPACE, name)
    running = bench.read_batch(started, doc)
    assert running.observed == started.observed  # running: no change to show
    kube_server.job_succeeded(
        NAMESPACE, name, message=message("succeeded", run_id, metrics={"auc": 0.9})
    )
    finished = bench.read_batch(started, doc)
    assert finished.observed["status"] == "succeeded"  # the next plan shows it
    assert finished.outputs["status"] == "succeeded" and finished.outputs["metrics"] == {"auc": 0.9}
    kube_server.reset_requests()
    done = bench.apply(doc, started)  # records it: adopts the finished Job, trains nothing
    assert done.outputs["status"] == "succeeded" and done.outputs["runId"] == run_id
    assert len(bench.jobs()) == 1
    assert bench.record(run_id)["status"] == "succeeded"


def test_ctrl_c_stops_waiting_not_the_job(
    bench: KubeBench, kube_server: KubeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    applying = bench.start(bench.doc())
    name = bench.wait_for_job()
    kube_server.job_running(NAMESPACE, name)
    monkeypatch.setattr(executor, "_interrupts", executor.interrupts() + 1)
    with pytest.raises(PermanentError, match=r"stopped waiting.*keeps running"):
        applying.result(timeout=30)
    job = kube_server.get("batch", "v1", "jobs", NAMESPACE, name)
    assert job is not None and job["status"]["active"] == 1


def test_a_pytorchjob_across_nodes(
    bench: KubeBench, kube_server: KubeServer, progress: list[str]
) -> None:
    doc = bench.doc(distributed={"nodes": 2, "workers": 1})
    applying = bench.start(doc)
    name = bench.wait_for_job("PyTorchJob")
    run_id = _run_id(bench, name)
    kube_server.pytorchjob_running(NAMESPACE, name)
    assert kube_server.pytorchjob_pod_failed(
        NAMESPACE, name, 143, message("preempted", run_id)
    ) == ("Restarting")
    _seen(progress, "restarting its pods")
    kube_server.pytorchjob_running(NAMESPACE, name)
    kube_server.pytorchjob_succeeded(NAMESPACE, name, message=message("succeeded", run_id))
    done = applying.result(timeout=30)
    assert done.outputs["status"] == "succeeded"
    record = bench.record(run_id)
    assert [a["status"] for a in record["attempts"]] == ["preempted", "succeeded"]
    assert record["failures"] == 0


def test_a_job_that_can_never_fit_its_quota_is_refused_at_plan(
    bench: KubeBench, kube_server: KubeServer
) -> None:
    bench.quota({"requests.cpu": "4"})
    kube_server.set_quota_used(NAMESPACE, "team", {"requests.cpu": "3"})
    waits = bench.plan(bench.doc(quota="team", resources={"cpu": 2, "memory": "1Gi"}))
    assert "requests.cpu: 3 CPU cores of 4 CPU cores in use" in str(waits.reason_detail)
    with pytest.raises(PermanentError, match="can never fit ResourceQuota ml/team"):
        bench.plan(bench.doc(quota="team", resources={"cpu": 8, "memory": "1Gi"}))


def test_delete_removes_the_runs_jobs_and_config_maps(
    bench: KubeBench, kube_server: KubeServer
) -> None:
    doc = bench.doc()
    started = bench.apply(doc, wait=False)
    name = bench.wait_for_job()
    kube_server.job_running(NAMESPACE, name)
    assert kube_server.objects("", "v1", "pods", NAMESPACE)
    bench.delete(started, doc)
    assert bench.jobs() == []
    assert kube_server.get("", "v1", "configmaps", NAMESPACE, name) is None
    assert kube_server.objects("", "v1", "pods", NAMESPACE) == []  # with the Job
    assert not (bench.data_dir / "runs" / bench.name).exists()


def test_validate_names_what_the_cluster_needs(
    bench: KubeBench, kube_server: KubeServer, kubeconfig: Path
) -> None:
    from providers.kubernetes import KubernetesProvider
    from tests.kubernetes.training_bench import provider_config

    config = provider_config(kube_server, kubeconfig)
    del config["image"], config["volume"]
    provider = KubernetesProvider(config, bench.root)
    doc = bench.doc(resources={"cpu": 1, "memory": "1Gi", "gpus": 1, "gpuType": "h100"})
    found = provider.handler("TrainingJob").validate(bench.ctx, doc)
    text = [d.message for d in found]
    assert any("trainer image by digest" in t for t in text)
    assert any("data volume" in t for t in text)
    gpu = [d for d in found if "gpuType 'h100' has no node mapping" in d.message]
    assert gpu and gpu[0].path == "spec.resources.gpuType"


def test_a_full_job_count_refuses_a_new_job_but_not_the_running_one(
    bench: KubeBench, kube_server: KubeServer
) -> None:
    bench.quota({"count/jobs.batch": "1"})
    doc = bench.doc(quota="team")
    started = bench.apply(doc, wait=False)  # fits: nothing in use
    kube_server.set_quota_used(NAMESPACE, "team", {"count/jobs.batch": "1"})
    again = bench.apply(doc, started, wait=False)  # its own Job: adopted, not refused
    assert again.outputs["runId"] == started.outputs["runId"]
    with pytest.raises(PermanentError, match="allows no more Jobs now"):
        bench.apply(bench.doc(quota="team", retries=1), started, wait=False)


def test_retries_used_up_fail_with_the_reason_and_the_log(
    bench: KubeBench, kube_server: KubeServer
) -> None:
    applying = bench.start(bench.doc(retries=1))
    name = bench.wait_for_job()
    run_id = _run_id(bench, name)
    crashed = message("failed", run_id, error="CUDA out of memory")
    assert kube_server.job_pod_failed(NAMESPACE, name, 1, crashed, log="step 1\nOOM\n") == "Count"
    assert kube_server.job_pod_failed(NAMESPACE, name, 1, crashed, log="step 1\nOOM\n") == "Failed"
    with pytest.raises(PermanentError) as failed:
        applying.result(timeout=30)
    text = str(failed.value)
    assert "BackoffLimitExceeded" in text and "CUDA out of memory" in text
    assert "\n  step 1\n  OOM" in text
    record = bench.record(run_id)
    assert record["status"] == "failed" and record["failures"] == 2


def test_refresh_reads_a_running_job_with_one_list_and_a_finished_run_with_none(
    bench: KubeBench, kube_server: KubeServer
) -> None:
    doc = bench.doc()
    started = bench.apply(doc, wait=False)
    kube_server.reset_requests()
    assert bench.read_batch(started, doc).exists
    assert [(r.verb, r.resource) for r in kube_server.requests] == [("list", "jobs")]
    name = bench.wait_for_job()
    kube_server.job_succeeded(NAMESPACE, name, message=message("succeeded", _run_id(bench, name)))
    done = bench.apply(doc, started)
    kube_server.reset_requests()
    assert bench.read_batch(done, doc).exists
    assert kube_server.requests == []  # a finished run is its record


def test_the_documented_role_allows_every_call_of_a_run(
    bench: KubeBench, kube_server: KubeServer
) -> None:
    """A run that fails once (its pod's log read), succeeds, then is deleted, under exactly
    docs/kubernetes-rbac.yaml's rules."""
    from tests.kubernetes.test_rbac import allowed, role_rules

    rules = role_rules()
    kube_server.enforce_rules(rules)
    doc = bench.doc(retries=0)
    applying = bench.start(doc)
    name = bench.wait_for_job()
    kube_server.job_pod_failed(NAMESPACE, name, 1, log="boom\n")
    with pytest.raises(PermanentError, match="boom"):
        applying.result(timeout=30)
    applying = bench.start(bench.doc(retries=1))
    name = bench.wait_for_job(besides=(name,))
    kube_server.job_succeeded(NAMESPACE, name, message=message("succeeded", _run_id(bench, name)))
    done = applying.result(timeout=30)
    bench.delete(done, doc)
    calls = kube_server.calls()
    assert ("get", "", "pods/log") in calls and ("delete", "batch", "jobs") in calls
    assert all(allowed(rules, *call) for call in calls), sorted(calls)


def test_the_deadline_is_a_timeout(bench: KubeBench, kube_server: KubeServer) -> None:
    applying = bench.start(bench.doc(maxDuration="10m"))
    name = bench.wait_for_job()
    assert bench.jobs()[0]["spec"]["activeDeadlineSeconds"] == 600
    kube_server.job_running(NAMESPACE, name)
    kube_server.job_failed(NAMESPACE, name, reason="DeadlineExceeded")
    with pytest.raises(PermanentError, match=r"ran past spec.maxDuration \(600s"):
        applying.result(timeout=30)
    assert bench.record(_run_id(bench, name))["status"] == "timed-out"


def test_a_secret_without_a_kubernetes_secret_in_the_namespace_is_refused_first(
    bench: KubeBench,
) -> None:
    bench.upstream["Secret/token"] = {
        "secrets": [{"namespace": "default", "name": "token", "key": "value"}]
    }
    with pytest.raises(
        PermanentError, match=r"Secret/token.*no Kubernetes Secret in namespace 'ml'"
    ):
        bench.apply(bench.doc(env={"TOKEN": {"secret": "token"}}), wait=False)
    assert bench.jobs() == []
    assert not (bench.data_dir / "runs" / bench.name).exists()  # no run was recorded
    bench.upstream["Secret/token"]["secrets"].append({"namespace": "ml", "name": "token-ml"})
    started = bench.apply(bench.doc(env={"TOKEN": {"secret": "token"}}), wait=False)
    container = bench.jobs()[0]["spec"]["template"]["spec"]["containers"][0]
    assert {
        "name": "TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "token-ml", "key": "value"}},
    } in container["env"]
    assert started.outputs["status"] == "running"


def test_the_plan_shows_the_manifests_before_their_featureset_quota_and_secret_exist(
    bench: KubeBench,
) -> None:
    """From empty state, as Terraform shows a resource whose inputs are not known yet: the
    Job as it will be, what only apply knows as (known after apply)."""
    from providers.local.training_config import UNKNOWN

    materialised = bench.featureset
    bench.featureset = {"id": UNKNOWN, "train": UNKNOWN, "validation": UNKNOWN}
    bench.upstream["Quota/team"] = {"namespace": UNKNOWN, "name": UNKNOWN}
    bench.upstream["Secret/token"] = {"secrets": UNKNOWN}
    gpu = {"cpu": 2, "memory": "1Gi", "gpus": 1, "gpuType": "a100"}
    doc = bench.doc(quota="team", env={"TOKEN": {"secret": "token"}}, resources=gpu)
    planned = bench.plan(doc)
    assert planned.manifests is not None
    config_map, job = planned.manifests
    assert config_map["data"] == {"config.json": UNKNOWN}  # the tables are its inputs
    assert job["kind"] == "Job" and job["metadata"]["namespace"] == UNKNOWN  # the Quota's
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"gpu": "a100"}
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["image"].endswith(DIGEST)
    secret = {"secretKeyRef": {"name": UNKNOWN, "key": UNKNOWN}}
    assert {"name": "TOKEN", "valueFrom": secret} in container["env"]
    bench.featureset = materialised  # then the config is shown
    bench.upstream["Quota/team"] = {"namespace": NAMESPACE, "name": "team"}
    bench.upstream["Secret/token"] = {
        "secrets": [{"namespace": NAMESPACE, "name": "token", "key": "value"}]
    }
    config_map, job = bench.plan(doc).manifests or []
    assert json.loads(config_map["data"]["config.json"])["run_id"] == UNKNOWN
    assert job["metadata"]["namespace"] == NAMESPACE
