"""Render one TrainingJob run as Kubernetes manifests: a ConfigMap and a Job or PyTorchJob.

Pure functions, no client: from the run's ``trainer.config.RunConfig`` (built by the
local provider's ``build_run_config``), the job's resources and the Workspace settings,
to plain manifests (dicts) that the handler applies with server-side apply.

- ``pod_config`` rewrites the config for a pod: locations under the local data
  directory move under the claim's ``mountPath`` (inputs, transform, checkpoint and
  output directories, a local registry); ``s3://`` locations pass unchanged; the trainer
  writes its compact result to ``/dev/termination-log`` (contract version 4).
- ``config_map``: the config JSON, mounted read-only at ``/etc/pipeform``.
- ``batch_job`` (nodes == 1): a batch/v1 Job; ``backoffLimit`` = retries;
  ``podFailurePolicy``: a pod with the ``DisruptionTarget`` condition (preempted,
  evicted, drained) is ignored, exit 3 (bad input) and 4 (gated) fail the Job at once,
  and exit 143 (the trainer preempted by SIGTERM without that condition, such as a
  node shutting down) is ignored too, so preemption never uses up retries; the
  deadline (``activeDeadlineSeconds`` = maxDuration) bounds how often it can happen.
- ``pytorch_job`` (nodes > 1): a kubeflow.org/v1 PyTorchJob, Master (1) and Worker
  (nodes - 1), container ``pytorch``, ``restartPolicy: ExitCode`` (the training operator
  restarts 128-255, such as 143, and fails on 1-127, such as 3 and 4), ``runPolicy``
  with the same backoffLimit, deadline and TTL.

The pod runs the trainer image by digest as a non-root user with a read-only root
filesystem (``/tmp`` is an emptyDir), asks for cpu, memory and ``nvidia.com/gpu``, lands
on the gpuType's nodes (nodeSelector and tolerations from the Workspace mapping), and
takes secrets as ``secretKeyRef`` environment variables: never a value.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from providers.base import JSON, PermanentError

if TYPE_CHECKING:
    from providers.local.training_config import JobResources
    from trainer.config import RunConfig

CONFIG_DIR = "/etc/pipeform"
CONFIG_FILE = "config.json"
TERMINATION_LOG = "/dev/termination-log"
TRAINER_CONTAINER = "trainer"
PYTORCH_CONTAINER = "pytorch"  # the training operator finds the container by this name
GPU_RESOURCE = "nvidia.com/gpu"
#: the image's user (trainer/Dockerfile: USER 10001:10001)
TRAINER_UID = 10001
MAX_NAME = 63  # a Job's name is a pod label value (job-name): at most 63 characters


@dataclass(frozen=True)
class RunManifests:
    """What one run needs: everything the manifests are made from."""

    name: str  # the Job/PyTorchJob's and the ConfigMap's name (``object_name``)
    namespace: str
    run_id: str
    config: JSON  # the pod's RunConfig as JSON (``pod_config``)
    asked: JobResources
    image: str  # repository@sha256:...
    pull_policy: str = "IfNotPresent"
    placement: JSON = field(default_factory=dict)  # {nodeSelector, tolerations}
    claim: str | None = None
    mount_path: str = "/pipeform"
    secret_env: dict[str, tuple[str, str]] = field(default_factory=dict)  # var: (secret, key)
    plain_env: dict[str, str] = field(default_factory=dict)
    retries: int = 2
    max_duration_seconds: int = 21600
    ttl_seconds: int = 86400
    service_account: str | None = None
    elastic: JSON | None = None  # {minNodes, maxNodes, maxRestarts}


def object_name(job: str, run_id: str) -> str:
    """The run's object name: the job's name (as a DNS-1123 label) and the run id's head,
    the same for every attempt and every pipeform that looks (so a re-run adopts it)."""
    base = re.sub(r"[^a-z0-9-]+", "-", job.lower()).strip("-") or "job"
    if base != job:  # two names that fold to one stay apart
        base = f"{base[:40]}-{hashlib.sha256(job.encode()).hexdigest()[:6]}"
    suffix = re.sub(r"[^a-z0-9]", "", run_id.lower())[:10] or "run"
    return f"{base[: MAX_NAME - len(suffix) - 1].rstrip('-')}-{suffix}"


def placement_of(gpu_types: dict[str, JSON], asked: JobResources) -> JSON:
    """The gpuType's nodeSelector and tolerations; refused when the Workspace maps none."""
    if not asked.gpu_type:
        return {}
    mapping = gpu_types.get(asked.gpu_type)
    if mapping is None:
        known = ", ".join(sorted(gpu_types)) or "none"
        raise PermanentError(
            f"spec.resources.gpuType {asked.gpu_type!r} has no node mapping in the Workspace "
            f"(providers.kubernetes.gpuTypes maps: {known}); add gpuTypes.{asked.gpu_type} "
            "with its nodeSelector and tolerations, or use a mapped gpuType"
        )
    return {
        "nodeSelector": dict(mapping.get("nodeSelector") or {}),
        "tolerations": [
            {k: v for k, v in t.items() if v is not None} for t in mapping.get("tolerations") or []
        ],
    }


