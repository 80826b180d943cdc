"""What one TrainingJob run is given: its trainer config, environment, resources and quota check.

Pure functions from the applied document (camelCase JSON, as the planner hands it to
providers), the FeatureSet's outputs, the Workspace settings and the local secret store,
to what the local executor launches: a ``trainer.config.RunConfig``, the process
environment (secret values only here, never in a file), and the resources recorded for
the run. Also the checks made before anything starts: the feature tables' checksums, the
Quota's limits, and GPUs present on this machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from providers.base import JSON, PermanentError, ResourceContext
from providers.local import files
from providers.local.relay import REDACT_ENV
from providers.local.settings import LocalSettings
from reconciler.gitinfo import head_commit
from reconciler.kinds.quantities import format_duration, parse_cpu, parse_duration, parse_memory

if TYPE_CHECKING:
    from collections.abc import Mapping

    from trainer.config import RunConfig

#: reconciler.plan.model.UNKNOWN: an upstream output that only its apply will tell
UNKNOWN = "(known after apply)"
#: why nodes > 1 is refused, in words
NOT_BUILT_NODES = "training across machines needs a cluster provider, which is not available yet"
GIB = 2**30
DEFAULT_CPU = 1.0
DEFAULT_MEMORY_GIB = 2.0
#: variables of pipeform's own environment a training process inherits; everything else
#: it needs comes from spec.env (so credentials in the shell do not leak into training code)
INHERITED_ENV = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "LD_LIBRARY_PATH",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
)
INHERITED_PREFIXES = ("LC_", "CUDA_", "NCCL_", "NVIDIA_", "MLFLOW_")


@dataclass(frozen=True)
class JobResources:
    """What one run asks for: per worker (cpu, memory, gpus) and the layout."""

    cpu: float
    memory_gib: float
    gpus: int
    gpu_type: str | None
    workers: int
    nodes: int

    def as_output(self) -> JSON:
        return {
            "cpu": self.cpu,
            "memoryGiB": self.memory_gib,
            "gpus": self.gpus,
            "gpuType": self.gpu_type,
            "workers": self.workers,
            "nodes": self.nodes,
        }


def canonical_hash(value: Any) -> str:
    """The same content address the engine gives documents (sorted, compact JSON)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def job_name(ctx: ResourceContext) -> str:
    return files.check_name(ctx.name, "TrainingJob name")


def resources_of(spec: JSON, settings: LocalSettings) -> JobResources:
    """spec.resources, with cpu and memory from the Workspace's defaults where unset."""
    asked = spec.get("resources") or {}
    defaults = (settings.workspace.get("defaults") or {}).get("resources") or {}
    cpu = asked.get("cpu") if asked.get("cpu") is not None else defaults.get("cpu")
    memory = asked.get("memory") if asked.get("memory") is not None else defaults.get("memory")
    layout = spec.get("distributed") or {}
    return JobResources(
        cpu=float(parse_cpu(cpu)) if cpu is not None else DEFAULT_CPU,
        memory_gib=parse_memory(memory) / GIB if memory is not None else DEFAULT_MEMORY_GIB,
        gpus=int(asked.get("gpus") or 0),
        gpu_type=asked.get("gpuType"),
        workers=int(layout.get("workers") or 1),
        nodes=int(layout.get("nodes") or 1),
    )


def max_duration(spec: JSON) -> float:
    value = spec.get("maxDuration")
    return parse_duration(value) if isinstance(value, str) else float(value or 21600.0)


def featureset_outputs(ctx: ResourceContext, spec: JSON, upstream: Mapping[str, JSON]) -> JSON:
    """The FeatureSet's recorded outputs; refused when it has not been applied."""
    address = f"FeatureSet/{spec.get('features')}"
    outputs = upstream.get(address)
    if not outputs or not isinstance(outputs.get("id"), str) or outputs["id"] == UNKNOWN:
        raise PermanentError(
            f"{ctx.address}: {address} has no materialised features yet; "
            f"apply {address} first (pipeform apply --target {address})"
        )
    for split in ("train", "validation"):
        table = outputs.get(split)
        if not isinstance(table, dict) or not table.get("path") or not table.get("sha256"):
            raise PermanentError(
                f"{ctx.address}: {address} records no {split} table; apply {address} again"
            )
    return outputs


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_tables(ctx: ResourceContext, spec: JSON, fs: JSON, settings: LocalSettings) -> None:
    """Each feature table exists and holds the bytes its FeatureSet recorded (a table in the
    artifacts bucket is checked by the trainer as it fetches it)."""
    if settings.has_artifacts_bucket and all(fs[s].get("uri") for s in ("train", "validation")):
        return
    fix = f"re-materialise it: pipeform apply --replace FeatureSet/{spec.get('features')}"
    for split in ("train", "validation"):
        table = fs[split]
        path = Path(str(table["path"]))
        shown = settings.shown(path)
        if not path.is_file():
            raise PermanentError(
                f"{ctx.address}: the {split} feature table {shown} is missing; {fix}"
            )
        expected = str(table["sha256"]).removeprefix("sha256:")
        found = sha256_of(path)
        if found != expected:
            raise PermanentError(
                f"{ctx.address}: the {split} feature table {shown} was changed after it was "
                f"materialised (sha256 {found[:12]}…, recorded {expected[:12]}…), so nothing "
                f"was trained; {fix}"
            )


