"""Rendering a TrainingJob run: ConfigMap, Job and PyTorchJob, validated against schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from providers.base import PermanentError
from providers.kubernetes import training_render as render
from providers.local.training_config import JobResources
from trainer.config import RunConfig

SCHEMAS = Path(__file__).parent / "schemas"
K8S_VERSION = kubernetes_validate.latest_version()
DIGEST = "sha256:" + "ab" * 32
GPU_TYPES = {
    "a100": {
        "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"},
        "tolerations": [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule", "value": None}
        ],
    }
}


def _config(data_dir: Path, **extra: Any) -> RunConfig:
    run_dir = data_dir / "runs" / "churn" / "0123456789abcdef"
    raw: dict[str, Any] = {
        "version": 3,
        "run_id": "0123456789abcdef",
        "inputs": {
            "train": {"path": str(data_dir / "features" / "train.parquet"), "sha256": "aa"},
            "validation": {"path": "s3://bucket/features/validation.parquet", "sha256": "bb"},
            "features": ["f0"],
            "label": "label",
            "transform_path": str(data_dir / "features" / "transform.json"),
        },
        "model": {"type": "mlp", "task": "binary-classification"},
        "checkpoint": {"dir": str(run_dir / "checkpoints")},
        "output_dir": str(run_dir),
        "registry": {"type": "local", "uri": str(data_dir / "registry"), "model": "churn"},
        **extra,
    }
    return RunConfig.model_validate(raw)


def _run(tmp_path: Path, **resources: Any) -> render.RunManifests:
    asked = JobResources(
        cpu=resources.get("cpu", 2.0),
        memory_gib=resources.get("memory_gib", 4.0),
        gpus=resources.get("gpus", 1),
        gpu_type=resources.get("gpu_type", "a100"),
        workers=resources.get("workers", 1),
        nodes=resources.get("nodes", 1),
    )
    config = render.pod_config(_config(tmp_path), tmp_path, "/pipeform")
    return render.RunManifests(
        name=render.object_name("churn", config.run_id),
        namespace="ml",
        run_id=config.run_id,
        config=config.model_dump(mode="json"),
        asked=asked,
        image=f"registry.example.com/pipeform-trainer@{DIGEST}",
        placement=render.placement_of(GPU_TYPES, asked),
        claim="pipeform-data",
        secret_env={"API_TOKEN": ("api-token", "value")},
        plain_env={"MODE": "prod"},
        retries=3,
        max_duration_seconds=7200,
        ttl_seconds=86400,
        service_account="trainer",
        elastic=resources.get("elastic"),
    )


def _strict(manifest: dict[str, Any]) -> None:
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def test_pod_config_moves_local_paths_under_the_mount(tmp_path: Path) -> None:
    config = render.pod_config(_config(tmp_path), tmp_path, "/pipeform")
    assert config.version == 4 and config.termination_message_path == "/dev/termination-log"
    assert config.inputs.train.path == "/pipeform/features/train.parquet"
    assert config.inputs.validation.path == "s3://bucket/features/validation.parquet"
    assert config.inputs.transform_path == "/pipeform/features/transform.json"
    assert config.checkpoint.dir == "/pipeform/runs/churn/0123456789abcdef/checkpoints"
    assert config.output_dir == "/pipeform/runs/churn/0123456789abcdef"
    assert config.registry is not None and config.registry.uri == "/pipeform/registry"
    assert str(tmp_path) not in config.model_dump_json()


def test_a_path_outside_the_data_directory_is_refused(tmp_path: Path) -> None:
    config = _config(tmp_path, output_dir="/elsewhere/run")
    with pytest.raises(PermanentError, match="outside the local data directory"):
        render.pod_config(config, tmp_path, "/pipeform")


def test_one_node_is_a_job_that_validates_strictly(tmp_path: Path) -> None:
    run = _run(tmp_path)
    job = render.workload(run)
    _strict(job)
    _strict(render.config_map(run))
    spec = job["spec"]
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"]) == (3, 7200)
    assert spec["ttlSecondsAfterFinished"] == 86400
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    assert pod["restartPolicy"] == "Never"
    assert container["image"].endswith("@" + DIGEST)
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["resources"]["requests"] == {
        "cpu": "2",
        "memory": "4096Mi",
        "nvidia.com/gpu": "1",
    }
    assert pod["nodeSelector"] == GPU_TYPES["a100"]["nodeSelector"]
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    env = {e["name"]: e for e in container["env"]}
    assert env["API_TOKEN"] == {
        "name": "API_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "api-token", "key": "value"}},
    }
    assert env["MODE"]["value"] == "prod"
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["config"]["readOnly"] is True
    assert mounts["data"]["mountPath"] == "/pipeform"
    claims = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert claims[0]["persistentVolumeClaim"]["claimName"] == "pipeform-data"


def test_the_pod_failure_policy_matches_the_trainer_contract(tmp_path: Path) -> None:
    rules = render.workload(_run(tmp_path))["spec"]["podFailurePolicy"]["rules"]
    assert rules[0] == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}
    assert rules[1]["action"] == "FailJob" and rules[1]["onExitCodes"]["values"] == [3, 4]
    assert rules[2]["action"] == "Ignore" and rules[2]["onExitCodes"]["values"] == [143]


def test_the_config_map_holds_the_pod_config(tmp_path: Path) -> None:
    run = _run(tmp_path)
    data = json.loads(render.config_map(run)["data"]["config.json"])
    assert data["output_dir"] == "/pipeform/runs/churn/0123456789abcdef"
    assert data["termination_message_path"] == "/dev/termination-log"


def _validate_pytorchjob(job: dict[str, Any]) -> None:
    schema = json.loads((SCHEMAS / "pytorchjob.schema.json").read_text())
    jsonschema.validate(job, schema)
    for replica in job["spec"]["pytorchReplicaSpecs"].values():
        _strict({"apiVersion": "v1", "kind": "PodTemplate", "template": replica["template"]})


def test_several_nodes_are_a_pytorchjob(tmp_path: Path) -> None:
    run = _run(tmp_path, nodes=3, workers=2, gpus=4)
    job = render.workload(run)
    _validate_pytorchjob(job)
    spec = job["spec"]
    replicas = spec["pytorchReplicaSpecs"]
    assert (replicas["Master"]["replicas"], replicas["Worker"]["replicas"]) == (1, 2)
    assert {r["restartPolicy"] for r in replicas.values()} == {"ExitCode"}
    assert spec["nprocPerNode"] == "2"
    assert spec["runPolicy"] == {
        "backoffLimit": 3,
        "activeDeadlineSeconds": 7200,
        "ttlSecondsAfterFinished": 86400,
        "cleanPodPolicy": "None",
    }
    container = replicas["Worker"]["template"]["spec"]["containers"][0]
    assert container["name"] == "pytorch"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "8"  # 4 per worker, 2 workers
    assert container["command"][:3] == ["python", "-m", "torch.distributed.run"]


def test_one_worker_per_node_runs_the_trainer_itself(tmp_path: Path) -> None:
    """No torchrun: the trainer's own exit codes (143, 3, 4) reach the training operator."""
    job = render.workload(_run(tmp_path, nodes=2))
    container = job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]
    assert "command" not in container and container["args"][0] == "run"


