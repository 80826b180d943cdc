"""The contract between the reconciler and the trainer: one versioned JSON config.

The local executor (providers/local/training.py) and the Kubernetes provider write a
``RunConfig`` as JSON and start ``python -m trainer run --config FILE``; nothing else
passes between them (secrets arrive as environment variables named in ``env``, never in
this file). A field is added without breaking old configs by giving it a default; a
change that old trainers cannot read bumps ``CONFIG_VERSION``.

This module imports pydantic only, so the reconciler can build configs without torch.
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

CONFIG_VERSION: Final[Literal[1]] = 1

#: Exit codes of ``python -m trainer run`` (the executor maps them to run states).
EXIT_OK = 0  # trained, gates passed (or none), registered when asked
EXIT_FAILED = 1  # an error: bad config, bad data, a crash
EXIT_BAD_INPUT = 3  # an input table is missing or its checksum does not match
EXIT_GATED = 4  # trained, a gate failed: nothing registered, no alias moved
EXIT_PREEMPTED = 5  # SIGTERM: a checkpoint was saved; run again to resume


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Table(_Model):
    path: str = Field(description="Absolute path of a parquet file.")
    sha256: str = Field(description="Hex sha256 of the file's bytes; checked before training.")
    rows: int | None = None


class Inputs(_Model):
    train: Table
    validation: Table
    features: list[str] = Field(description="Feature column names, in model input order.")
    label: str = Field(description="The label column.")
    entity: list[str] = Field(default_factory=list)
    # lineage carried into the package's metadata.json
    featureset: str = Field("", description="FeatureSet address and id, e.g. FeatureSet/x@<id>.")
    dataset_snapshots: list[str] = Field(default_factory=list)
    transform_digest: str = ""
    transform_path: str | None = Field(
        None, description="The fitted transform parameters (JSON), copied into the package."
    )


class ModelConfig(_Model):
    type: Literal["mlp", "linear", "resmlp", "custom"]
    task: Literal["binary-classification", "multiclass-classification", "regression"]
    hidden: list[int] = Field(default_factory=lambda: [64, 32])
    dropout: float = 0.0
    activation: Literal["relu", "gelu", "silu", "tanh"] = "relu"
    entrypoint: str | None = None  # module:function returning an nn.Module (type custom)
    num_classes: int | None = None  # multiclass: from the data when absent


class EarlyStopping(_Model):
    metric: str = "loss"
    patience: int = 5
    mode: Literal["min", "max"] | None = None


class Hyperparameters(_Model):
    epochs: int = 10
    batch_size: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    seed: int = 42
    scheduler: Literal["constant", "cosine", "onecycle"] = "cosine"
    warmup_steps: int = 0
    gradient_clip: float | None = 1.0
    early_stopping: EarlyStopping | None = None


class Gate(_Model):
    metric: str
    min: float | None = None
    max: float | None = None


class CheckpointConfig(_Model):
    dir: str = Field(description="Where checkpoints go (shared by retries of the same run).")
    every_seconds: float | None = None
    every_steps: int | None = None  # neither: at the end of every epoch
    keep: int = 3


class RegistryTarget(_Model):
    type: Literal["local", "mlflow"] = "local"
    uri: str = Field(description="local: the registry directory; mlflow: the tracking URI.")
    model: str = Field(description="Registered model name.")
    alias: str | None = None
    #: False: register the version but leave the alias where it is (the reconciler moves it
    #: later: after an approval, or once a promotion condition holds)
    promote: bool = True
    tags: dict[str, str] = Field(default_factory=dict)


class MetricsTarget(_Model):
    pushgateway_url: str | None = None
    job: str = Field(description="The TrainingJob's name; the pipeform_job label.")
    labels: dict[str, str] = Field(default_factory=dict)
    prior_counts: dict[str, int] = Field(
        default_factory=dict,
        description="Runs of this job so far by result (succeeded, failed, gated), so the "
        "pushed pipeform_training_runs_total counters stay cumulative.",
    )


class DistributedLayout(_Model):
    workers: int = 1
    nodes: int = 1
    backend: Literal["auto", "gloo", "nccl"] = "auto"


class Lineage(_Model):
    address: str = ""  # TrainingJob/name
    spec_hash: str = ""
    git_commit: str | None = None
    state_lineage: str = ""
    #: the container image the run ran in (name@sha256:digest), None for a local process
    image: str | None = None


class RunConfig(_Model):
    version: Literal[1] = CONFIG_VERSION
    run_id: str
    inputs: Inputs
    model: ModelConfig
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    gates: list[Gate] = Field(default_factory=list)
    checkpoint: CheckpointConfig
    output_dir: str = Field(description="The run's directory: package, metrics.json, result.json.")
    registry: RegistryTarget | None = None
    metrics: MetricsTarget | None = None
    distributed: DistributedLayout = Field(default_factory=DistributedLayout)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    lineage: Lineage = Field(default_factory=Lineage)


class RunResult(_Model):
    """What the trainer writes to ``<output_dir>/result.json`` as it exits (rank 0)."""

    run_id: str
    status: Literal["succeeded", "gated", "failed", "preempted"]
    metrics: dict[str, float] = Field(default_factory=dict)  # validation metrics
    gates: list[dict[str, object]] = Field(default_factory=list)  # each gate, value, passed
    epochs: int = 0
    steps: int = 0
    resumed_from: str | None = None  # checkpoint file, when resumed
    package_dir: str | None = None
    package_sha256: str | None = None
    model_version: str | None = None  # registry version, when registered
    model_uri: str | None = None
    duration_seconds: float = 0.0
    samples_per_second: float | None = None
    first_step_seconds: float | None = None  # process start to the end of the first step
    error: str | None = None