def check_quota(
    ctx: ResourceContext,
    spec: JSON,
    upstream: Mapping[str, JSON],
    settings: LocalSettings,
    asked: JobResources,
) -> int | None:
    """Refuse a job that asks more than its Quota allows; its concurrentJobs limit, if any."""
    name = spec.get("quota")
    if not name:
        return None
    from providers.local.quota import recorded_limits

    recorded_file = (upstream.get(f"Quota/{name}") or {}).get("file")
    key = Path(recorded_file).stem if isinstance(recorded_file, str) else str(name)
    record = recorded_limits(settings).get(key)
    if record is None:
        raise PermanentError(
            f"{ctx.address}: Quota/{name} is not applied (no record of its limits); "
            f"apply it first: pipeform apply --target Quota/{name}"
        )
    limits: JSON = record["limits"]
    over = _over_quota(asked, limits)
    if over:
        raise PermanentError(
            f"{ctx.address}: asks for more than Quota/{name} allows: {'; '.join(over)}; "
            "lower spec.resources or spec.distributed.workers, or raise the Quota"
        )
    jobs = limits.get("concurrentJobs")
    return int(jobs) if jobs is not None else None


def _over_quota(asked: JobResources, limits: JSON) -> list[str]:
    total = asked.workers * asked.nodes
    over = []
    if limits.get("gpus") is not None and asked.gpus * total > int(limits["gpus"]):
        over.append(f"{asked.gpus * total} GPUs (limit {limits['gpus']})")
    if limits.get("cpu") is not None and asked.cpu * total > float(parse_cpu(limits["cpu"])):
        over.append(f"{asked.cpu * total:g} CPU cores (limit {limits['cpu']})")
    if limits.get("memory") is not None:
        allowed = parse_memory(limits["memory"]) / GIB
        if asked.memory_gib * total > allowed:
            over.append(f"{asked.memory_gib * total:g}Gi memory (limit {limits['memory']})")
    types = limits.get("gpuTypes")
    if types and asked.gpus and asked.gpu_type not in types:
        over.append(f"GPU type {asked.gpu_type or 'any'} (allowed: {', '.join(types)})")
    return over


def check_local_machine(ctx: ResourceContext, asked: JobResources) -> None:
    """The layout fits one machine, and the GPUs asked for are present."""
    if asked.nodes > 1:
        raise PermanentError(
            f"{ctx.address}: spec.distributed.nodes is {asked.nodes}, but the local provider "
            f"runs on this one machine; set nodes: 1 ({NOT_BUILT_NODES})"
        )
    wanted = asked.gpus * asked.workers
    if wanted:
        present = _gpus_present()
        if present < wanted:
            raise PermanentError(
                f"{ctx.address}: asks for {wanted} GPUs but this machine has {present}; "
                "set spec.resources.gpus: 0 to train on CPU, or apply on a machine with GPUs"
            )


def _gpus_present() -> int:
    directory = Path("/proc/driver/nvidia/gpus")
    if directory.is_dir():
        return sum(1 for _ in directory.iterdir())
    return sum(1 for p in Path("/dev").glob("nvidia[0-9]*"))


