"""The TrainingJob kind: features in, a trained and registered model version out."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from reconciler.kinds.common import (
    DNS_LABEL,
    ENV_NAME,
    Document,
    FieldError,
    Name,
    ResourceSpec,
    SpecModel,
    empty_list,
    keyed_union,
    omitted_when,
)
from reconciler.kinds.evaluation import (
    ChampionGate,
    Evaluation,
    check_evaluation,
    check_gate,
    metrics_computed,
)
from reconciler.kinds.reference import Reference
from reconciler.kinds.units import CpuQuantity, Duration, MemoryQuantity


class Task(StrEnum):
    BINARY = "binary-classification"
    MULTICLASS = "multiclass-classification"
    REGRESSION = "regression"


CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "auc", "logloss")
REGRESSION_METRICS = ("rmse", "mae", "r2")
METRICS_BY_TASK = {
    Task.BINARY: (*CLASSIFICATION_METRICS, "loss"),
    Task.MULTICLASS: ("accuracy", "precision", "recall", "f1", "logloss", "loss"),
    Task.REGRESSION: (*REGRESSION_METRICS, "loss"),
}


class ModelSpec(SpecModel):
    type: Literal["mlp", "linear", "resmlp", "custom"] = Field(
        description="mlp, linear (logistic for classification), resmlp (residual MLP) or custom. Required."
    )
    task: Task = Field(
        description="binary-classification, multiclass-classification or regression. Required."
    )
    hidden: list[Annotated[int, Field(ge=1, le=65536)]] = Field(
        default_factory=lambda: [64, 32],
        description="Hidden layer widths (mlp, resmlp). Default: [64, 32].",
    )
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout probability. Default: 0.")
    activation: Literal["relu", "gelu", "silu", "tanh"] = Field(
        "relu", description="Activation. Default: relu."
    )
    entrypoint: str | None = Field(
        None,
        description="For type custom: module:function returning a torch.nn.Module. Default: none.",
    )

    @model_validator(mode="after")
    def _entrypoint(self) -> ModelSpec:
        if self.type == "custom":
            if not self.entrypoint or not re.fullmatch(r"[\w.]+:\w+", self.entrypoint):
                raise ValueError("type custom needs entrypoint: package.module:function")
        elif self.entrypoint:
            raise ValueError(f"entrypoint is only for type custom, not {self.type}")
        return self


class EarlyStopping(SpecModel):
    metric: str = Field("loss", description="Validation metric watched. Default: loss.")
    patience: int = Field(
        5, ge=1, description="Epochs without improvement before stopping. Default: 5."
    )
    mode: Literal["min", "max"] | None = Field(
        None,
        description="min or max. Default: max for auc/accuracy/f1/precision/recall/r2, min otherwise.",
    )


class Hyperparameters(SpecModel):
    epochs: int = Field(
        10, ge=1, le=100_000, description="Passes over the training split. Default: 10."
    )
    batch_size: int = Field(
        256, ge=1, le=1_048_576, description="Examples per step (per worker). Default: 256."
    )
    learning_rate: float = Field(
        1e-3, gt=0, le=10, description="AdamW learning rate. Default: 0.001."
    )
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay. Default: 0.01.")
    seed: int = Field(
        42,
        ge=0,
        description="Random seed; the same config gives the same weights on CPU. Default: 42.",
    )
    scheduler: Literal["constant", "cosine", "onecycle"] = Field(
        "cosine", description="Learning-rate schedule. Default: cosine."
    )
    warmup_steps: int = Field(0, ge=0, description="Linear warm-up steps. Default: 0.")
    gradient_clip: float | None = Field(
        1.0, gt=0, description="Clip gradient norm to this value. Default: 1.0."
    )
    early_stopping: EarlyStopping | None = Field(
        None, description="Stop when a validation metric stops improving. Default: off."
    )


class Resources(SpecModel):
    cpu: CpuQuantity | None = Field(
        None,
        description="CPU cores (2) or millicores (500m). Default: the Workspace's defaults.resources.cpu, else 1.",
    )
    memory: MemoryQuantity | None = Field(
        None,
        description="Memory such as 4Gi. Default: the Workspace's defaults.resources.memory, else 2Gi.",
    )
    gpus: int = Field(0, ge=0, le=1024, description="GPUs per worker. Default: 0.")
    gpu_type: str | None = Field(
        None,
        pattern=DNS_LABEL,
        description="GPU model, such as h100 or a100; used for scheduling and pricing. Default: any.",
    )

    @model_validator(mode="after")
    def _gpu_type(self) -> Resources:
        if self.gpu_type and not self.gpus:
            raise ValueError(f"gpuType {self.gpu_type!r} is set but gpus is 0; set gpus: 1 or more")
        return self


class Elastic(SpecModel):
    min_nodes: int = Field(
        1, ge=1, le=1024, description="Fewest nodes the run goes on with. Default: 1."
    )
    max_nodes: int | None = Field(
        None, ge=1, le=1024, description="Most nodes it may grow to. Default: nodes."
    )
    max_restarts: int | None = Field(
        None, ge=0, description="Restarts of the rendezvous (torchrun). Default: torchrun's."
    )


class Distributed(SpecModel):
    workers: int = Field(
        1, ge=1, le=1024, description="Processes per node (torchrun --nproc-per-node). Default: 1."
    )
    nodes: int = Field(
        1,
        ge=1,
        le=1024,
        description="Machines to train across; the local provider trains on one, the "
        "kubernetes provider runs several as a PyTorchJob. Default: 1.",
    )
    backend: Literal["auto", "gloo", "nccl"] = Field(
        "auto", description="auto picks nccl with GPUs, gloo without. Default: auto."
    )
    elastic: Elastic | None = Field(
        None,
        description="Elastic training across nodes (the kubernetes provider's PyTorchJob "
        "elasticPolicy, c10d rendezvous). Default: a fixed number of nodes.",
        exclude_if=omitted_when(None),
    )


class Checkpoint(SpecModel):
    every: Duration | None = Field(
        None, description="Save on this schedule, such as 10m. Default: at the end of every epoch."
    )
    every_steps: int | None = Field(
        None, ge=1, description="Save every N steps. Default: not by steps."
    )
    keep: int = Field(3, ge=1, description="Newest checkpoints kept. Default: 3.")


class Gate(SpecModel):
    metric: str = Field(description="A validation metric, such as auc or rmse. Required.")
    min: float | None = Field(
        None, description="The metric must be at least this. Default: no bound."
    )
    max: float | None = Field(
        None, description="The metric must be at most this. Default: no bound."
    )
    slice: str | None = Field(
        None,
        description="Per slice: the bound must hold in every slice of this segment (listed "
        "in spec.evaluation.slices) with at least minRows rows. Default: the whole split.",
        exclude_if=omitted_when(None),
    )
    min_rows: int = Field(
        100,
        ge=1,
        description="Slices smaller than this are not gated. Default: 100.",
        exclude_if=omitted_when(100),
    )
    sensitive: str | None = Field(
        None,
        description="For a fairness metric (demographic-parity-difference, "
        "equal-opportunity-difference, disparate-impact-ratio): the sensitive segment, "
        "listed in spec.evaluation.fairness.sensitive. Default: none.",
        exclude_if=omitted_when(None),
    )

    @model_validator(mode="after")
    def _bound(self) -> Gate:
        if self.min is None and self.max is None:
            raise ValueError(f"gate on {self.metric!r} needs min or max")
        return self


class PromoteWhen(SpecModel):
    slo_not_burning: Name | None = Field(
        None,
        description="An SLO in the tree: while one of its burn-rate alerts fires (read from "
        "the Workspace's providers.prometheus.url), the alias stays where it is; a later "
        "apply moves it once the alert resolves. Default: none.",
    )


class Register(SpecModel):
    model: Name = Field(description="Registered model name. Required.")
    alias: str | None = Field(
        None,
        pattern=DNS_LABEL,
        description="Alias moved to the new version when every gate passes, such as champion. Default: none.",
    )
    tags: dict[str, str] = Field(
        default_factory=dict, description="Tags on the model version. Default: none."
    )
    approval: Literal["auto", "required"] = Field(
        "auto",
        description="required: the version is registered, but the alias moves only when "
        "someone runs pipeform approve MODEL@VERSION; auto moves it after the gates. "
        "Default: auto.",
        exclude_if=omitted_when("auto"),
    )
    promote_when: PromoteWhen = Field(
        default_factory=PromoteWhen,
        description="Conditions that hold a promotion (the alias move) back. Default: none.",
        exclude_if=omitted_when(PromoteWhen),
    )
    champion_gate: ChampionGate | None = Field(
        None,
        description="Move the alias only when the new model is not worse than the version "
        "the alias names now by more than margin, both scored on the new validation split; "
        "a worse model is registered as a version but not promoted. Default: none.",
        exclude_if=omitted_when(None),
    )

    @model_validator(mode="after")
    def _champion_needs_alias(self) -> Register:
        if self.champion_gate is not None and not self.alias:
            raise FieldError("championGate compares with the alias's version; set alias", "alias")
        return self


class RetrainOnDrift(SpecModel):
    on: Literal["drift"] = Field(description="drift selects this form. Required.")
    max_psi: float = Field(
        0.2,
        gt=0,
        description="Retrain when the largest per-column PSI of the new snapshot against the "
        "snapshot the current model was trained on exceeds this. Default: 0.2.",
    )
    max_age: Duration | None = Field(
        None, description="Retrain when the current model is older than this. Default: no limit."
    )


class SecretRef(SpecModel):
    secret: Name = Field(
        description="The Secret document whose value this variable takes. Required."
    )


class PlainValue(SpecModel):
    value: str = Field(description="A plain, non-secret value. Required.")


if TYPE_CHECKING:
    EnvValue = SecretRef | PlainValue
else:
    EnvValue = keyed_union(("secret", SecretRef), ("value", PlainValue))

_SECRET_LIKE = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)


class TrainingJobSpec(ResourceSpec):
    PLAIN_METHODS: ClassVar[tuple[str, ...]] = (
        "plain_secret_like_env",
        "promotion_slo",
        "segment_uses",
    )

    features: Name = Field(description="The FeatureSet trained on. Required.")
    model: ModelSpec = Field(description="The model architecture and task. Required.")
    hyperparameters: Hyperparameters = Field(
        default_factory=Hyperparameters,
        description="Optimisation settings. Default: every hyperparameter's own default.",
    )
    resources: Resources = Field(
        default_factory=Resources,
        description="CPU, memory and GPUs per worker. Default: the Workspace's defaults.",
    )
    distributed: Distributed = Field(
        default_factory=Distributed, description="Data-parallel layout. Default: one process."
    )
    checkpoint: Checkpoint = Field(
        default_factory=Checkpoint, description="Checkpoint schedule. Default: every epoch, keep 3."
    )
    max_duration: Duration = Field(
        default=21600.0,
        description="The run is stopped and recorded as timed out after this. Default: 6h.",
    )
    retries: int = Field(
        2,
        ge=0,
        le=20,
        description="Retries of a failed or preempted run, resuming from the newest checkpoint. Default: 2.",
    )
    retrain: Literal["onInputChange", "never", "always"] | RetrainOnDrift = Field(
        "onInputChange",
        description="onInputChange retrains when the spec, the features or the trainer code changed; "
        "never trains once; always trains on every apply; {on: drift, maxPsi: 0.2, maxAge: 7d} "
        "re-snapshots and re-materialises on changed inputs but retrains only when the data "
        "drifted from the model's training snapshot or the model is too old. "
        "Default: onInputChange.",
    )
    evaluation: Evaluation = Field(
        default_factory=Evaluation,
        description="What the trainer computes on the validation split beyond the task's "
        "metrics: slices, fairness, calibration, permutation importance. Default: none of them.",
        exclude_if=omitted_when(Evaluation),
    )
    gates: list[Gate] = Field(
        default_factory=empty_list,
        description="Validation-metric bounds a model must meet to be registered: over the "
        "whole split, in every slice of a segment, or a fairness metric over a sensitive "
        "segment. Default: none.",
    )
    registration: Register | None = Field(
        None,
        alias="register",
        description="Where the model version is registered. Default: not registered.",
    )
    env: dict[
        Annotated[str, Field(pattern=ENV_NAME)],
        EnvValue,
    ] = Field(
        default_factory=dict,
        description="Environment variables for the run: {secret: name} takes a Secret's value "
        "(never written in the spec), {value: text} a plain value. Default: none.",
    )
    quota: Name | None = Field(
        None, description="The Quota this job counts against. Default: none."
    )
    image: str | None = Field(
        None,
        description="Trainer image for container platforms (no provider runs one yet; the local "
        "provider warns and runs the bundled trainer). Default: the bundled trainer image.",
    )

    @model_validator(mode="after")
    def _metrics_fit_task(self) -> TrainingJobSpec:
        task = str(self.model.task)
        check_evaluation(task, self.evaluation)
        for i, gate in enumerate(self.gates):
            check_gate(task, self.evaluation, gate, i)
        champion = self.registration.champion_gate if self.registration else None
        if champion is not None and champion.metric not in metrics_computed(task, self.evaluation):
            raise FieldError(
                f"championGate metric {champion.metric!r} is not computed for {task}; use one "
                f"of {', '.join(metrics_computed(task, self.evaluation))}",
                "register",
                "championGate",
                "metric",
            )
        return self

    def references(self) -> list[Reference]:
        refs = [Reference("FeatureSet", self.features, ("features",))]
        if self.quota:
            refs.append(Reference("Quota", self.quota, ("quota",)))
        for var, source in self.env.items():
            if isinstance(source, SecretRef):
                refs.append(Reference("Secret", source.secret, ("env", var, "secret")))
        return refs

    def promotion_slo(self) -> str | None:
        """The SLO whose burning holds a promotion (register.promoteWhen.sloNotBurning)."""
        return self.registration.promote_when.slo_not_burning if self.registration else None

    def segment_uses(self) -> list[tuple[str, tuple[str | int, ...]]]:
        """The FeatureSet segments the evaluation reads, with where (under spec)."""
        return self.evaluation.segment_uses()

    def plain_secret_like_env(self) -> list[str]:
        """Variables whose names look secret but whose values are written in the spec."""
        return [
            v for v, s in self.env.items() if isinstance(s, PlainValue) and _SECRET_LIKE.search(v)
        ]


class TrainingJob(Document):
    KIND = "TrainingJob"
    KEEP_VIEW = True
    kind: Literal["TrainingJob"] = Field(description="TrainingJob. Required.")
    spec: TrainingJobSpec = Field(
        description="What to train, on what, with which resources. Required."
    )
