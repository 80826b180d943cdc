"""Slices, fairness, calibration, gates and permutation importance on the quickstart data.

A fixed scoring rule stands in for a model, so every figure the trainer reports can be
recomputed here independently, with numpy alone: AUC by counting ordered pairs, the
fairness metrics from the group rates, ECE bin by bin.
"""

from __future__ import annotations

import csv
from typing import Any

import numpy as np
import pytest
import torch

from tests.conftest import CopyExample
from trainer import evaluation
from trainer.config import Gate, Importance
from trainer.data import Split
from trainer.gates import check_gates


@pytest.fixture(scope="module")
def quickstart(copy_example: CopyExample) -> dict[str, np.ndarray]:
    """The quickstart's validation rows (years 4 and 5, as its FeatureSet splits them)."""
    path = copy_example() / "data" / "randhie.csv"
    with path.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if int(r["year"]) >= 4]
    columns = ("binexp", "logc", "female", "child", "mhi", "site", "xage")
    return {c: np.array([float(r[c]) for r in rows]) for c in columns}


def fixed_logits(data: dict[str, np.ndarray]) -> torch.Tensor:
    """A fixed model: a logistic score of a few columns."""
    score = 1.6 - 0.35 * data["logc"] + 0.6 * data["female"] - 0.5 * data["child"]
    score += 0.02 * (data["mhi"] - 70) + 0.01 * (data["xage"] - 25)
    return torch.from_numpy(score).float().reshape(-1, 1)


def text(values: np.ndarray) -> np.ndarray:
    return np.array([str(int(v)) for v in values], dtype=object)


def auc_by_pairs(y: np.ndarray, score: np.ndarray) -> float:
    positive, negative = score[y == 1], score[y == 0]
    greater = (positive[:, None] > negative[None, :]).mean()
    ties = (positive[:, None] == negative[None, :]).mean()
    return float(greater + 0.5 * ties)


def test_slice_metrics_match_numpy(quickstart: dict[str, np.ndarray]) -> None:
    logits, y = fixed_logits(quickstart), quickstart["binexp"]
    labels = torch.from_numpy(y).float()
    slices = evaluation.slice_metrics(
        "binary-classification", logits, labels, text(quickstart["site"])
    )
    probability = 1 / (1 + np.exp(-logits.numpy().reshape(-1).astype(np.float64)))
    assert {s["value"] for s in slices} == {"1", "2", "3", "4", "5", "6"}
    assert sum(s["rows"] for s in slices) == len(y)
    for found in slices:
        inside = quickstart["site"] == int(found["value"])
        assert found["rows"] == int(inside.sum())
        expected_auc = auc_by_pairs(y[inside], probability[inside])
        assert found["metrics"]["auc"] == pytest.approx(expected_auc, abs=1e-9)
        accuracy = np.mean((probability[inside] >= 0.5) == (y[inside] == 1))
        assert found["metrics"]["accuracy"] == pytest.approx(accuracy, abs=1e-12)


def test_fairness_metrics_match_numpy(quickstart: dict[str, np.ndarray]) -> None:
    logits, y = fixed_logits(quickstart), quickstart["binexp"]
    found = evaluation.fairness(logits, torch.from_numpy(y).float(), text(quickstart["female"]))
    predicted = (1 / (1 + np.exp(-logits.numpy().reshape(-1).astype(np.float64)))) >= 0.5
    selection, tpr = {}, {}
    for group in (0, 1):
        inside = quickstart["female"] == group
        selection[group] = predicted[inside].mean()
        tpr[group] = predicted[inside & (y == 1)].mean()
    metrics = found["metrics"]
    assert metrics["demographic-parity-difference"] == pytest.approx(
        abs(selection[1] - selection[0]), abs=1e-12
    )
    assert metrics["equal-opportunity-difference"] == pytest.approx(abs(tpr[1] - tpr[0]), abs=1e-12)
    assert metrics["disparate-impact-ratio"] == pytest.approx(
        min(selection.values()) / max(selection.values()), abs=1e-12
    )
    assert found["groups"]["1"]["rows"] == int(quickstart["female"].sum())
    assert found["groups"]["0"]["selection_rate"] == pytest.approx(selection[0], abs=1e-12)


