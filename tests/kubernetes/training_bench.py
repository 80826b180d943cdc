"""A TrainingJob on the kubernetes provider against the test API server, for lifecycle tests.

``KubeBench`` holds a spec tree with a materialised FeatureSet on its data directory (the
volume the pods would mount), the provider's TrainingJob handler pointed at the test
server, and helpers to apply in a thread while the test plays the kubelet and the Job
controller (``wait_for_job``).
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from providers.base import (
    ApplyRequest,
    ApplyResponse,
    DeleteRequest,
    PlanRequest,
    PlanResponse,
    ReadRequest,
    ReadResponse,
    ResourceContext,
)
from providers.kubernetes import KubernetesProvider
from providers.kubernetes.training import TrainingJobHandler
from tests.kubernetes.apiserver import KubeServer
from tests.training.conftest import LINEAGE, document, write_featureset

DIGEST = "sha256:" + "ab" * 32
NAMESPACE = "ml"


def message(status: str = "succeeded", run_id: str = "", **fields: Any) -> str:
    """A termination message as the trainer writes it (trainer.termination)."""
    body = {"status": status, "run_id": run_id, **fields}
    return json.dumps(body, separators=(",", ":"))


def job_spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "features": "churn-features",
        "model": {"type": "mlp", "task": "binary-classification", "hidden": [8]},
        "resources": {"cpu": 1, "memory": "1Gi"},
        "retries": 2,
        "maxDuration": "1h",
    }
    spec.update(overrides)
    return spec


def provider_config(server: KubeServer, kubeconfig: Path, **extra: Any) -> dict[str, Any]:
    return {
        "kubeconfig": str(kubeconfig),
        "context": "test",
        "namespace": NAMESPACE,
        "image": {"repository": "registry.example.com/pipeform-trainer", "digest": DIGEST},
        "volume": {"claim": "pipeform-data", "mountPath": "/pipeform"},
        "gpuTypes": {"a100": {"nodeSelector": {"gpu": "a100"}}},
        "pollSeconds": 0.05,
        "workspace": {
            "name": "test",
            "local": {"dataDir": ".pipeform/data"},
            "registry": {"type": "local"},
        },
        **extra,
    }


@dataclass
class KubeBench:
    root: Path
    server: KubeServer
    provider: KubernetesProvider
    handler: TrainingJobHandler
    featureset: dict[str, Any]
    name: str = "churn-model"
    upstream: dict[str, dict[str, Any]] = field(default_factory=dict)
    pool: cf.ThreadPoolExecutor = field(default_factory=lambda: cf.ThreadPoolExecutor(2))

    @property
    def ctx(self) -> ResourceContext:
        return ResourceContext.of(f"TrainingJob/{self.name}", LINEAGE, self.root)

    @property
    def data_dir(self) -> Path:
        return self.handler.local_settings.data_dir

    def doc(self, **overrides: Any) -> dict[str, Any]:
        return document("TrainingJob", self.name, job_spec(**overrides))

    def quota(self, hard: dict[str, str], name: str = "team") -> None:
        """A ResourceQuota in the namespace, made with the real client as kubectl would,
        and a Quota document's outputs naming it (what ``spec.quota: team`` reads)."""
        from kubernetes import client

        api = client.CoreV1Api(self.handler.client.api())
        body = {"metadata": {"name": name}, "spec": {"hard": hard}}
        api.create_namespaced_resource_quota(NAMESPACE, body)
        self.upstream[f"Quota/{name}"] = {"namespace": NAMESPACE, "name": name}

    def inputs(self) -> dict[str, dict[str, Any]]:
        return {"FeatureSet/churn-features": self.featureset, **self.upstream}

    def plan(self, doc: dict[str, Any], prior: ApplyResponse | None = None) -> PlanResponse:
        return self.handler.plan(
            PlanRequest(self.ctx, doc if prior else None, doc, prior.outputs if prior else {},
                        self.inputs())
        )  # fmt: skip

    def request(
        self, doc: dict[str, Any], prior: ApplyResponse | None = None, **options: Any
    ) -> ApplyRequest:
        return ApplyRequest(
            self.ctx,
            doc,
            doc if prior else None,
            prior.outputs if prior else {},
            prior.external_id if prior else None,
            self.inputs(),
            **options,
        )

    def apply(
        self, doc: dict[str, Any], prior: ApplyResponse | None = None, **options: Any
    ) -> ApplyResponse:
        request = self.request(doc, prior, **options)
        return (self.handler.update if prior else self.handler.create)(request)

    def start(
        self, doc: dict[str, Any], prior: ApplyResponse | None = None, **options: Any
    ) -> cf.Future[ApplyResponse]:
        """Apply in a thread (it waits for the Job the test then plays)."""
        return self.pool.submit(self.apply, doc, prior, **options)

    def start_running(self, doc: dict[str, Any]) -> tuple[cf.Future[ApplyResponse], str, str]:
        """Apply in a thread until it has made its Job, whose pod the test server then
        runs: the apply, the Job's name and the run id."""
        applying = self.start(doc)
        name = self.wait_for_job()
        run_id = str(self.config_of(name)["run_id"])
        self.server.job_running(NAMESPACE, name)
        return applying, name, run_id

    def read(self, prior: ApplyResponse, doc: dict[str, Any]) -> ReadResponse:
        return self.handler.read(ReadRequest(self.ctx, doc, prior.outputs, prior.external_id))

    def read_batch(self, prior: ApplyResponse, doc: dict[str, Any]) -> ReadResponse:
        """The read refresh makes: the provider's batch read (one LIST per kind)."""
        request = ReadRequest(self.ctx, doc, prior.outputs, prior.external_id)
        found = self.provider.read_batch([request])
        assert found is not None
        return found[0]

    def delete(self, prior: ApplyResponse, doc: dict[str, Any]) -> None:
        self.handler.delete(DeleteRequest(self.ctx, doc, prior.outputs, prior.external_id))

    def jobs(self, kind: str = "Job") -> list[dict[str, Any]]:
        if kind == "PyTorchJob":
            return self.server.objects("kubeflow.org", "v1", "pytorchjobs", NAMESPACE)
        return self.server.objects("batch", "v1", "jobs", NAMESPACE)

    def wait_for_job(
        self, kind: str = "Job", besides: tuple[str, ...] = (), timeout: float = 20
    ) -> str:
        """The name of a Job the apply made, once there is one (other than ``besides``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [str(j["metadata"]["name"]) for j in self.jobs(kind)]
            fresh = [n for n in found if n not in besides]
            if fresh:
                return fresh[0]
            time.sleep(0.02)
        raise AssertionError(f"no {kind} appeared within {timeout}s")

    def config_of(self, name: str) -> dict[str, Any]:
        config_map = self.server.get("", "v1", "configmaps", NAMESPACE, name)
        assert config_map is not None
        return dict(json.loads(config_map["data"]["config.json"]))

    def record(self, run_id: str) -> dict[str, Any]:
        path = self.data_dir / "runs" / self.name / run_id / "run.json"
        return dict(json.loads(path.read_text()))


def make_bench(server: KubeServer, kubeconfig: Path, tmp_path: Path) -> KubeBench:
    root = tmp_path / "tree"
    root.mkdir()
    provider = KubernetesProvider(provider_config(server, kubeconfig), root)
    handler = provider.handler("TrainingJob")
    assert isinstance(handler, TrainingJobHandler)
    featureset = write_featureset(handler.local_settings.data_dir)
    return KubeBench(root, server, provider, handler, featureset)
