"""The model card: every evaluation result of a run, as JSON and as Markdown.

``model_card.json`` and ``model_card.md`` go into the package (so the registry keeps them
with the version: the local registry's artifact directory, MLflow's ``package/``
artifacts) and the JSON into the registered lineage under ``model_card``. The card holds
what was trained on (FeatureSet, dataset snapshots, the tables' sha256), from which spec
(address, spec hash, git commit), the validation metrics, every gate that applied with its
value and where it was measured, slices, fairness, calibration, permutation importance,
and the promotion decision with the champion comparison.
"""

from __future__ import annotations

from typing import Any

from trainer.config import RunConfig

CARD_JSON = "model_card.json"
CARD_MARKDOWN = "model_card.md"
CARD_VERSION = 1


def build(
    config: RunConfig,
    found: dict[str, float],
    gates: list[dict[str, Any]],
    evaluation: dict[str, Any],
    promotion: dict[str, Any] | None,
    training: dict[str, Any],
) -> dict[str, Any]:
    inputs, lineage = config.inputs, config.lineage
    target = config.registry
    return {
        "card_version": CARD_VERSION,
        "run_id": config.run_id,
        "model": None if target is None else {"name": target.model, "alias": target.alias},
        "task": config.model.task,
        "architecture": config.model.model_dump(mode="json"),
        "data": {
            "featureset": inputs.featureset,
            "dataset_snapshots": list(inputs.dataset_snapshots),
            "train_sha256": inputs.train.sha256,
            "validation_sha256": inputs.validation.sha256,
            "train_rows": inputs.train.rows,
            "validation_rows": inputs.validation.rows,
            "features": list(inputs.features),
            "label": inputs.label,
        },
        "spec": {
            "address": lineage.address,
            "spec_hash": lineage.spec_hash,
            "git_commit": lineage.git_commit,
        },
        "training": {k: training.get(k) for k in ("epochs", "steps", "best_epoch")},
        "metrics": found,
        "gates": gates,
        "passed": all(g["passed"] for g in gates),
        "evaluation": evaluation,
        "promotion": promotion,
    }


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "—"


def _gate_lines(gates: list[dict[str, Any]]) -> list[str]:
    if not gates:
        return ["No gates applied."]
    lines = ["| gate | value | passed | where |", "|---|---|---|---|"]
    for gate in gates:
        bounds = " ".join(
            f"{word} {gate[key]:g}"
            for word, key in (("≥", "min"), ("≤", "max"))
            if gate[key] is not None
        )
        scope = f" in every slice of {gate['slice']}" if gate.get("slice") else ""
        scope += f" over {gate['sensitive']}" if gate.get("sensitive") else ""
        lines.append(
            f"| {gate['metric']} {bounds}{scope} | {_number(gate['value'])} | "
            f"{'yes' if gate['passed'] else '**no**'} | {gate.get('where', '')} |"
        )
    return lines


def _slice_lines(slices: dict[str, list[dict[str, Any]]], task_metrics: list[str]) -> list[str]:
    lines: list[str] = []
    for name, found in slices.items():
        lines += ["", f"### Slices by {name}", ""]
        lines.append("| " + " | ".join([name, "rows", *task_metrics]) + " |")
        lines.append("|" + "---|" * (2 + len(task_metrics)))
        for s in found:
            values = [_number(s["metrics"].get(m)) for m in task_metrics]
            lines.append("| " + " | ".join([str(s["value"]), str(s["rows"]), *values]) + " |")
    return lines


def _fairness_lines(fairness: dict[str, dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    for name, found in fairness.items():
        lines += ["", f"### Fairness over {name}", ""]
        lines += [f"- {metric}: {_number(v)}" for metric, v in found["metrics"].items()]
        lines += [
            "",
            f"| {name} | rows | selection rate | true-positive rate |",
            "|---|---|---|---|",
        ]
        for value, group in found["groups"].items():
            lines.append(
                f"| {value} | {group['rows']} | {_number(group['selection_rate'])} | "
                f"{_number(group['true_positive_rate'])} |"
            )
    return lines


def _importance_lines(importance: dict[str, Any]) -> list[str]:
    lines = [
        "",
        f"### Permutation importance ({importance['metric']} drop, {importance['repeats']} "
        f"repeats, seed {importance['seed']})",
        "",
        "| feature | mean drop | std |",
        "|---|---|---|",
    ]
    for entry in importance["features"]:
        lines.append(f"| {entry['feature']} | {_number(entry['mean'])} | {_number(entry['std'])} |")
    return lines


def markdown(card: dict[str, Any]) -> str:
    model = card["model"] or {}
    data, spec = card["data"], card["spec"]
    lines = [
        f"# Model card: {model.get('name') or spec['address'] or card['run_id']}",
        "",
        f"- run: `{card['run_id']}`; task: {card['task']}; model: {card['architecture']['type']}",
        f"- spec: {spec['address']} (spec hash `{spec['spec_hash']}`, commit "
        f"`{spec['git_commit'] or 'none: not a git checkout'}`)",
        f"- data: {data['featureset']}; snapshots: {', '.join(data['dataset_snapshots']) or '—'}",
        f"- tables: train `{data['train_sha256']}`, validation `{data['validation_sha256']}`",
    ]
    promotion = card.get("promotion")
    if promotion:
        lines.append(f"- promotion: {promotion['reason']}")
    lines += ["", "## Validation metrics", ""]
    lines += [f"- {name}: {_number(value)}" for name, value in sorted(card["metrics"].items())]
    lines += ["", "## Gates", "", *_gate_lines(card["gates"])]
    evaluation = card["evaluation"]
    if evaluation:
        lines += ["", "## Evaluation"]
        shown = [
            m for m in ("auc", "accuracy", "f1", "logloss", "rmse", "r2") if m in card["metrics"]
        ]
        lines += _slice_lines(evaluation.get("slices") or {}, shown)
        lines += _fairness_lines(evaluation.get("fairness") or {})
        if "calibration" in evaluation:
            c = evaluation["calibration"]
            lines += ["", "### Calibration", "", f"- ece ({c['bins']} bins): {_number(c['ece'])}"]
            lines.append(f"- brier: {_number(c['brier'])}")
        if "importance" in evaluation:
            lines += _importance_lines(evaluation["importance"])
    return "\n".join(lines) + "\n"