def test_calibration_matches_numpy(quickstart: dict[str, np.ndarray]) -> None:
    logits, y = fixed_logits(quickstart), quickstart["binexp"]
    found = evaluation.calibration("binary-classification", logits, torch.from_numpy(y).float(), 10)
    p = 1 / (1 + np.exp(-logits.numpy().reshape(-1).astype(np.float64)))
    assert found["brier"] == pytest.approx(np.mean((p - y) ** 2), abs=1e-12)
    ece = 0.0
    for low in range(10):  # bins (low/10, (low+1)/10], the first one closed at 0
        inside = (p > low / 10) & (p <= (low + 1) / 10) if low else (p <= 0.1)
        if inside.any():
            ece += inside.mean() * abs(y[inside].mean() - p[inside].mean())
    assert found["ece"] == pytest.approx(ece, abs=1e-12)
    assert 0 < found["ece"] < 0.5


def _evaluated(quickstart: dict[str, np.ndarray]) -> dict[str, Any]:
    logits, labels = fixed_logits(quickstart), torch.from_numpy(quickstart["binexp"]).float()
    return {
        "slices": {
            "site": evaluation.slice_metrics(
                "binary-classification", logits, labels, text(quickstart["site"])
            )
        },
        "fairness": {"child": evaluation.fairness(logits, labels, text(quickstart["child"]))},
    }


def test_a_slice_gate_names_the_worst_failing_slice(quickstart: dict[str, np.ndarray]) -> None:
    evaluated = _evaluated(quickstart)
    by_site = {s["value"]: s["metrics"]["auc"] for s in evaluated["slices"]["site"]}
    worst = min(by_site, key=by_site.__getitem__)
    bar = sorted(by_site.values())[1]  # only the worst slice is below it
    [gate] = check_gates([Gate(metric="auc", min=bar, slice="site")], {}, evaluated)
    assert gate["passed"] is False
    assert gate["value"] == by_site[worst]
    assert gate["where"].startswith(f"slice site={worst} (")
    [passing] = check_gates([Gate(metric="auc", min=0.0, slice="site")], {}, evaluated)
    assert passing["passed"] is True
    [too_small] = check_gates(
        [Gate(metric="auc", min=0.0, slice="site", min_rows=100_000)], {}, evaluated
    )
    assert too_small["passed"] is False
    assert "no slice of site has at least 100000 rows" in too_small["where"]


def test_a_fairness_gate_names_both_groups(quickstart: dict[str, np.ndarray]) -> None:
    evaluated = _evaluated(quickstart)
    groups = evaluated["fairness"]["child"]["groups"]
    dpd = evaluated["fairness"]["child"]["metrics"]["demographic-parity-difference"]
    [gate] = check_gates(
        [Gate(metric="demographic-parity-difference", max=dpd / 2, sensitive="child")],
        {},
        evaluated,
    )
    assert gate["passed"] is False and gate["value"] == dpd
    low = min(groups, key=lambda g: groups[g]["selection_rate"])
    assert f"for child={low} ({groups[low]['rows']} rows)" in gate["where"]


def test_permutation_importance_is_seeded_and_finds_the_ignored_feature(
    quickstart: dict[str, np.ndarray],
) -> None:
    x = np.stack([quickstart["logc"], quickstart["female"], quickstart["mhi"]], axis=1)
    model = torch.nn.Linear(3, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[-0.35, 0.6, 0.0]]))  # mhi is ignored
        model.bias.fill_(1.6)
    split = Split(torch.from_numpy(x).float(), torch.from_numpy(quickstart["binexp"]).float())
    names = ["logc", "female", "mhi"]

    def run() -> dict[str, Any]:
        return evaluation.permutation_importance(
            model, split, "binary-classification", torch.device("cpu"), names, Importance(seed=7)
        )

    found = run()
    assert found == run()  # the same seed, the same figures
    by_name = {f["feature"]: f["mean"] for f in found["features"]}
    assert by_name["mhi"] == 0.0
    assert by_name["logc"] > 0.01 and by_name["female"] > 0.01
    assert found["metric"] == "auc" and found["repeats"] == 3
