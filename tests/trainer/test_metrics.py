"""Validation metrics against values worked out by hand, and the better-direction rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from trainer import metrics


def test_auc_counts_correctly_ordered_pairs() -> None:
    # positives 0.35, 0.8; negatives 0.1, 0.4: pairs won 0.35>0.1, 0.8>0.1, 0.8>0.4 -> 3/4
    auc = metrics.roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    assert auc == pytest.approx(0.75)


def test_auc_tied_scores_count_half() -> None:
    # positives 0.5, 0.9; negatives 0.5, 0.2: 0.5 vs 0.5 is a tie (1/2), the rest won -> 3.5/4
    auc = metrics.roc_auc(np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.2, 0.9]))
    assert auc == pytest.approx(0.875)


def test_auc_matches_brute_force_pair_counting_with_many_ties() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    scores = rng.integers(0, 10, 300).astype(float)  # lots of ties
    pos, neg = scores[y == 1], scores[y == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    assert metrics.roc_auc(y, scores) == pytest.approx(wins / (len(pos) * len(neg)))


def test_auc_with_one_class_is_undefined_and_left_out() -> None:
    assert math.isnan(metrics.roc_auc(np.array([1, 1]), np.array([0.2, 0.7])))
    found = metrics.compute_metrics(
        "binary-classification", torch.tensor([[0.3], [2.0]]), torch.tensor([1.0, 1.0])
    )
    assert "auc" not in found and found["accuracy"] == 1.0


def test_average_ranks_share_ties() -> None:
    assert metrics.average_ranks(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [3.5, 1.0, 3.5, 2.0]


def test_binary_precision_recall_f1_of_the_positive_class() -> None:
    # TP=2 (idx 0, 4), FP=1 (idx 3), FN=1 (idx 1)
    p, r, f1 = metrics.binary_precision_recall_f1(
        np.array([1, 1, 0, 0, 1]), np.array([1, 0, 0, 1, 1])
    )
    assert (p, r, f1) == pytest.approx((2 / 3, 2 / 3, 2 / 3))


def test_precision_without_predicted_positives_is_zero() -> None:
    assert metrics.binary_precision_recall_f1(np.array([1, 0]), np.array([0, 0])) == (0.0, 0.0, 0.0)


def test_macro_scores_average_the_classes() -> None:
    # class 0: P=R=F1=1; class 1: nothing right -> 0; class 2: P=1/2, R=1/2, F1=1/2
    p, r, f1 = metrics.macro_precision_recall_f1(np.array([0, 1, 2, 2]), np.array([0, 2, 2, 1]))
    assert (p, r, f1) == pytest.approx((0.5, 0.5, 0.5))


def test_log_loss_by_hand_and_clipped() -> None:
    expected = -(math.log(0.8) + math.log(0.7)) / 2
    assert metrics.binary_log_loss(np.array([1, 0]), np.array([0.8, 0.3])) == pytest.approx(
        expected
    )
    # a confident wrong answer costs -ln(1e-15), not infinity
    assert metrics.binary_log_loss(np.array([0]), np.array([1.0])) == pytest.approx(
        -math.log(1e-15), rel=1e-4
    )
    multi = metrics.multiclass_log_loss(
        np.array([0, 2]), np.array([[0.7, 0.2, 0.1], [0.1, 0.4, 0.5]])
    )
    assert multi == pytest.approx(-(math.log(0.7) + math.log(0.5)) / 2)


def test_regression_metrics_by_hand() -> None:
    y, pred = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.0, 3.0, 5.0])
    assert metrics.rmse(y, pred) == pytest.approx(0.5)  # sqrt(1/4)
    assert metrics.mae(y, pred) == pytest.approx(0.25)
    assert metrics.r2(y, pred) == pytest.approx(0.8)  # 1 - 1/5
    assert metrics.r2(np.array([2.0, 2.0]), np.array([2.0, 2.0])) == 1.0


def test_compute_metrics_from_logits_per_task() -> None:
    logits = torch.tensor([[2.0], [-1.0], [0.5], [-3.0]])  # p = .88, .27, .62, .05
    found = metrics.compute_metrics("binary-classification", logits, torch.tensor([1.0, 0, 0, 0]))
    assert set(found) == set(metrics.METRICS_BY_TASK["binary-classification"])
    assert found["accuracy"] == 0.75 and found["precision"] == 0.5 and found["recall"] == 1.0
    assert found["auc"] == 1.0
    assert found["loss"] == pytest.approx(found["logloss"], rel=1e-5)

    multi = metrics.compute_metrics(
        "multiclass-classification",
        torch.tensor([[3.0, 0, 0], [0, 3.0, 0], [0, 0, 3.0]]),
        torch.tensor([0, 1, 1]),
    )
    assert set(multi) == set(metrics.METRICS_BY_TASK["multiclass-classification"])
    assert multi["accuracy"] == pytest.approx(2 / 3)

    regression = metrics.compute_metrics(
        "regression", torch.tensor([[1.0], [2.0], [3.0], [5.0]]), torch.tensor([1.0, 2, 3, 4])
    )
    assert regression["r2"] == pytest.approx(0.8) and regression["loss"] == pytest.approx(0.25)


def test_direction_of_each_metric() -> None:
    for name in ("auc", "accuracy", "f1", "precision", "recall", "r2"):
        assert metrics.mode_for(name) == "max"
    for name in ("loss", "logloss", "rmse", "mae"):
        assert metrics.mode_for(name) == "min"
    assert metrics.is_better(0.9, 0.8, "max") and metrics.is_better(0.1, 0.2, "min")
    assert not metrics.is_better(0.8, 0.8, "max")
