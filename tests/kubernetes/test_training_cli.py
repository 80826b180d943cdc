"""``pipeform apply`` of a TrainingJob on the kubernetes provider, in a child process: killed
with SIGKILL while it waits for the Job, the next apply adopts the running Job (one Job,
the same run) instead of starting a second one. The test server runs in this process and
plays the kubelet and the Job controller."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

from tests.kubernetes.apiserver import KubeServer
from tests.kubernetes.training_bench import DIGEST, NAMESPACE, message

ROOT = Path(__file__).resolve().parents[2]


def _tree(root: Path, kubeconfig: Path) -> Path:
    rng = np.random.default_rng(3)
    rows = ["id,year,x1,x2,label"]
    for i in range(300):
        x1, x2 = rng.normal(), rng.normal()
        rows.append(f"{i},{1 + i % 4},{x1:.4f},{x2:.4f},{int(x1 + 0.5 * x2 > 0)}")
    (root / "data").mkdir(parents=True)
    (root / "data" / "rows.csv").write_text("\n".join(rows) + "\n")
    (root / "pipeform.yaml").write_text(
        textwrap.dedent(
            f"""
            apiVersion: pipeform/v1
            kind: Workspace
            metadata: {{name: k8s}}
            spec:
              state: {{backend: sqlite, path: .pipeform/state.db}}
              providers:
                local: {{dataDir: .pipeform/data}}
                kubernetes:
                  kubeconfig: {kubeconfig}
                  context: test
                  namespace: {NAMESPACE}
                  image: {{repository: registry.example.com/pipeform-trainer, digest: "{DIGEST}"}}
                  volume: {{claim: pipeform-data}}
                  pollSeconds: 0.1
              defaults: {{provider: kubernetes, resources: {{cpu: 1, memory: 1Gi}}}}
              registry: {{type: local}}
            ---
            apiVersion: pipeform/v1
            kind: Dataset
            metadata: {{name: rows}}
            spec:
              source: {{uri: file://data/rows.csv, format: csv}}
              schema:
                - {{name: id, type: int, nullable: false}}
                - {{name: year, type: int, nullable: false}}
                - {{name: x1, type: float, nullable: false}}
                - {{name: x2, type: float, nullable: false}}
                - {{name: label, type: int, nullable: false, allowed: [0, 1]}}
            ---
            apiVersion: pipeform/v1
            kind: FeatureSet
            metadata: {{name: rows-features}}
            spec:
              dataset: rows
              entity: [id]
              label: {{column: label}}
              split: {{type: temporal, column: year, validationFrom: 4}}
              features:
                - {{name: x1, transforms: [standardize]}}
                - {{name: x2, transforms: [standardize]}}
            ---
            apiVersion: pipeform/v1
            kind: TrainingJob
            metadata: {{name: rows-model}}
            spec:
              features: rows-features
              model: {{type: linear, task: binary-classification}}
              resources: {{cpu: 1, memory: 1Gi}}
              maxDuration: 1h
            """
        ).lstrip()
    )
    return root


#: the pipeform command, with the kubernetes provider registered as its entry point would
#: (the shared test environment's installed metadata may predate the entry point)
BOOT = (
    "from providers import base; from providers.kubernetes import KubernetesProvider; "
    "base.register(KubernetesProvider); from reconciler.cli import run; run()"
)


def _pipeform(*args: str) -> list[str]:
    return [sys.executable, "-c", BOOT, *args]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPEFORM_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["NO_COLOR"] = "1"
    return env


def _jobs(server: KubeServer) -> list[dict[str, object]]:
    return server.objects("batch", "v1", "jobs", NAMESPACE)


def _polled(server: KubeServer) -> bool:
    """Whether pipeform listed the Job's pods since the requests were reset: it waits."""
    return any(r.resource == "pods" and r.verb == "list" for r in server.requests)


def test_kill_9_while_waiting_then_apply_adopts_the_running_job(
    kube_server: KubeServer, kubeconfig: Path, tmp_path: Path
) -> None:
    root = _tree(tmp_path / "tree", kubeconfig)
    run = {"cwd": root, "env": _env(), "capture_output": True, "text": True, "timeout": 120}
    empty = subprocess.run(_pipeform("plan", "--json"), **run)  # type: ignore[call-overload]
    assert empty.returncode == 0, empty.stdout + empty.stderr
    changes = {c["address"]: c for c in json.loads(empty.stdout)["resource_changes"]}
    config_map, job = changes["TrainingJob/rows-model"]["change"]["after"]["manifests"]
    assert config_map["data"] == {"config.json": "(known after apply)"}  # no tables yet
    assert job["spec"]["template"]["spec"]["containers"][0]["image"].endswith(DIGEST)
    first = subprocess.run(
        _pipeform("apply", "--auto-approve", "--target", "FeatureSet/rows-features"), **run
    )  # type: ignore[call-overload]
    assert first.returncode == 0, first.stdout + first.stderr
    planned = subprocess.run(_pipeform("plan", "--json"), **run)  # type: ignore[call-overload]
    assert planned.returncode == 0, planned.stdout + planned.stderr
    changes = {c["address"]: c for c in json.loads(planned.stdout)["resource_changes"]}
    manifests = changes["TrainingJob/rows-model"]["change"]["after"]["manifests"]
    assert [m["kind"] for m in manifests] == ["ConfigMap", "Job"]
    container = manifests[1]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"registry.example.com/pipeform-trainer@{DIGEST}"
    assert manifests[1]["metadata"]["name"] == "rows-model-(known after apply)"
    waiting, _ = _apply_until_its_job_runs(root, kube_server, time.monotonic() + 60)
    try:
        time.sleep(0.5)  # pipeform is in its wait loop
        assert waiting.poll() is None
    finally:
        waiting.send_signal(signal.SIGKILL)
        waiting.communicate(timeout=30)
    job = _jobs(kube_server)[0]
    name, uid = str(job["metadata"]["name"]), job["metadata"]["uid"]  # type: ignore[index]
    config_map = kube_server.get("", "v1", "configmaps", NAMESPACE, name)
    assert config_map is not None
    run_id = json.loads(config_map["data"]["config.json"])["run_id"]
    kube_server.reset_requests()
    again = _apply_child(root)
    deadline = time.monotonic() + 60
    while not _polled(kube_server):  # the new apply waits on the running Job
        assert again.poll() is None, again.communicate()[0]
        assert time.monotonic() < deadline, "the second apply never waited on the Job"
        time.sleep(0.05)
    kube_server.job_succeeded(
        NAMESPACE, name, message=message("succeeded", run_id, metrics={"auc": 0.7})
    )
    output = again.communicate(timeout=120)[0]
    assert again.returncode == 0, output
    assert f"adopting Job {NAMESPACE}/{name} (no new Job)" in output
    assert not [r for r in kube_server.requests if r.verb == "create"]  # nothing made anew
    jobs = _jobs(kube_server)
    assert [j["metadata"]["uid"] for j in jobs] == [uid]  # type: ignore[index]
    shown = subprocess.run(_pipeform("state", "show", "TrainingJob/rows-model"), **run)  # type: ignore[call-overload]
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert run_id in shown.stdout and "succeeded" in shown.stdout and "0.7" in shown.stdout


def test_no_wait_then_plan_and_refresh_pick_up_the_outcome(
    kube_server: KubeServer, kubeconfig: Path, tmp_path: Path
) -> None:
    root = _tree(tmp_path / "tree", kubeconfig)
    run = {"cwd": root, "env": _env(), "capture_output": True, "text": True, "timeout": 120}
    started = subprocess.run(_pipeform("apply", "--auto-approve", "--no-wait"), **run)  # type: ignore[call-overload]
    assert started.returncode == 0, started.stdout + started.stderr
    assert "not waiting" in started.stdout
    job = _jobs(kube_server)[0]
    name = str(job["metadata"]["name"])  # type: ignore[index]
    config_map = kube_server.get("", "v1", "configmaps", NAMESPACE, name)
    assert config_map is not None
    run_id = json.loads(config_map["data"]["config.json"])["run_id"]
    kube_server.job_running(NAMESPACE, name)
    quiet = subprocess.run(_pipeform("plan", "--detailed-exitcode"), **run)  # type: ignore[call-overload]
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr  # running: nothing to do
    kube_server.job_succeeded(
        NAMESPACE, name, message=message("succeeded", run_id, metrics={"auc": 0.8})
    )
    shown = subprocess.run(_pipeform("plan", "--detailed-exitcode"), **run)  # type: ignore[call-overload]
    assert shown.returncode == 2, shown.stdout + shown.stderr
    assert "TrainingJob/rows-model" in shown.stdout and "succeeded" in shown.stdout
    refreshed = subprocess.run(_pipeform("refresh"), **run)  # type: ignore[call-overload]
    assert refreshed.returncode == 0, refreshed.stdout + refreshed.stderr
    state = subprocess.run(_pipeform("state", "show", "TrainingJob/rows-model"), **run)  # type: ignore[call-overload]
    assert "0.8" in state.stdout and "succeeded" in state.stdout, state.stdout
    recorded = subprocess.run(_pipeform("apply", "--auto-approve"), **run)  # type: ignore[call-overload]
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    assert "record the finished run" in recorded.stdout
    settled = subprocess.run(_pipeform("plan", "--detailed-exitcode"), **run)  # type: ignore[call-overload]
    assert settled.returncode == 0, settled.stdout + settled.stderr
    assert [j["metadata"]["uid"] for j in _jobs(kube_server)] == [job["metadata"]["uid"]]  # type: ignore[index]


def _apply_child(root: Path) -> subprocess.Popen[str]:
    """``pipeform apply --auto-approve`` in a child process, its output read as text."""
    return subprocess.Popen(
        _pipeform("apply", "--auto-approve"),
        cwd=root,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _apply_until_its_job_runs(
    root: Path, kube_server: KubeServer, deadline: float
) -> tuple[subprocess.Popen[str], str]:
    """``pipeform apply`` in a child process, until it has made its Job (by ``deadline``),
    which the test server then runs; the child and the Job's name."""
    waiting = _apply_child(root)
    try:
        while not _jobs(kube_server):
            assert waiting.poll() is None, waiting.communicate()[0]
            assert time.monotonic() < deadline, "no Job was made"
            time.sleep(0.05)
    except BaseException:
        waiting.kill()
        waiting.communicate(timeout=30)
        raise
    name = str(_jobs(kube_server)[0]["metadata"]["name"])
    kube_server.job_running(NAMESPACE, name)
    return waiting, name


def test_ctrl_c_stops_waiting_not_the_job_and_says_so(
    kube_server: KubeServer, kubeconfig: Path, tmp_path: Path
) -> None:
    root = _tree(tmp_path / "tree", kubeconfig)
    deadline = time.monotonic() + 90
    waiting, name = _apply_until_its_job_runs(root, kube_server, deadline)
    try:
        kube_server.reset_requests()
        while not _polled(kube_server):
            assert time.monotonic() < deadline, "pipeform never waited on the Job"
            time.sleep(0.05)
        waiting.send_signal(signal.SIGINT)
        output = waiting.communicate(timeout=60)[0]
    finally:
        if waiting.poll() is None:
            waiting.kill()
    assert waiting.returncode != 0
    assert f"stopped waiting; Job {NAMESPACE}/{name} keeps running" in output, output
    job = kube_server.get("batch", "v1", "jobs", NAMESPACE, name)
    assert job is not None and job["status"]["active"] == 1  # the Job was left alone