def pod_config(config: RunConfig, data_dir: Path, mount_path: str) -> RunConfig:
    """The config as a pod sees it: local paths under ``data_dir`` moved under
    ``mount_path``, s3:// kept, version 4 with the termination message path."""
    from trainer.config import S3_SCHEME, RunConfig

    root = data_dir.resolve()

    def moved(place: str | None, what: str) -> str | None:
        if place is None or place.startswith(S3_SCHEME):
            return place
        try:
            inside = Path(place).resolve().relative_to(root)
        except ValueError:
            raise PermanentError(
                f"the run's {what} {place} is outside the local data directory {data_dir}, "
                "which is the volume pods mount; keep it under providers.local.dataDir"
            ) from None
        return str(Path(mount_path) / inside) if inside.parts else mount_path

    raw = config.model_dump(mode="json")
    inputs = raw["inputs"]
    for split in ("train", "validation"):
        inputs[split]["path"] = moved(inputs[split]["path"], f"{split} table")
    inputs["transform_path"] = moved(inputs.get("transform_path"), "transform")
    raw["checkpoint"]["dir"] = moved(raw["checkpoint"]["dir"], "checkpoint directory")
    raw["output_dir"] = moved(raw["output_dir"], "output directory")
    registry = raw.get("registry")
    if registry is not None and registry.get("type") == "local":
        registry["uri"] = moved(registry["uri"], "model registry")
    raw["version"] = 4
    raw["termination_message_path"] = TERMINATION_LOG
    return RunConfig.model_validate(raw)


def config_map(run: RunManifests) -> JSON:
    text = json.dumps(run.config, indent=2, sort_keys=True) + "\n"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": run.name, "namespace": run.namespace},
        "data": {CONFIG_FILE: text},
    }


def _quantity(value: float) -> str:
    return f"{value:g}"


def _resources(asked: JobResources) -> JSON:
    """Per pod: the per-worker requests times the workers on the node."""
    workers = asked.workers
    amounts: JSON = {
        "cpu": _quantity(asked.cpu * workers),
        "memory": f"{round(asked.memory_gib * workers * 1024)}Mi",
    }
    limits = dict(amounts)
    if asked.gpus:
        limits[GPU_RESOURCE] = str(asked.gpus * workers)
        amounts = {**amounts, GPU_RESOURCE: str(asked.gpus * workers)}
    return {"requests": amounts, "limits": limits}


