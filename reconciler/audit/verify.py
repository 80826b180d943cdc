"""``pipeform verify MODEL@VERSION``: re-hash every input a model version recorded (the
Dataset snapshot, the feature tables and fitted transform, the trainer's code, the
registered package's files) and say which still match; ``--retrain`` trains again on CPU
from the recorded run config into a scratch directory and compares the result.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: the largest difference in any metric a GPU-trained version's retrain may show
METRIC_TOLERANCE = 0.01


@dataclass(frozen=True)
class Check:
    what: str  # snapshot, feature table, transform, trainer code, package files
    subject: str  # the file or digest checked
    recorded: str | None
    actual: str | None  # None: the file is gone
    note: str = ""

    @property
    def matches(self) -> bool:
        return self.recorded is not None and self.recorded == self.actual

    @property
    def failed(self) -> bool:
        """Recorded and no longer matching (an input with no record is only reported)."""
        return self.recorded is not None and not self.matches

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "matches": self.matches}

    def line(self) -> str:
        mark = "✔" if self.matches else "✘"
        if self.matches:
            return f"{mark} {self.what:<14} {self.subject}"
        if self.recorded is None:
            return f"{mark} {self.what:<14} {self.subject}: nothing recorded to compare {self.note}"
        now = "missing" if self.actual is None else self.actual
        return (
            f"{mark} {self.what:<14} {self.subject}: CHANGED (recorded {self.recorded}, now {now})"
        )


def sha256_of(path: Path) -> str | None:
    try:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def _strip(digest: Any) -> str | None:
    return None if digest is None else str(digest).removeprefix("sha256:")


def checks(data: dict[str, Any]) -> list[Check]:
    """The digest checks of one version, from ``reconciler.audit.lineage.lineage``'s data."""
    from trainer.registry.common import RegistryError, package_digest
    from trainer.version import trainer_code_digest

    out: list[Check] = []
    ds = data["dataset"]
    if ds.get("path"):
        out.append(
            Check(
                "snapshot", str(ds["path"]), _strip(ds.get("sha256")), sha256_of(Path(ds["path"]))
            )
        )
    fs = data["feature_set"]
    for split in ("train", "validation"):
        table = fs.get(split) or {}
        if table.get("path"):
            out.append(
                Check(
                    "feature table",
                    str(table["path"]),
                    _strip(table.get("sha256")),
                    sha256_of(Path(table["path"])),
                )
            )
    if fs.get("transform_path"):
        path = Path(fs["transform_path"])
        out.append(
            Check("transform", str(path), _strip(fs.get("transform_digest")), sha256_of(path))
        )
    recorded = data["trainer"].get("code_digest")
    out.append(
        Check(
            "trainer code",
            "trainer/ (this installation)",
            _strip(recorded),
            _strip(trainer_code_digest()),
            "(the package recorded no trainer digest)",
        )
    )
    try:
        actual: str | None = package_digest(Path(data["uri"]))
    except (RegistryError, OSError):
        actual = None
    out.append(Check("package files", str(data["uri"]), data["package_sha256"], actual))
    return out


def retrain(data: dict[str, Any], recorded: dict[str, Any], scratch: Path) -> dict[str, Any]:
    """Train again on CPU from the recorded run config (``recorded``: the registry's
    lineage of the version) into ``scratch``; compare weights bit for bit for a version
    trained on CPU, metrics within METRIC_TOLERANCE for one trained on a GPU."""
    import json
    import subprocess
    import sys

    config = dict(recorded.get("config") or {})
    if not config:
        return {"ok": False, "detail": "the version recorded no run config: it cannot be retrained"}
    trained_on = str(config.get("device") or "cpu")
    config.update(
        device="cpu",
        output_dir=str(scratch / "run"),
        metrics=None,
        checkpoint={**config["checkpoint"], "dir": str(scratch / "run" / "checkpoints")},
        registry={
            **config["registry"],
            "type": "local",
            "uri": str(scratch / "registry"),
            "alias": None,
        },
    )
    (scratch / "run").mkdir(parents=True, exist_ok=True)
    path = scratch / "config.json"
    path.write_text(json.dumps(config))
    done = subprocess.run(
        [sys.executable, "-m", "trainer", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {
            "ok": False,
            "detail": f"the retrain failed (exit {done.returncode}): {' / '.join(tail)}",
        }
    new_package = scratch / "run" / "package"
    if trained_on == "cpu":
        ours = sha256_of(new_package / "model.safetensors")
        theirs = sha256_of(Path(data["uri"]) / "model.safetensors")
        same = ours is not None and ours == theirs
        detail = (
            "weights identical, bit for bit"
            if same
            else f"weights DIFFER (registered sha256 {theirs}, retrained {ours})"
        )
        return {"ok": same, "trained_on": trained_on, "detail": detail}
    result = json.loads((scratch / "run" / "result.json").read_text())
    metrics = result.get("metrics") or {}
    gaps = {
        k: abs(float(metrics[k]) - float(v)) for k, v in data["metrics"].items() if k in metrics
    }
    worst = max(gaps.values(), default=0.0)
    ok = worst <= METRIC_TOLERANCE
    return {
        "ok": ok,
        "trained_on": trained_on,
        "detail": f"trained on {trained_on}: weights are not comparable on CPU; metrics "
        f"{'within' if ok else 'OUTSIDE'} {METRIC_TOLERANCE} (largest difference {worst:.4f})",
    }
