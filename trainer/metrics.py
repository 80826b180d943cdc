"""Validation metrics, in plain numpy (no sklearn), and which direction is better.

Binary: accuracy, precision, recall and F1 of the positive class (1) at probability 0.5,
ROC AUC (rank-based, tied scores share their average rank), log loss (probabilities
clipped to [1e-15, 1 - 1e-15]). Multiclass: accuracy, macro precision/recall/F1 (the mean
over the classes present in the labels or the predictions), log loss. Regression: RMSE,
MAE, R². Every task also reports ``loss``, the training loss on the validation split.
A metric that is undefined (AUC with one class present) is left out rather than NaN.
"""

from __future__ import annotations

import math

import numpy as np
import torch

#: metrics where larger is better; every other metric (loss, logloss, rmse, mae) is smaller-better
HIGHER_IS_BETTER = frozenset({"auc", "accuracy", "f1", "precision", "recall", "r2"})
METRICS_BY_TASK = {
    "binary-classification": ("loss", "accuracy", "precision", "recall", "f1", "auc", "logloss"),
    "multiclass-classification": ("loss", "accuracy", "precision", "recall", "f1", "logloss"),
    "regression": ("loss", "rmse", "mae", "r2"),
}
_EPS = 1e-15


def mode_for(metric: str) -> str:
    """``max`` for auc/accuracy/f1/precision/recall/r2, ``min`` for the rest."""
    return "max" if metric in HIGHER_IS_BETTER else "min"


def is_better(value: float, best: float | None, mode: str) -> bool:
    if best is None:
        return True
    return value > best if mode == "max" else value < best


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def _f1(precision: float, recall: float) -> float:
    return _ratio(2 * precision * recall, precision + recall)


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(y_true == y_pred))


def binary_precision_recall_f1(
    y_true: np.ndarray, y_pred: np.ndarray
) -> tuple[float, float, float]:
    """Of the positive class 1; a ratio with a zero denominator counts as 0."""
    true_pos = float(np.sum((y_pred == 1) & (y_true == 1)))
    precision = _ratio(true_pos, float(np.sum(y_pred == 1)))
    recall = _ratio(true_pos, float(np.sum(y_true == 1)))
    return precision, recall, _f1(precision, recall)


def macro_precision_recall_f1(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float, float]:
    """Unweighted means over the classes in y_true or y_pred."""
    classes = np.union1d(y_true, y_pred)
    scores = np.array([binary_precision_recall_f1(y_true == c, y_pred == c) for c in classes])
    return float(scores[:, 0].mean()), float(scores[:, 1].mean()), float(scores[:, 2].mean())


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks; tied values share the mean of the ranks they span."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts_group = np.r_[True, ordered[1:] != ordered[:-1]]
    starts = np.flatnonzero(starts_group)
    ends = np.r_[starts[1:], len(values)]
    group_rank = (starts + ends + 1) / 2.0  # mean of the 1-based ranks starts+1 .. ends
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = group_rank[np.cumsum(starts_group) - 1]
    return ranks


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney U / (positives x negatives); NaN when only one class is present."""
    positives = y_true == 1
    n_pos = int(positives.sum())
    n_neg = len(y_true) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = average_ranks(np.asarray(scores, dtype=np.float64))
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def binary_log_loss(y_true: np.ndarray, probability: np.ndarray) -> float:
    p = np.clip(probability.astype(np.float64), _EPS, 1 - _EPS)
    return float(-np.mean(y_true * np.log(p) + (1 - y_true) * np.log(1 - p)))


def multiclass_log_loss(y_true: np.ndarray, probabilities: np.ndarray) -> float:
    p = np.clip(probabilities.astype(np.float64), _EPS, 1 - _EPS)
    p = p / p.sum(axis=1, keepdims=True)
    return float(-np.mean(np.log(p[np.arange(len(y_true)), y_true])))


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.sqrt(np.mean((y_true - y_pred) ** 2)))


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(np.abs(y_true - y_pred)))


def r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """1 - SS_res / SS_tot; with constant labels: 1.0 for a perfect fit, else 0.0."""
    ss_res = float(np.sum((y_true - y_pred) ** 2))
    ss_tot = float(np.sum((y_true - np.mean(y_true)) ** 2))
    if ss_tot == 0.0:
        return 1.0 if ss_res == 0.0 else 0.0
    return 1.0 - ss_res / ss_tot


def task_loss(task: str, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The training loss: BCE with logits, cross-entropy, or mean squared error."""
    if task == "multiclass-classification":
        return torch.nn.functional.cross_entropy(outputs, labels)
    flat = outputs.reshape(outputs.shape[0])
    if task == "binary-classification":
        return torch.nn.functional.binary_cross_entropy_with_logits(flat, labels)
    return torch.nn.functional.mse_loss(flat, labels)


def compute_metrics(task: str, outputs: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Every metric of the task from raw model outputs (float32 logits or predictions)."""
    outputs, labels = outputs.float().cpu(), labels.cpu()
    found = {"loss": float(task_loss(task, outputs, labels).item())}
    y = labels.numpy()
    if task == "regression":
        predicted = outputs.reshape(-1).double().numpy()
        found.update(rmse=rmse(y, predicted), mae=mae(y, predicted), r2=r2(y, predicted))
    elif task == "binary-classification":
        probability = torch.sigmoid(outputs.reshape(-1).double()).numpy()
        truth = y.astype(np.int64)
        predicted_class = (probability >= 0.5).astype(np.int64)
        precision, recall, f1 = binary_precision_recall_f1(truth, predicted_class)
        found.update(
            accuracy=accuracy(truth, predicted_class),
            precision=precision,
            recall=recall,
            f1=f1,
            auc=roc_auc(truth, probability),
            logloss=binary_log_loss(truth, probability),
        )
    else:
        probabilities = torch.softmax(outputs.double(), dim=1).numpy()
        predicted_class = probabilities.argmax(axis=1)
        precision, recall, f1 = macro_precision_recall_f1(y, predicted_class)
        found.update(
            accuracy=accuracy(y, predicted_class),
            precision=precision,
            recall=recall,
            f1=f1,
            logloss=multiclass_log_loss(y, probabilities),
        )
    return {name: value for name, value in found.items() if math.isfinite(value)}
