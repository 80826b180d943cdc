"""The contract between the reconciler and the trainer: one versioned JSON config.

The local executor (providers/local/training.py) and the Kubernetes provider write a
``RunConfig`` as JSON and start ``python -m trainer run --config FILE``; nothing else
passes between them (secrets arrive as environment variables named in ``env``, never in
this file). A field is added without breaking old configs by giving it a default; a
change that old trainers cannot read bumps ``CONFIG_VERSION``.

Version 2 lets a location be an ``s3://bucket/key`` URI (input tables, the transform,
the checkpoint directory) and adds ``package_uri`` and ``object_store``: the trainer then
reads and writes them through pyarrow's S3 filesystem, with the region and endpoint from
``object_store`` and credentials from its environment (``AWS_ACCESS_KEY_ID``...), never
from this file. Version 1 configs (local paths only) are still read.

This module imports pydantic only, so the reconciler can build configs without torch.
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: 2 added evaluation, segment columns, per-slice and fairness gates and the champion
#: gate; 3 added s3:// locations (input tables, checkpoints, the package) and the object
#: store's settings; 4 added termination_message_path and the preemption exit 143; older
#: configs (none of these) are still read
CONFIG_VERSION: Final[Literal[4]] = 4
#: the versions this trainer reads
READS_VERSIONS: Final = (1, 2, 3, 4)
S3_SCHEME: Final = "s3://"
#: segment columns ride in the feature tables under this prefix (never a model input), so
#: that a segment may share its name with a feature
SEGMENT_PREFIX: Final = "segment."

#: Exit codes of ``python -m trainer run`` (the executor maps them to run states).
EXIT_OK = 0  # trained, gates passed (or none), registered when asked
EXIT_FAILED = 1  # an error: bad config, bad data, a crash
EXIT_BAD_INPUT = 3  # an input table is missing or its checksum does not match
EXIT_GATED = 4  # trained, a gate failed: nothing registered, no alias moved
EXIT_PREEMPTED = 143  # SIGTERM: a checkpoint was saved; run again to resume (version 4)
EXIT_PREEMPTED_BEFORE_V4 = 5  # the same, under a config of version 1 to 3
#: every code that means preempted, whatever the config's version
PREEMPTED_EXITS: Final = (EXIT_PREEMPTED, EXIT_PREEMPTED_BEFORE_V4)
#: exit codes that no retry can change (the Job's podFailurePolicy fails at once on them)
PERMANENT_EXITS: Final = (EXIT_BAD_INPUT, EXIT_GATED)
#: Kubernetes keeps at most this many bytes of a termination message
TERMINATION_MESSAGE_LIMIT: Final = 4096


def preempted_exit(version: int) -> int:
    """The exit code of a preempted trainer under a config of this version."""
    return EXIT_PREEMPTED if version >= 4 else EXIT_PREEMPTED_BEFORE_V4


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Table(_Model):
    path: str = Field(
        description="Absolute path of a parquet file, or (version 3) its s3://bucket/key."
    )
    sha256: str = Field(description="Hex sha256 of the file's bytes; checked before training.")
    rows: int | None = None


class Inputs(_Model):
    train: Table
    validation: Table
    features: list[str] = Field(description="Feature column names, in model input order.")
    label: str = Field(description="The label column.")
    entity: list[str] = Field(default_factory=list)
    segments: list[str] = Field(
        default_factory=list,
        description="Segment columns (table column SEGMENT_PREFIX + name), for slices and "
        "fairness; never fed to the model.",
    )
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
    #: per slice: the bound holds in every slice of this segment with at least min_rows rows
    slice: str | None = None
    min_rows: int = 100
    #: a fairness metric: over this sensitive segment
    sensitive: str | None = None


class Importance(_Model):
    repeats: int = 3
    seed: int = 42
    metric: str | None = None  # default: auc (binary), accuracy (multiclass), r2 (regression)


class Evaluation(_Model):
    """What the trainer computes on the validation split beyond the task's metrics."""

    slices: list[str] = Field(default_factory=list)  # segments to slice metrics by
    fairness: list[str] = Field(default_factory=list)  # sensitive segments (binary only)
    calibration: bool = False  # ece and brier (classification)
    calibration_bins: int = 10
    importance: Importance | None = None  # permutation importance


class ChampionGate(_Model):
    """Promote only when not worse than the alias's version by more than margin."""

    metric: str
    margin: float = 0.0


class CheckpointConfig(_Model):
    dir: str = Field(
        description="Where checkpoints go (shared by retries of the same run): a directory, "
        "or (version 3) an s3://bucket/prefix/ they are mirrored to from <output_dir>/checkpoints."
    )
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
    champion: ChampionGate | None = None


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


class ObjectStore(_Model):
    """How to reach s3:// locations (no credential: those come from the environment)."""

    region: str = "us-east-1"
    endpoint_url: str | None = Field(
        None, description="An S3-compatible endpoint (an emulator, MinIO); None: AWS."
    )


class RunConfig(_Model):
    version: Literal[1, 2, 3, 4] = CONFIG_VERSION
    run_id: str
    inputs: Inputs
    model: ModelConfig
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    gates: list[Gate] = Field(default_factory=list)
    evaluation: Evaluation = Field(default_factory=Evaluation)
    checkpoint: CheckpointConfig
    output_dir: str = Field(description="The run's directory: package, metrics.json, result.json.")
    registry: RegistryTarget | None = None
    metrics: MetricsTarget | None = None
    distributed: DistributedLayout = Field(default_factory=DistributedLayout)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    lineage: Lineage = Field(default_factory=Lineage)
    package_uri: str | None = Field(
        None,
        description="(version 3) s3://bucket/prefix/ under which the package is stored as "
        "sha256/<package digest>/, once built in output_dir.",
    )
    object_store: ObjectStore | None = Field(
        None, description="(version 3) region and endpoint of the s3:// locations."
    )
    termination_message_path: str | None = Field(
        None,
        description="(version 4) where rank 0 writes a compact JSON result (under 4 KiB) as "
        "it exits: a pod's terminationMessagePath (/dev/termination-log).",
    )

    def remote_locations(self) -> list[str]:
        """Every s3:// location the config names."""
        found = [
            self.inputs.train.path,
            self.inputs.validation.path,
            self.inputs.transform_path or "",
            self.checkpoint.dir,
            self.package_uri or "",
        ]
        return [place for place in found if place.startswith(S3_SCHEME)]

    @model_validator(mode="after")
    def _remote_needs_version_3(self) -> RunConfig:
        if self.version < 3 and (self.remote_locations() or self.package_uri):
            raise ValueError("s3:// locations need config version 3")
        if self.package_uri and not self.package_uri.startswith(S3_SCHEME):
            raise ValueError("package_uri must be an s3://bucket/prefix/ URI")
        if self.version < 4 and self.termination_message_path:
            raise ValueError("termination_message_path needs config version 4")
        return self


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
    package_uri: str | None = None  # s3:// copy of the package, when the config asks for one
    model_version: str | None = None  # registry version, when registered
    model_uri: str | None = None
    #: the alias moved to this version; False when the champion gate held it (see promotion)
    promoted: bool | None = None
    promotion: str | None = None  # why the alias moved or stayed, in words
    evaluation: dict[str, object] = Field(default_factory=dict)  # slices, fairness, importance
    model_card: str | None = None  # the card's JSON path in the package
    duration_seconds: float = 0.0
    samples_per_second: float | None = None
    first_step_seconds: float | None = None  # process start to the end of the first step
    error: str | None = None
