"""Benchmark the bundled trainer against a bare hand-written PyTorch loop.

Both train the same model (an MLP 30 -> 64 -> 32 -> 1, binary classification) on the same
synthetic data (200,000 rows x 30 float32 features by default), with batch 256, AdamW,
gradient clipping at 1.0, the same number of epochs and the same torch thread count. The
bare loop is what one would write by hand: tensors in memory, a random permutation per
epoch, index slicing, forward, backward, clip, step. The trainer runs as it does for
pipeform, ``python -m trainer run --config FILE`` in a child process, with its epoch-end
checkpoints and evaluation; its samples/s (``result.json``) counts training time only,
as the bare loop's does. Runs alternate (bare, trainer, bare, trainer, ...) so a busy
machine hurts both alike, and the best of each is compared.

It also prints the fixed overhead of a run: process start to the end of the first step
(``first_step_seconds`` in result.json), how much of that is ``import torch`` alone, and
the time of the registration call with the local registry (the ``registered`` event).

    .venv/bin/python bench/trainer.py                          # about 1-2 minutes on CPU
    .venv/bin/python bench/trainer.py --rows 50000 --epochs 1  # quicker
    .venv/bin/python bench/trainer.py --device cuda --out /tmp/trainer-bench.json

Target: trainer samples/s >= 0.95 x the bare loop's. A benchmark, not a test: it exits 0
unless a run fails.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 0.95


def make_data(directory: Path, rows: int, features: int) -> dict[str, Any]:
    """Train and validation parquet files (a learnable label); the trainer's inputs."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    weights = rng.normal(size=features)
    tables: dict[str, Any] = {}
    for split, count in (("train", rows), ("validation", max(1000, rows // 10))):
        x = rng.normal(size=(count, features)).astype(np.float32)
        y = ((x @ weights + rng.logistic(size=count)) > 0).astype(np.int64)
        columns = {f"f{i}": x[:, i] for i in range(features)} | {"label": y}
        path = directory / f"{split}.parquet"
        pq.write_table(pa.table(columns), path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        tables[split] = {"path": str(path), "sha256": digest, "rows": count}
    return tables


def bare_loop(
    tables: dict[str, Any], features: int, epochs: int, batch: int, device: str, threads: int
) -> float:
    """Samples/s of a plain loop over in-memory tensors (training time only)."""
    import numpy as np
    import pyarrow.parquet as pq
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    table = pq.read_table(tables["train"]["path"])
    x = torch.from_numpy(
        np.column_stack([table.column(f"f{i}").to_numpy() for i in range(features)])
    ).to(device)
    y = torch.from_numpy(table.column("label").to_numpy().astype(np.float32)).to(device)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(features, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1)
    ).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    loss_fn = nn.BCEWithLogitsLoss()
    autocast = device == "cuda"
    rows = x.shape[0]
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(rows, device=device)
        for start in range(0, rows, batch):
            index = order[start : start + batch]
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
                out = model(x[index])
            loss = loss_fn(out.float().squeeze(1), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
    if device == "cuda":
        torch.cuda.synchronize()
    return rows * epochs / (time.perf_counter() - started)


def trainer_run(
    work: Path, tables: dict[str, Any], args: argparse.Namespace, index: int
) -> dict[str, Any]:
    """One ``python -m trainer run``; its result.json plus the registration time."""
    out = work / f"run-{index}"
    config = {
        "run_id": f"bench-{index}",
        "inputs": {
            "train": tables["train"],
            "validation": tables["validation"],
            "features": [f"f{i}" for i in range(args.features)],
            "label": "label",
        },
        "model": {"type": "mlp", "task": "binary-classification", "hidden": [64, 32]},
        "hyperparameters": {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "learning_rate": 1e-3,
            "scheduler": "constant",
            "gradient_clip": 1.0,
        },
        "checkpoint": {"dir": str(out / "checkpoints")},
        "output_dir": str(out),
        "registry": {"type": "local", "uri": str(work / "registry"), "model": "bench"},
        "device": args.device,
    }
    path = work / f"config-{index}.json"
    path.write_text(json.dumps(config))
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-m", "trainer", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"the trainer failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads((out / "result.json").read_text())
    for line in done.stderr.splitlines():
        if line.startswith('{"event": "registered"'):
            result["registration_seconds"] = json.loads(line)["seconds"]
    return result


def import_torch_seconds() -> float:
    code = "import time; t = time.perf_counter(); import torch; print(time.perf_counter() - t)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each (best is compared)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, help="also write the figures here as JSON")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="pipeform-bench-") as scratch:
        work = Path(scratch)
        tables = make_data(work, args.rows, args.features)
        bare, runs = [], []
        for index in range(args.repeats):
            bare.append(
                bare_loop(
                    tables, args.features, args.epochs, args.batch_size, args.device, args.threads
                )
            )
            runs.append(trainer_run(work, tables, args, index))
        torch_import = import_torch_seconds()

    trainer_rates = [run["samples_per_second"] for run in runs]
    ratio = max(trainer_rates) / max(bare)
    first_step = [run["first_step_seconds"] for run in runs]
    registration = [
        run.get("registration_seconds") for run in runs if "registration_seconds" in run
    ]
    figures = {
        "device": args.device,
        "rows": args.rows,
        "features": args.features,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "bare_samples_per_second": bare,
        "trainer_samples_per_second": trainer_rates,
        "ratio_best": ratio,
        "first_step_seconds": first_step,
        "import_torch_seconds": torch_import,
        "registration_seconds": registration,
        "auc": [run["metrics"].get("auc") for run in runs],
    }
    print(
        f"trainer benchmark: {args.rows:,} rows x {args.features} features, batch "
        f"{args.batch_size}, {args.epochs} epochs, {args.device}, {args.threads} threads"
    )
    print(f"  bare loop      samples/s  {', '.join(f'{v:,.0f}' for v in bare)}")
    print(f"  trainer        samples/s  {', '.join(f'{v:,.0f}' for v in trainer_rates)}")
    print(
        f"  ratio (best/best)         {ratio:.3f}   target >= {TARGET_RATIO}"
        f"   {'ok' if ratio >= TARGET_RATIO else 'MISSED'}"
    )
    print(
        f"  process start -> first step  median {statistics.median(first_step):.2f} s "
        f"(import torch alone: {torch_import:.2f} s)"
    )
    if registration:
        print(
            f"  register (local registry)    median {statistics.median(registration) * 1000:.0f} ms"
        )
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