def test_an_elastic_policy_is_rendered_when_asked(tmp_path: Path) -> None:
    run = _run(tmp_path, nodes=4, elastic={"minNodes": 2, "maxNodes": 4, "maxRestarts": 5})
    job = render.workload(run)
    _validate_pytorchjob(job)
    assert job["spec"]["elasticPolicy"] == {
        "minReplicas": 2,
        "maxReplicas": 4,
        "rdzvBackend": "c10d",
        "maxRestarts": 5,
    }


def test_a_wrong_field_fails_the_pytorchjob_schema(tmp_path: Path) -> None:
    job = render.workload(_run(tmp_path, nodes=2))
    job["spec"]["pytorchReplicaSpecs"]["Master"]["restartPolicy"] = "Sometimes"
    with pytest.raises(jsonschema.ValidationError):
        _validate_pytorchjob(job)


def test_an_unmapped_gpu_type_is_refused(tmp_path: Path) -> None:
    asked = JobResources(cpu=1, memory_gib=1, gpus=1, gpu_type="h100", workers=1, nodes=1)
    with pytest.raises(PermanentError, match=r"gpuType 'h100' has no node mapping.*a100"):
        render.placement_of(GPU_TYPES, asked)


def test_object_names_are_dns_labels_and_stable() -> None:
    name = render.object_name("Churn_Model." + "x" * 80, "0123456789abcdef0123")
    assert len(name) <= 63 and name == render.object_name(
        "Churn_Model." + "x" * 80, "0123456789abcdef0123"
    )
    assert name.endswith("-0123456789")
    assert render.object_name("churn", "abc") == "churn-abc"
