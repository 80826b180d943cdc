"""Gates: the bounds a model must meet on the validation split before it is registered.

Three forms, one result shape (``metric``, ``min``, ``max``, ``value``, ``passed`` and
``where``: what was measured, in words, naming the failing slice or group):

- a task or calibration metric over the whole split (``{metric: auc, min: 0.7}``);
- per slice (``{metric: auc, min: 0.7, slice: site, min_rows: 100}``): the bound holds in
  every slice of the segment with at least ``min_rows`` rows; the value is the worst
  slice's, and a segment with no slice that large fails (there is nothing to vouch for);
- fairness (``{metric: disparate-impact-ratio, min: 0.8, sensitive: female}``): a fairness
  metric over the sensitive segment.

A metric that was not computed fails its gate.
"""

from __future__ import annotations

from typing import Any

from trainer import metrics
from trainer.config import Gate


def _within(gate: Gate, value: float | None) -> bool:
    return (
        value is not None
        and (gate.min is None or value >= gate.min)
        and (gate.max is None or value <= gate.max)
    )


def _slice_gate(gate: Gate, evaluation: dict[str, Any]) -> tuple[float | None, bool, str]:
    name = str(gate.slice)
    slices = (evaluation.get("slices") or {}).get(name) or []
    large = [s for s in slices if s["rows"] >= gate.min_rows]
    if not large:
        return None, False, f"no slice of {name} has at least {gate.min_rows} rows"
    failing = [s for s in large if not _within(gate, s["metrics"].get(gate.metric))]
    better_high = metrics.mode_for(gate.metric) == "max"

    def badness(s: dict[str, Any]) -> float:
        value = s["metrics"].get(gate.metric)
        if value is None:
            return float("inf")
        return -float(value) if better_high else float(value)

    worst = max(failing or large, key=badness)
    value = worst["metrics"].get(gate.metric)
    shown = "missing" if value is None else f"{value:.4g}"
    where = f"slice {name}={worst['value']} ({worst['rows']} rows): {gate.metric} {shown}"
    if failing:
        others = [f"{name}={s['value']}" for s in failing if s is not worst]
        if others:
            where += f"; also failing: {', '.join(others)}"
    else:
        where = f"worst of {len(large)} slices of {name} with {gate.min_rows}+ rows: {where}"
    return value, not failing, where


def _fairness_gate(gate: Gate, evaluation: dict[str, Any]) -> tuple[float | None, bool, str]:
    name = str(gate.sensitive)
    found = (evaluation.get("fairness") or {}).get(name) or {}
    value = (found.get("metrics") or {}).get(gate.metric)
    groups: dict[str, dict[str, Any]] = found.get("groups") or {}
    rate = "true_positive_rate" if gate.metric.startswith("equal-opportunity") else "selection_rate"
    rated = {g: v[rate] for g, v in groups.items() if v.get(rate) is not None}
    where = f"over {name}"
    if rated:
        low, high = min(rated, key=rated.__getitem__), max(rated, key=rated.__getitem__)
        words = rate.replace("_", " ")
        where += (
            f": {words} {rated[low]:.3f} for {name}={low} ({groups[low]['rows']} rows) vs "
            f"{rated[high]:.3f} for {name}={high} ({groups[high]['rows']} rows)"
        )
    return value, _within(gate, value), where


def check_gates(
    gates: list[Gate], found: dict[str, float], evaluation: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Each gate with its value, whether it passed, and where it was measured."""
    evaluation = evaluation or {}
    checked = []
    for gate in gates:
        if gate.slice:
            value, passed, where = _slice_gate(gate, evaluation)
        elif gate.sensitive:
            value, passed, where = _fairness_gate(gate, evaluation)
        else:
            value = found.get(gate.metric)
            passed, where = _within(gate, value), "whole validation split"
        entry: dict[str, Any] = {
            "metric": gate.metric,
            "min": gate.min,
            "max": gate.max,
            "value": value,
            "passed": passed,
            "where": where,
        }
        if gate.slice:
            entry.update(slice=gate.slice, min_rows=gate.min_rows)
        if gate.sensitive:
            entry["sensitive"] = gate.sensitive
        checked.append(entry)
    return checked
