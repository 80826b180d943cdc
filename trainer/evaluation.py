"""The evaluation a TrainingJob declares beyond the task's metrics, on the validation split.

- **slices**: every task metric within each value of a segment column (a column the
  FeatureSet carries beside the features and never feeds to the model);
- **calibration** (classification): expected calibration error (``ece``: equal-width bins of
  the predicted probability, binary on the probability of class 1, multiclass on the top
  class's) and the Brier score (``brier``: mean squared difference between the predicted
  probabilities and the one-hot truth, summed over classes for multiclass);
- **fairness** (binary): over a sensitive segment, with fairlearn's metrics on the 0.5
  threshold: demographic parity difference and ratio (the ratio is the disparate impact
  ratio of the four-fifths rule) and the equal opportunity difference (true-positive rates);
- **permutation importance**: how much the importance metric drops when one feature's
  validation column is shuffled (seeded), averaged over repeats.

fairlearn (with scikit-learn and pandas) is imported here only, and only when fairness is
asked for.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from trainer import metrics
from trainer.config import Evaluation, Importance
from trainer.data import Split
from trainer.errors import TrainerError

#: the fairness metrics a gate names, over a sensitive segment
FAIRNESS_METRICS = (
    "demographic-parity-difference",
    "equal-opportunity-difference",
    "disparate-impact-ratio",
)
CALIBRATION_METRICS = ("ece", "brier")
#: the metric permutation importance measures, by task
IMPORTANCE_METRIC = {
    "binary-classification": "auc",
    "multiclass-classification": "accuracy",
    "regression": "r2",
}


def prefetch(evaluation: Evaluation) -> None:
    """Start importing fairlearn (with scikit-learn, pandas, scipy: about 1.5 s) in a
    background thread when fairness is asked for, so that it overlaps training instead of
    adding to the run; the import in ``fairness`` waits for it if it is not done."""
    if not evaluation.fairness:
        return
    import contextlib
    import threading

    def load() -> None:
        # an error here is reported by the import in fairness(), where it stops the run
        with contextlib.suppress(Exception):
            import fairlearn.metrics  # type: ignore[import-untyped]  # noqa: F401

    threading.Thread(target=load, name="prefetch-fairlearn", daemon=True).start()


def probabilities(task: str, outputs: torch.Tensor) -> np.ndarray:
    """Binary: P(class 1) [N]; multiclass: [N, K]; regression: the predictions [N]."""
    if task == "binary-classification":
        return torch.sigmoid(outputs.reshape(-1).double()).cpu().numpy()
    if task == "multiclass-classification":
        return torch.softmax(outputs.double(), dim=1).cpu().numpy()
    return outputs.reshape(-1).double().cpu().numpy()


def slice_metrics(
    task: str, outputs: torch.Tensor, labels: torch.Tensor, segment: np.ndarray
) -> list[dict[str, Any]]:
    """Each value of the segment: its rows and every task metric within them, largest first."""
    found = []
    for value in sorted(set(segment.tolist())):
        rows = np.flatnonzero(segment == value)
        index = torch.from_numpy(rows)
        found.append(
            {
                "value": value,
                "rows": int(rows.size),
                "metrics": metrics.compute_metrics(task, outputs[index], labels[index]),
            }
        )
    found.sort(key=lambda s: (-s["rows"], str(s["value"])))
    return found


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int) -> float:
    """Sum over equal-width confidence bins of |accuracy - mean confidence| x the bin's share."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    # bin i holds (edges[i], edges[i + 1]]; 0 goes to the first bin
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            gap = abs(float(correct[inside].mean()) - float(confidence[inside].mean()))
            total += gap * float(inside.mean())
    return total


def calibration(
    task: str, outputs: torch.Tensor, labels: torch.Tensor, bins: int
) -> dict[str, float]:
    """ece and brier of a classifier's predicted probabilities."""
    y = labels.cpu().numpy().astype(np.int64)
    p = probabilities(task, outputs)
    if task == "binary-classification":
        return {
            "ece": expected_calibration_error(p, y.astype(np.float64), bins),
            "brier": float(np.mean((p - y) ** 2)),
        }
    onehot = np.eye(p.shape[1])[y]
    top = p.argmax(axis=1)
    return {
        "ece": expected_calibration_error(p.max(axis=1), (top == y).astype(np.float64), bins),
        "brier": float(np.mean(np.sum((p - onehot) ** 2, axis=1))),
    }