def _env(run: RunManifests) -> list[JSON]:
    threads = str(max(1, int(run.asked.cpu)))
    env: list[JSON] = [
        {"name": name, "value": value}
        for name, value in (
            ("PYTHONUNBUFFERED", "1"),
            ("OMP_NUM_THREADS", threads),
            ("MKL_NUM_THREADS", threads),
            ("OPENBLAS_NUM_THREADS", threads),
            ("PIPEFORM_RUN_ID", run.run_id),
        )
    ]
    if not run.asked.gpus:
        env.append({"name": "CUDA_VISIBLE_DEVICES", "value": ""})
    for name in sorted(run.plain_env):
        env.append({"name": name, "value": run.plain_env[name]})
    for name in sorted(run.secret_env):
        secret, key = run.secret_env[name]
        env.append({"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})
    return env


def _command(run: RunManifests, distributed: bool) -> JSON:
    """The image's entrypoint is ``python -m trainer``; several workers need torchrun,
    which on a PyTorchJob reads the operator's PET_* variables (nodes, rank, master)."""
    trainer = ["run", "--config", f"{CONFIG_DIR}/{CONFIG_FILE}"]
    if run.asked.workers == 1 and not (distributed and run.elastic):
        # the trainer itself: its exit codes (143, 3, 4) reach Kubernetes as they are
        return {"args": trainer}
    launcher = ["python", "-m", "torch.distributed.run"]
    if not distributed:
        launcher.append("--standalone")
    launcher.append(f"--nproc-per-node={run.asked.workers}")
    return {"command": [*launcher, "-m", "trainer", *trainer]}


def _container(run: RunManifests, name: str, distributed: bool) -> JSON:
    mounts: list[JSON] = [
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    if run.claim:
        mounts.append({"name": "data", "mountPath": run.mount_path})
    return {
        "name": name,
        "image": run.image,
        "imagePullPolicy": run.pull_policy,
        **_command(run, distributed),
        "env": _env(run),
        "resources": _resources(run.asked),
        "volumeMounts": mounts,
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }


def _pod_spec(run: RunManifests, container: str, restart: str, distributed: bool) -> JSON:
    volumes: list[JSON] = [
        {"name": "config", "configMap": {"name": run.name}},
        {"name": "tmp", "emptyDir": {}},
    ]
    if run.claim:
        volumes.append({"name": "data", "persistentVolumeClaim": {"claimName": run.claim}})
    pod: JSON = {
        "restartPolicy": restart,
        "containers": [_container(run, container, distributed)],
        "volumes": volumes,
        "securityContext": {
            "runAsUser": TRAINER_UID,
            "runAsGroup": TRAINER_UID,
            "fsGroup": TRAINER_UID,
        },
    }
    if run.placement.get("nodeSelector"):
        pod["nodeSelector"] = dict(run.placement["nodeSelector"])
    if run.placement.get("tolerations"):
        pod["tolerations"] = list(run.placement["tolerations"])
    if run.service_account:
        pod["serviceAccountName"] = run.service_account
    return pod


def _pod_labels(run: RunManifests) -> JSON:
    return {"pipeform.dev/run-id": run.run_id[:63]}


def pod_failure_policy() -> JSON:
    """Preemption is not a failure; gate and bad input are final (trainer.config codes)."""
    from trainer.config import EXIT_PREEMPTED, PERMANENT_EXITS

    return {
        "rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": TRAINER_CONTAINER,
                    "operator": "In",
                    "values": sorted(PERMANENT_EXITS),
                },
            },
            {
                "action": "Ignore",
                "onExitCodes": {
                    "containerName": TRAINER_CONTAINER,
                    "operator": "In",
                    "values": [EXIT_PREEMPTED],
                },
            },
        ]
    }


def batch_job(run: RunManifests) -> JSON:
    """A batch/v1 Job for one node."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": run.name, "namespace": run.namespace},
        "spec": {
            "backoffLimit": run.retries,
            "completions": 1,
            "parallelism": 1,
            "activeDeadlineSeconds": run.max_duration_seconds,
            "ttlSecondsAfterFinished": run.ttl_seconds,
            "podFailurePolicy": pod_failure_policy(),
            "template": {
                "metadata": {"labels": _pod_labels(run)},
                "spec": _pod_spec(run, TRAINER_CONTAINER, "Never", distributed=False),
            },
        },
    }


def pytorch_job(run: RunManifests) -> JSON:
    """A kubeflow.org/v1 PyTorchJob: a Master and nodes - 1 Workers."""

    def replica(count: int) -> JSON:
        return {
            "replicas": count,
            "restartPolicy": "ExitCode",
            "template": {
                "metadata": {"labels": _pod_labels(run)},
                "spec": _pod_spec(run, PYTORCH_CONTAINER, "Never", distributed=True),
            },
        }

    spec: JSON = {
        "runPolicy": {
            "backoffLimit": run.retries,
            "activeDeadlineSeconds": run.max_duration_seconds,
            "ttlSecondsAfterFinished": run.ttl_seconds,
            "cleanPodPolicy": "None",
        },
        "nprocPerNode": str(run.asked.workers),
        "pytorchReplicaSpecs": {"Master": replica(1)},
    }
    if run.asked.nodes > 1:
        spec["pytorchReplicaSpecs"]["Worker"] = replica(run.asked.nodes - 1)
    if run.elastic:
        spec["elasticPolicy"] = _elastic(run)
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": run.name, "namespace": run.namespace},
        "spec": spec,
    }


def _elastic(run: RunManifests) -> JSON:
    asked: Any = run.elastic or {}
    policy: JSON = {
        "minReplicas": int(asked.get("minNodes") or 1),
        "maxReplicas": int(asked.get("maxNodes") or run.asked.nodes),
        "rdzvBackend": "c10d",
    }
    if asked.get("maxRestarts") is not None:
        policy["maxRestarts"] = int(asked["maxRestarts"])
    return policy


def workload(run: RunManifests) -> JSON:
    """The run's Job (one node) or PyTorchJob (several)."""
    return pytorch_job(run) if run.asked.nodes > 1 else batch_job(run)