def _snake(value: Any) -> Any:
    """camelCase keys (as specs are written) to the trainer config's snake_case."""
    if isinstance(value, dict):
        return {re.sub(r"(?<!^)([A-Z])", r"_\1", k).lower(): _snake(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class RunPlace:
    """Where one run lives on disk and who it is."""

    run_id: str
    run_dir: Path

    @property
    def config_path(self) -> Path:
        return self.run_dir / "config.json"

    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir / "checkpoints"


def build_run_config(
    ctx: ResourceContext,
    document: JSON,
    fs: JSON,
    settings: LocalSettings,
    place: RunPlace,
    prior_counts: dict[str, int],
    image: str | None = None,
) -> RunConfig:
    """The trainer's config for one run of this job (no secret in it)."""
    from trainer import config as tc

    spec: JSON = document.get("spec") or {}
    asked = resources_of(spec, settings)
    checkpoint = spec.get("checkpoint") or {}
    every = checkpoint.get("every")
    remote = _remote_places(ctx, settings, place)
    return tc.RunConfig(
        run_id=place.run_id,
        inputs=_inputs(spec, fs, remote is not None),
        model=tc.ModelConfig(**(spec.get("model") or {})),
        hyperparameters=tc.Hyperparameters(**_snake(spec.get("hyperparameters") or {})),
        gates=[tc.Gate(**_snake(g)) for g in spec.get("gates") or []],
        evaluation=_evaluation(spec),
        checkpoint=tc.CheckpointConfig(
            dir=remote["checkpoints"] if remote else str(place.checkpoint_dir),
            every_seconds=parse_duration(every) if isinstance(every, str) else every,
            every_steps=checkpoint.get("everySteps"),
            keep=int(checkpoint.get("keep") or 3),
        ),
        output_dir=str(place.run_dir),
        registry=registry_target(spec, settings),
        metrics=_metrics(ctx, settings, prior_counts),
        distributed=tc.DistributedLayout(
            **{k: v for k, v in (spec.get("distributed") or {}).items() if k != "elastic"}
        ),
        device="cuda" if asked.gpus else "cpu",
        lineage=tc.Lineage(
            address=ctx.address,
            spec_hash=canonical_hash(document),
            git_commit=head_commit(
                ctx.root, mark_dirty=True
            ),  # never a clean commit for a dirty tree
            state_lineage=ctx.lineage,
            image=image,
        ),
        package_uri=remote["packages"] if remote else None,
        object_store=tc.ObjectStore(**remote["store"]) if remote else None,
    )


def _remote_places(ctx: ResourceContext, settings: LocalSettings, place: RunPlace) -> Any:
    """Where the run's checkpoints and package go in the artifacts bucket, and how to reach
    it; None without one (everything stays in the run directory)."""
    if not settings.has_artifacts_bucket:
        return None
    from providers.aws.artifacts import artifacts_for

    artifacts = artifacts_for(settings)
    assert artifacts is not None
    return {
        "checkpoints": artifacts.uri("checkpoints", ctx.name, place.run_id) + "/",
        "packages": artifacts.uri("packages") + "/",
        "store": artifacts.run_config_store(),
    }


def remote_environment(settings: LocalSettings) -> dict[str, str]:
    """The AWS credentials a run reading the artifacts bucket needs (secrets: scrubbed)."""
    if not settings.has_artifacts_bucket:
        return {}
    from providers.aws.artifacts import artifacts_for

    artifacts = artifacts_for(settings)
    assert artifacts is not None
    return artifacts.run_environment()


def _inputs(spec: JSON, fs: JSON, remote: bool) -> Any:
    from trainer import config as tc

    transform = fs.get("transform") or {}
    snapshot = fs.get("datasetSnapshot")
    return tc.Inputs(
        train=tc.Table(**_table(fs["train"], remote)),
        validation=tc.Table(**_table(fs["validation"], remote)),
        features=list(fs.get("features") or []),
        label=str(fs.get("label") or ""),
        entity=list(fs.get("entity") or []),
        segments=list(fs.get("segments") or []),
        featureset=f"FeatureSet/{spec.get('features')}@{fs['id']}",
        dataset_snapshots=[snapshot] if isinstance(snapshot, str) else [],
        transform_digest=str(transform.get("digest") or ""),
        transform_path=transform.get("uri")
        if remote and transform.get("uri")
        else transform.get("path"),
    )


def _evaluation(spec: JSON) -> Any:
    from trainer import config as tc

    written: JSON = spec.get("evaluation") or {}
    importance = written.get("importance")
    return tc.Evaluation(
        slices=list(written.get("slices") or []),
        fairness=list((written.get("fairness") or {}).get("sensitive") or []),
        calibration=bool(written.get("calibration")),
        calibration_bins=int(written.get("calibrationBins") or 10),
        importance=tc.Importance(**importance) if isinstance(importance, dict) else None,
    )


def _table(table: JSON, remote: bool) -> JSON:
    """A feature table for the trainer: its s3:// URI when stored in the artifacts bucket."""
    return {
        "path": str(table["uri"] if remote and table.get("uri") else table["path"]),
        "sha256": str(table["sha256"]).removeprefix("sha256:"),
        "rows": table.get("rows"),
    }


def registry_target(spec: JSON, settings: LocalSettings) -> Any:
    """Where the job registers its model (a trainer RegistryTarget), or None."""
    from trainer import config as tc

    register = spec.get("register")
    if not register:
        return None
    workspace_registry = settings.workspace.get("registry") or {}
    kind = workspace_registry.get("type") or "local"
    uri = (
        str(workspace_registry.get("trackingUri"))
        if kind == "mlflow"
        else str(settings.data_dir / "registry")
    )
    return tc.RegistryTarget(
        type=kind,
        uri=uri,
        model=register["model"],
        alias=register.get("alias"),
        # an approval or a promotion condition: the local provider moves the alias itself
        promote=(register.get("approval") or "auto") == "auto"
        and not (register.get("promoteWhen") or {}).get("sloNotBurning"),
        tags=dict(register.get("tags") or {}),
        champion=tc.ChampionGate(**register["championGate"])
        if register.get("championGate")
        else None,
    )


def _metrics(ctx: ResourceContext, settings: LocalSettings, prior_counts: dict[str, int]) -> Any:
    from trainer import config as tc

    url = settings.workspace.get("pushgatewayUrl")
    if not url:
        return None
    return tc.MetricsTarget(pushgateway_url=str(url), job=ctx.name, prior_counts=prior_counts)


def run_environment(
    ctx: ResourceContext,
    spec: JSON,
    settings: LocalSettings,
    upstream: Mapping[str, JSON],
    asked: JobResources,
) -> tuple[dict[str, str], list[str]]:
    """The run's environment, and the secret values in it (to scrub from any text shown)."""
    env = {k: v for k, v in os.environ.items() if k in INHERITED_ENV}
    env.update({k: v for k, v in os.environ.items() if k.startswith(INHERITED_PREFIXES)})
    threads = str(max(1, int(asked.cpu)))
    env.update(
        OMP_NUM_THREADS=threads,
        MKL_NUM_THREADS=threads,
        OPENBLAS_NUM_THREADS=threads,
        PYTHONUNBUFFERED="1",
    )
    if not asked.gpus:
        env["CUDA_VISIBLE_DEVICES"] = ""
    # the trainer package (wherever pipeform runs from), then the spec tree for custom models
    trainer_home = str(Path(__file__).resolve().parents[2])
    # absolute: the trainer runs in its run directory, not where pipeform was started
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (trainer_home, env.get("PYTHONPATH"), str(Path(ctx.root).resolve())) if p
    )
    secrets: list[str] = []
    secret_variables: list[str] = []
    for variable, source in (spec.get("env") or {}).items():
        if "secret" in source:
            value = _secret_value(ctx, str(source["secret"]), upstream, settings, variable)
            secrets.append(value)
            secret_variables.append(variable)
        else:
            value = str(source.get("value", ""))
        if "\0" in value:
            raise PermanentError(f"{ctx.address}: spec.env.{variable} holds a NUL character")
        env[variable] = value
    stored = remote_environment(settings)  # pyarrow's S3 filesystem reads these
    env.update(stored)
    for variable in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        if variable in stored:
            secrets.append(stored[variable])
            secret_variables.append(variable)
    env[REDACT_ENV] = ",".join(secret_variables)  # the relay keeps their values out of the log
    return env, secrets


def _secret_value(
    ctx: ResourceContext,
    name: str,
    upstream: Mapping[str, JSON],
    settings: LocalSettings,
    variable: str,
) -> str:
    from providers.local.secret_store import SecretStore

    store = SecretStore(settings)
    stored = (upstream.get(f"Secret/{name}") or {}).get("files")
    names = list(stored) if isinstance(stored, dict) and stored else [name]
    value = store.value(names[0])
    if value is None:
        raise PermanentError(
            f"{ctx.address}: spec.env.{variable} takes Secret/{name}, which has no value in the "
            f"local secret store; apply it first: pipeform apply --target Secret/{name}"
        )
    return os.fsdecode(value)


def redact(text: str, secrets: list[str]) -> str:
    """text with every secret value (longest first) replaced by a marker."""
    for value in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(value, "[redacted]")
    return text


def duration_text(seconds: float) -> str:
    return format_duration(float(round(seconds)))
