"""Manifests and helpers the Kubernetes test API server's self-tests share."""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"


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


def apply_job(kube_api: client.ApiClient, body: dict[str, Any], force: bool = False) -> Any:
    return client.BatchV1Api(kube_api).patch_namespaced_job_with_http_info(
        body["metadata"]["name"],
        "ml",
        body,
        field_manager="pipeform",
        force=force,
        _content_type=APPLY,
    )


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