def _groups(y: np.ndarray, predicted: np.ndarray, segment: np.ndarray) -> dict[str, dict[str, Any]]:
    """Per group: rows, selection rate and true-positive rate (for the card and messages)."""
    groups = {}
    for value in sorted(set(segment.tolist())):
        inside = segment == value
        positives = inside & (y == 1)
        groups[value] = {
            "rows": int(inside.sum()),
            "selection_rate": float(predicted[inside].mean()),
            "true_positive_rate": float(predicted[positives].mean()) if positives.any() else None,
        }
    return groups


def fairness(outputs: torch.Tensor, labels: torch.Tensor, segment: np.ndarray) -> dict[str, Any]:
    """fairlearn's parity metrics of the 0.5-threshold predictions over one sensitive segment."""
    from fairlearn.metrics import (
        demographic_parity_difference,
        demographic_parity_ratio,
        equal_opportunity_difference,
    )

    y = labels.cpu().numpy().astype(np.int64)
    predicted = (probabilities("binary-classification", outputs) >= 0.5).astype(np.int64)
    sensitive = segment.astype(str)
    found = {
        "demographic-parity-difference": demographic_parity_difference(
            y, predicted, sensitive_features=sensitive
        ),
        "equal-opportunity-difference": equal_opportunity_difference(
            y, predicted, sensitive_features=sensitive
        ),
        "disparate-impact-ratio": demographic_parity_ratio(
            y, predicted, sensitive_features=sensitive
        ),
    }
    return {
        "metrics": {k: float(v) for k, v in found.items() if math.isfinite(float(v))},
        "groups": _groups(y, predicted, segment),
    }


def _metric(
    task: str, outputs: torch.Tensor, labels: np.ndarray, y: torch.Tensor, metric: str
) -> float:
    """One metric; AUC straight from the logits' ranks (the sigmoid keeps their order)."""
    if metric == "auc" and task == "binary-classification":
        return metrics.roc_auc(labels, outputs.reshape(-1).double().cpu().numpy())
    return metrics.compute_metrics(task, outputs, y).get(metric, math.nan)


def permutation_importance(
    model: nn.Module,
    split: Split,
    task: str,
    device: torch.device,
    features: list[str],
    importance: Importance,
) -> dict[str, Any]:
    """The metric's drop when each feature is shuffled, mean and std over seeded repeats.

    The repeats of one feature go through the model as one batch (rows x repeats)."""
    from trainer.loop import predict

    metric = importance.metric or IMPORTANCE_METRIC[task]
    labels = split.y.cpu().numpy()
    baseline = _metric(task, predict(model, split.x, device), labels, split.y, metric)
    if not math.isfinite(baseline):
        raise TrainerError(f"permutation importance: metric {metric!r} is undefined here")
    sign = 1.0 if metrics.mode_for(metric) == "max" else -1.0
    generator = np.random.default_rng(importance.seed)
    rows, repeats = split.rows, importance.repeats
    stacked = split.x.repeat(repeats, 1)
    found: list[dict[str, Any]] = []
    for column, name in enumerate(features):
        orders = [generator.permutation(rows) for _ in range(repeats)]
        shuffled = np.concatenate(orders)
        stacked[:, column] = split.x[:, column][torch.from_numpy(shuffled).to(split.x.device)]
        outputs = predict(model, stacked, device)
        drops = [
            sign
            * (
                baseline
                - _metric(task, outputs[r * rows : (r + 1) * rows], labels, split.y, metric)
            )
            for r in range(repeats)
        ]
        stacked[:, column] = split.x[:, column].repeat(repeats)
        found.append({"feature": name, "mean": float(np.mean(drops)), "std": float(np.std(drops))})
    found.sort(key=lambda f: -float(f["mean"]))
    return {
        "metric": metric,
        "baseline": baseline,
        "repeats": importance.repeats,
        "seed": importance.seed,
        "features": found,
    }


def evaluate_extra(
    evaluation: Evaluation,
    task: str,
    outputs: torch.Tensor,
    labels: torch.Tensor,
    segments: dict[str, np.ndarray],
) -> tuple[dict[str, float], dict[str, Any]]:
    """Flat metrics (ece, brier) for gates, and the slices and fairness results."""
    flat: dict[str, float] = {}
    found: dict[str, Any] = {}
    if evaluation.calibration and task != "regression":
        flat.update(calibration(task, outputs, labels, evaluation.calibration_bins))
        found["calibration"] = {"bins": evaluation.calibration_bins, **flat}
    if evaluation.slices:
        found["slices"] = {
            name: slice_metrics(task, outputs, labels, segments[name]) for name in evaluation.slices
        }
    if evaluation.fairness and task == "binary-classification":
        found["fairness"] = {
            name: fairness(outputs, labels, segments[name]) for name in evaluation.fairness
        }
    return flat, found
