"""The champion gate: is the new model no worse than the version its alias points at now?

Both models are scored on the new run's validation split (the model performance delta).
The champion is the version the TrainingJob's ``register.alias`` names; its package comes
from the registry (the local registry's artifact directory, or downloaded from MLflow) and
its TorchScript ``model.pt`` is run on the same feature matrix. That is only a fair test
when the champion reads the same features made by the same fitted transform; when its
signature or transform digest differs, the comparison falls back to the metric the
champion recorded on its own validation split, and says so.

A model that loses by more than the margin is still registered as a version, but the
alias stays where it is; ``decide`` says why in words, for the apply output and the card.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import torch

from trainer import metrics
from trainer.config import ChampionGate, RunConfig
from trainer.data import Split
from trainer.registry import ModelVersion, Registry
from trainer.registry.common import RegistryLookupError


def _as_logits(task: str, predicted: torch.Tensor) -> torch.Tensor:
    """The packaged model's output (probabilities) back to what compute_metrics reads."""
    if task == "binary-classification":
        p = predicted.double().clamp(1e-12, 1 - 1e-12)
        return torch.log(p) - torch.log1p(-p)
    if task == "multiclass-classification":
        return torch.log(predicted.double().clamp_min(1e-12))
    return predicted.double()


def _comparable(package: Path, config: RunConfig) -> str | None:
    """Why the champion cannot be scored on this split, or None when it can."""
    if not (package / "model.pt").is_file():
        return "its package has no TorchScript model.pt"
    signature = json.loads((package / "signature.json").read_text())
    inputs = [entry["name"] for entry in signature.get("inputs", [])]
    if inputs != list(config.inputs.features):
        return "it reads other features"
    meta = json.loads((package / "metadata.json").read_text())
    digest = (meta.get("lineage") or {}).get("transform_digest")
    if digest != config.inputs.transform_digest:
        return "its features were made by another fitted transform"
    return None


def score_champion(
    registry: Registry, current: ModelVersion, config: RunConfig, split: Split, metric: str
) -> tuple[float | None, str]:
    """The champion's metric, and how it was obtained."""
    with tempfile.TemporaryDirectory(prefix="pipeform-champion-") as scratch:
        package = registry.package_path(current, Path(scratch))
        why_not = _comparable(package, config)
        if why_not is None:
            model = torch.jit.load(str(package / "model.pt"), map_location="cpu")  # type: ignore[no-untyped-call]
            model.eval()
            with torch.no_grad():
                predicted = torch.cat(
                    [model(split.x[i : i + 8192].cpu()) for i in range(0, split.rows, 8192)]
                )
            found = metrics.compute_metrics(
                config.model.task, _as_logits(config.model.task, predicted), split.y.cpu()
            )
            return found.get(metric), "scored on this run's validation split"
    recorded = (current.lineage.get("metrics") or {}).get(metric)
    value = float(recorded) if isinstance(recorded, int | float) else None
    return value, f"its recorded validation metric ({why_not}, so it cannot score this split)"


def decide(
    config: RunConfig, registry: Registry, found: dict[str, float], split: Split
) -> dict[str, Any]:
    """Whether the alias moves to the new version: promote, reason, and the comparison."""
    target = config.registry
    assert target is not None and target.champion is not None and target.alias
    gate: ChampionGate = target.champion
    alias = target.alias
    try:
        current = registry.get(target.model, alias=alias)
    except RegistryLookupError:
        return {"promote": True, "reason": f"no version holds alias {alias!r} yet"}
    if current.run_id == config.run_id:  # a retry after registering
        return {"promote": True, "reason": f"alias {alias!r} already names this run's version"}
    new = found.get(gate.metric)
    old, how = score_champion(registry, current, config, split, gate.metric)
    comparison: dict[str, Any] = {
        "metric": gate.metric,
        "margin": gate.margin,
        "champion_version": current.version,
        "champion_run_id": current.run_id,
        "champion_value": old,
        "new_value": new,
        "champion_scored": how,
    }
    if new is None or old is None or not math.isfinite(new) or not math.isfinite(old):
        reason = f"{gate.metric} could not be computed for both models; alias {alias!r} stays on v{current.version}"
        return {"promote": False, "reason": reason, "champion": comparison}
    better = 1.0 if metrics.mode_for(gate.metric) == "max" else -1.0
    delta = better * (new - old)  # > 0: the new model is better
    comparison["delta"] = delta
    promote = delta >= -gate.margin
    verdict = (
        f"{gate.metric} {new:.4f} vs champion v{current.version}'s {old:.4f} ({how}): "
        f"{'better by' if delta >= 0 else 'worse by'} {abs(delta):.4f}, margin {gate.margin:g}"
    )
    if promote:
        reason = f"promoted: {verdict}"
    else:
        reason = f"not promoted: {verdict}; alias {alias!r} stays on v{current.version}"
    return {"promote": promote, "reason": reason, "champion": comparison}
