"""A TrainingJob's evaluation beyond its task metrics, and the gates that may read it.

``spec.evaluation`` declares what the bundled trainer computes on the validation split:
metrics per slice of segment columns, fairness over sensitive segments, calibration and
permutation importance. Segments are columns the FeatureSet carries beside its features
(``FeatureSet.spec.segments``); the whole-tree check (``reconciler.graph``) refuses one the
FeatureSet does not carry. ``check_gates`` refuses a gate on something not computed.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from reconciler.kinds.common import FieldError, SpecModel, empty_list

FAIRNESS_METRICS = (
    "demographic-parity-difference",
    "equal-opportunity-difference",
    "disparate-impact-ratio",
)
CALIBRATION_METRICS = ("ece", "brier")
BINARY = "binary-classification"
REGRESSION = "regression"


class Fairness(SpecModel):
    sensitive: list[str] = Field(
        min_length=1,
        description="Sensitive segment columns of the FeatureSet; fairlearn's demographic "
        "parity difference, equal opportunity difference and disparate impact ratio are "
        "computed over each (binary-classification only). Required.",
    )


class Importance(SpecModel):
    repeats: int = Field(3, ge=1, le=100, description="Shuffles per feature. Default: 3.")
    seed: int = Field(42, ge=0, description="Seed of the shuffles. Default: 42.")
    metric: str | None = Field(
        None,
        description="The metric whose drop is measured. Default: auc (binary), accuracy "
        "(multiclass), r2 (regression).",
    )


def _also_boolean(schema: dict[str, Any]) -> None:
    """The JSON Schema of a field that also takes true/false as a shorthand."""
    schema.setdefault("anyOf", []).append({"type": "boolean"})


class Evaluation(SpecModel):
    slices: list[str] = Field(
        default_factory=empty_list,
        description="Segment columns of the FeatureSet to report every metric by, one "
        "slice per value. Default: none.",
    )
    fairness: Fairness | None = Field(
        None, description="Fairness metrics over sensitive segments. Default: none."
    )
    calibration: bool = Field(
        False,
        description="Compute ece (expected calibration error) and brier (Brier score) for "
        "a classifier, as metrics a gate can use. Default: false.",
    )
    calibration_bins: int = Field(
        10, ge=2, le=1000, description="Equal-width probability bins of ece. Default: 10."
    )
    importance: Importance | None = Field(
        None,
        description="Permutation feature importance on the validation split, recorded with "
        "the run and in the model card; true for the defaults. Default: none.",
        json_schema_extra=_also_boolean,
    )

    @field_validator("importance", mode="before")
    @classmethod
    def _importance_shorthand(cls, value: Any) -> Any:
        if value is True:
            return {}
        return None if value is False else value

    def segment_uses(self) -> list[tuple[str, tuple[str | int, ...]]]:
        """Each segment column named, with where (under spec)."""
        uses: list[tuple[str, tuple[str | int, ...]]] = [
            (name, ("evaluation", "slices", i)) for i, name in enumerate(self.slices)
        ]
        if self.fairness is not None:
            uses += [
                (name, ("evaluation", "fairness", "sensitive", i))
                for i, name in enumerate(self.fairness.sensitive)
            ]
        return uses


class ChampionGate(SpecModel):
    metric: str = Field(description="The validation metric compared, such as auc. Required.")
    margin: float = Field(
        0.0,
        ge=0,
        description="How much worse than the alias's current version the new model may be "
        "and still be promoted. Default: 0 (not worse).",
    )


def metrics_computed(task: str, evaluation: Evaluation) -> tuple[str, ...]:
    """The whole-split metrics a gate can name for this task and evaluation."""
    from reconciler.kinds.training import METRICS_BY_TASK, Task

    found = METRICS_BY_TASK[Task(task)]
    if evaluation.calibration and task != REGRESSION:
        found = (*found, *CALIBRATION_METRICS)
    return found


def check_evaluation(task: str, evaluation: Evaluation) -> None:
    """What the task cannot compute: fairness beyond binary, calibration of a regression."""
    if evaluation.fairness is not None and task != BINARY:
        raise FieldError(
            f"fairness metrics need a binary-classification model, not {task}",
            "evaluation",
            "fairness",
        )
    if evaluation.calibration and task == REGRESSION:
        raise FieldError(
            "calibration (ece, brier) is for classifiers; remove it for a regression",
            "evaluation",
            "calibration",
        )
    metric = evaluation.importance.metric if evaluation.importance else None
    if metric is not None and metric not in metrics_computed(task, evaluation):
        raise FieldError(
            f"importance metric {metric!r} is not computed for {task}; use one of "
            f"{', '.join(metrics_computed(task, evaluation))}",
            "evaluation",
            "importance",
            "metric",
        )


def check_gate(task: str, evaluation: Evaluation, gate: Any, i: int) -> None:
    """One gate names something the evaluation computes; else the error points at it."""
    sensitive = evaluation.fairness.sensitive if evaluation.fairness else []
    if gate.metric in FAIRNESS_METRICS:
        if task != BINARY:
            raise FieldError(
                f"gate metric {gate.metric!r} needs a binary-classification model",
                "gates",
                i,
                "metric",
            )
        if gate.sensitive is None:
            raise FieldError(
                f"gate on {gate.metric!r} needs sensitive: the segment it is computed over",
                "gates",
                i,
                "metric",
            )
        if gate.sensitive not in sensitive:
            raise FieldError(
                f"gate on {gate.metric!r} over {gate.sensitive!r} is not computed: add "
                f"{gate.sensitive!r} to spec.evaluation.fairness.sensitive",
                "gates",
                i,
                "sensitive",
            )
        return
    if gate.sensitive is not None:
        raise FieldError(
            f"sensitive is for the fairness metrics ({', '.join(FAIRNESS_METRICS)}), not "
            f"{gate.metric!r}",
            "gates",
            i,
            "sensitive",
        )
    computed = metrics_computed(task, evaluation)
    if gate.metric in CALIBRATION_METRICS and task != REGRESSION and not evaluation.calibration:
        raise FieldError(
            f"gate metric {gate.metric!r} is not computed: set spec.evaluation.calibration: "
            "true to compute it",
            "gates",
            i,
            "metric",
        )
    if gate.metric not in computed:
        others = (*computed, *FAIRNESS_METRICS) if task == BINARY else computed
        raise FieldError(
            f"gate metric {gate.metric!r} does not exist for {task}; use one of "
            f"{', '.join(others)}",
            "gates",
            i,
            "metric",
        )
    if gate.slice is not None and gate.slice not in evaluation.slices:
        raise FieldError(
            f"gate per slice of {gate.slice!r} is not computed: add {gate.slice!r} to "
            "spec.evaluation.slices",
            "gates",
            i,
            "slice",
        )
