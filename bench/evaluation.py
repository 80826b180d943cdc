"""Benchmark the evaluation's added time on the quickstart against training alone.

The quickstart's FeatureSet is materialised once (``pipeform apply --target
FeatureSet/hie-features`` on a temporary copy of ``specs/examples/quickstart``). The
trainer then runs the quickstart's TrainingJob (MLP [64, 32], 20 epochs, early stopping on
AUC) as pipeform runs it, ``python -m trainer run --config FILE`` in a child process, twice
per round on the same tables:

- **training alone**: no evaluation beyond the task's metrics;
- **with evaluation**: the quickstart's evaluation (slices by site and female, fairness
  over female with fairlearn, calibration, permutation importance with 3 repeats).

The evaluation's time is measured inside the run (the ``evaluated`` event's
``evaluation_seconds``: from the task's metrics to the end of permutation importance,
fairlearn's import included) and is compared with the whole run of training alone (its
``duration_seconds``: process start, data, training, packaging). fairlearn's import starts
in a background thread when the run begins (``trainer.evaluation.prefetch``), so most of it
overlaps training: the difference of the two whole runs is printed as well, and the verdict
takes the larger of the two figures. Runs alternate, so a busy machine hurts
both alike; the best of each is compared.

    .venv/bin/python bench/evaluation.py              # about 1-2 minutes on 2 CPUs
    .venv/bin/python bench/evaluation.py --rounds 1

Target: evaluation < 20% of training alone. A benchmark, not a test: it exits 0 unless a
run fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET = 0.20
EVALUATION = {
    "slices": ["site", "female"],
    "fairness": ["female"],
    "calibration": True,
    "importance": {"repeats": 3, "seed": 42},
}


def materialise(work: Path) -> dict[str, Any]:
    """The quickstart's FeatureSet outputs, applied in a copy under work."""
    tree = work / "quickstart"
    shutil.copytree(
        ROOT / "specs" / "examples" / "quickstart", tree, ignore=shutil.ignore_patterns(".pipeform")
    )
    env = {
        **os.environ,
        "QUICKSTART_METRICS_TOKEN": "bench",
        "NO_COLOR": "1",
        "PYTHONPATH": str(ROOT),
    }
    pipeform = [sys.executable, "-c", "from reconciler.cli import run; run()"]
    target = "FeatureSet/hie-features"
    for args in (["apply", "--auto-approve", "--target", target], ["state", "show", target]):
        done = subprocess.run(
            [*pipeform, *args], cwd=tree, env=env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise SystemExit(f"pipeform {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    outputs: dict[str, Any] = json.loads(done.stdout)["outputs"]
    return outputs


def config(fs: dict[str, Any], run_dir: Path, evaluation: dict[str, Any]) -> dict[str, Any]:
    def table(split: str) -> dict[str, Any]:
        t = fs[split]
        return {"path": t["path"], "sha256": t["sha256"].removeprefix("sha256:"), "rows": t["rows"]}

    return {
        "run_id": run_dir.name,
        "inputs": {
            "train": table("train"),
            "validation": table("validation"),
            "features": fs["features"],
            "label": fs["label"],
            "entity": fs["entity"],
            "segments": fs.get("segments") or [],
            "transform_digest": fs["transform"]["digest"],
        },
        "model": {
            "type": "mlp",
            "task": "binary-classification",
            "hidden": [64, 32],
            "dropout": 0.1,
        },
        "hyperparameters": {
            "epochs": 20,
            "batch_size": 256,
            "learning_rate": 0.001,
            "seed": 42,
            "early_stopping": {"metric": "auc", "patience": 5},
        },
        "evaluation": evaluation,
        "checkpoint": {"dir": str(run_dir / "checkpoints")},
        "output_dir": str(run_dir),
        "device": "cpu",
    }


def run(fs: dict[str, Any], run_dir: Path, evaluation: dict[str, Any]) -> dict[str, float]:
    run_dir.mkdir(parents=True)
    path = run_dir / "config.json"
    path.write_text(json.dumps(config(fs, run_dir, evaluation)))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "2",
        "CUDA_VISIBLE_DEVICES": "",
    }
    done = subprocess.run(
        [sys.executable, "-m", "trainer", "run", "--config", str(path)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    result = json.loads((run_dir / "result.json").read_text())
    if done.returncode != 0:
        raise SystemExit(f"trainer failed ({done.returncode}): {result.get('error')}")
    return {
        "duration": float(result["duration_seconds"]),
        "evaluation": float((result.get("evaluation") or {}).get("seconds") or 0.0),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pipeform-bench-eval-") as scratch:
        work = Path(scratch)
        fs = materialise(work)
        alone, full = [], []
        for i in range(args.rounds):
            alone.append(run(fs, work / f"alone-{i}", {}))
            full.append(run(fs, work / f"full-{i}", EVALUATION))
    train = min(r["duration"] for r in alone)
    evaluated = min(r["evaluation"] for r in full)
    with_eval = min(r["duration"] for r in full)
    # judged on the larger of the two: what the user waits for is the whole run
    ratio = max(evaluated, with_eval - train) / train
    print(f"quickstart, {args.rounds} round(s), best of each (seconds)")
    print(f"{'training alone (whole run)':<44}{train:>8.2f}")
    print(f"{'with evaluation (whole run)':<44}{with_eval:>8.2f}")
    print(f"{'evaluation, measured in the run':<44}{evaluated:>8.2f}")
    print(f"{'difference of the whole runs':<44}{with_eval - train:>8.2f}")
    verdict = "ok" if ratio < TARGET else "MISSED"
    print(f"measured in the run / training alone: {evaluated / train:.1%}")
    print(f"difference of the whole runs / training alone: {(with_eval - train) / train:.1%}")
    print(f"evaluation's added time, the larger: {ratio:.1%} (target < {TARGET:.0%}): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
