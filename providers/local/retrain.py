"""Retraining on drift (``retrain: {on: drift, maxPsi, maxAge}``): whether a TrainingJob
whose features moved must retrain, decided at plan time, and whether each triggered
retrain beat the model it replaced.

The model's training snapshot is the Dataset snapshot behind the FeatureSet its run
trained on (the FeatureSet's manifest names it). Its manifest keeps a histogram per column
(``providers.local.data.drift``); the data the Dataset will snapshot next (its source as it
is now) is counted into those bins and compared by PSI, column by column, entity columns
left out. The largest PSI over ``maxPsi`` retrains; so does a model older than
``maxAge``. Otherwise the new snapshot and features are made but the model stays.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from providers.base import JSON, PermanentError
from providers.local.settings import LocalSettings

LOWER_IS_BETTER = ("loss", "logloss", "rmse", "mae")


@dataclass(frozen=True)
class Decision:
    retrain: bool
    why: str  # for the plan: "PSI 0.83 on xage against ds-... (maxPsi 0.2)"


def policy_of(spec: JSON) -> JSON | None:
    """The object form of ``retrain`` with on: drift, or None."""
    policy = spec.get("retrain")
    return policy if isinstance(policy, dict) and policy.get("on") == "drift" else None


def _manifest(path: Path) -> JSON | None:
    try:
        found: JSON = json.loads(path.read_text(encoding="utf-8"))
        return found
    except (OSError, ValueError):
        return None


def training_snapshot(settings: LocalSettings, spec: JSON, featureset_id: str) -> JSON | None:
    """The manifest of the Dataset snapshot the model's FeatureSet was made from."""
    fs = _manifest(
        settings.data_dir / "features" / str(spec.get("features")) / featureset_id / "manifest.json"
    )
    sid = (fs or {}).get("datasetSnapshot")
    if not isinstance(sid, str):
        return None
    for path in sorted((settings.data_dir / "datasets").glob(f"*/snapshots/{sid}/manifest.json")):
        return _manifest(path)
    return None


def psi_now(settings: LocalSettings, reference: JSON, skip: set[str]) -> tuple[float, str] | None:
    """The largest per-column PSI of the source as it is now against ``reference`` (a
    snapshot manifest), with its column; None when nothing can be compared."""
    from providers.local.data.drift import Histogram
    from providers.local.data.readers import open_source
    from reconciler.kinds.data import DatasetSpec

    stored = dict(reference.get("spec") or {})
    stored["source"] = {**(stored.get("source") or {}), "uri": reference["source"]["uri"]}
    spec = DatasetSpec.model_validate(stored)
    fmt = spec.source.inferred_format()
    assert fmt is not None
    source = open_source(spec.source.uri, fmt, spec.source.csv, settings)
    hints = [(c.name, c.type) for c in spec.schema_]
    histograms = {
        name: Histogram(
            name, bool(ref.get("numeric")), max(len(ref.get("fractions") or []) - 1, 1), ref
        )
        for name, ref in (reference.get("histograms") or {}).items()
        if name not in skip
    }
    for batch in source.batches(hints):
        for name, histogram in histograms.items():
            if name in batch.schema.names:
                histogram.add(batch.column(name))
    scored = [(psi, name) for name, h in histograms.items() if (psi := h.psi()) is not None]
    return max(scored) if scored else None


def _age(record: JSON) -> float | None:
    attempts = record.get("attempts") or []
    finished = attempts[-1].get("finishedAt") if attempts else None
    if not isinstance(finished, str):
        return None
    return time.time() - datetime.fromisoformat(finished.replace("Z", "+00:00")).timestamp()


def shown_age(seconds: float) -> str:
    """An age in the units a maxAge is written in, weeks left as days: ``8d``, ``1d12h``,
    ``45m``; whole minutes (whole seconds under a minute)."""
    rest = int(seconds) if seconds < 60 else int(seconds) // 60 * 60
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(out) or "0s"


def decide(settings: LocalSettings, spec: JSON, policy: JSON, trained: JSON) -> Decision:
    """Retrain or not, for a job whose features moved since ``trained`` (its run record).
    The model's age counts from the end of the run that trained it (its record's last
    attempt)."""
    from reconciler.kinds.quantities import parse_duration

    written = policy.get("maxAge")  # as the spec JSON keeps it: "1w", "36h"
    max_age = parse_duration(written) if written is not None else None
    age = _age(trained)
    if max_age is not None and age is not None and age > max_age:
        return Decision(True, f"model is {shown_age(age)} old (maxAge {shown_age(max_age)})")
    featureset = (trained.get("inputs") or {}).get("featureSet")
    reference = training_snapshot(settings, spec, str(featureset)) if featureset else None
    if reference is None:
        return Decision(
            True, "the model's training snapshot is gone, so its drift cannot be measured"
        )
    fs_dir = settings.data_dir / "features" / str(spec.get("features")) / str(featureset)
    entity = set((_manifest(fs_dir / "manifest.json") or {}).get("entity") or [])
    try:
        found = psi_now(settings, reference, entity)
    except PermanentError as exc:
        return Decision(True, f"drift cannot be measured ({exc})")
    limit = float(policy.get("maxPsi") or 0.2)
    if found is None:
        return Decision(False, "no column to compare")
    psi, column = found
    against = f"against the training snapshot {reference.get('id')}"
    if psi > limit:
        return Decision(True, f"drift: PSI {psi:.3f} on {column} {against} (maxPsi {limit:g})")
    return Decision(
        False, f"drift below maxPsi: PSI {psi:.3f} on {column} {against} (maxPsi {limit:g})"
    )


def outcome(spec: JSON, prior: JSON, metrics: JSON) -> JSON | None:
    """Whether a triggered retrain beat the model it replaced, on the first gate's metric
    (else auc, else loss), with the running counts per job: ``retrainTriggers`` output."""
    before = prior.get("metrics") or {}
    gates = spec.get("gates") or []
    names = [g.get("metric") for g in gates] + ["auc", "loss"]
    metric = next((m for m in names if m in before and m in metrics), None)
    counts = dict(prior.get("retrainTriggers") or {})
    if metric is None:
        return counts or None
    old, new = float(before[metric]), float(metrics[metric])
    useful = new < old if metric in LOWER_IS_BETTER else new > old
    total = int(counts.get("total") or 0) + 1
    kept = int(counts.get("useful") or 0) + int(useful)
    return {
        "total": total,
        "useful": kept,
        "last": {"metric": metric, "before": old, "after": new, "useful": useful},
    }
