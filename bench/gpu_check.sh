#!/usr/bin/env bash
# The trainer's GPU checks, prepared to run in under 5 minutes on a machine with one GPU:
#
#   1. nvidia-smi (the card, driver and memory)
#   2. a bf16 training run on cuda: checks that autocast really runs the model in bfloat16,
#      that TF32 is on, and that the training loss goes down
#   3. a single-process DDP run under torchrun with the NCCL backend
#   4. throughput: bench/trainer.py --device cuda (trainer vs a bare loop)
#
# Writes a summary to $OUT/gpu_check.txt (and the throughput figures to
# $OUT/trainer-bench.json) when OUT is set. Exits non-zero when a check fails.
#
#   bash bench/gpu_check.sh                     # on the GPU machine, from the repository root
#   GPU_CHECK_DEVICE=cpu GPU_CHECK_QUICK=1 bash bench/gpu_check.sh   # the CPU fallback (gloo)
#
# PYTHON picks the interpreter (default: .venv/bin/python when present, else python3).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
DEVICE=${GPU_CHECK_DEVICE:-cuda}
QUICK=${GPU_CHECK_QUICK:-0}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
SUMMARY="$WORK/summary.txt"
trap 'rm -rf "$WORK"' EXIT
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
failures=0

say() { echo "$*" | tee -a "$SUMMARY"; }
step() {  # step NAME SECONDS COMMAND...: run with a time limit, record ok/FAILED
    local name=$1 limit=$2
    shift 2
    local started=$SECONDS
    if timeout "$limit" "$@" >"$WORK/$name.log" 2>&1; then
        say "ok      $name ($((SECONDS - started)) s)"
    else
        say "FAILED  $name (exit $?, $((SECONDS - started)) s); last lines:"
        tail -n 25 "$WORK/$name.log" | sed 's/^/    /' | tee -a "$SUMMARY"
        failures=$((failures + 1))
    fi
    grep -E '^(check|bench):' "$WORK/$name.log" | sed 's/^/    /' | tee -a "$SUMMARY" || true
}

say "pipeform trainer GPU check: device=$DEVICE quick=$QUICK $(date -u +%FT%TZ)"
if [[ $DEVICE == cuda ]]; then
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi | tee -a "$SUMMARY"
    else
        say "FAILED  nvidia-smi is not on PATH"
        failures=$((failures + 1))
    fi
fi
"$PYTHON" -c 'import torch; print("check: torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())' | tee -a "$SUMMARY"

ROWS=20000
BENCH_ROWS=200000
BENCH_EPOCHS=3
if [[ $QUICK == 1 ]]; then ROWS=3000; BENCH_ROWS=20000; BENCH_EPOCHS=1; fi

# -- the data and a config for checks 2 and 3 -------------------------------------------
"$PYTHON" - "$WORK" "$ROWS" "$DEVICE" <<'EOF'
import hashlib, json, sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

work, rows, device = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rng = np.random.default_rng(0)
w = rng.normal(size=16)
tables = {}
for split, n in (("train", rows), ("validation", rows // 4)):
    x = rng.normal(size=(n, 16)).astype(np.float32)
    y = ((x @ w + rng.logistic(size=n)) > 0).astype(np.int64)
    path = work / f"{split}.parquet"
    pq.write_table(pa.table({**{f"f{i}": x[:, i] for i in range(16)}, "label": y}), path)
    tables[split] = {"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
for name, backend in (("bf16", "auto"), ("ddp", "nccl" if device == "cuda" else "gloo")):
    config = {
        "run_id": f"gpu-check-{name}",
        "inputs": {**tables, "features": [f"f{i}" for i in range(16)], "label": "label"},
        "model": {"type": "resmlp", "task": "binary-classification", "hidden": [128, 128]},
        "hyperparameters": {"epochs": 4, "batch_size": 512, "learning_rate": 0.002},
        "checkpoint": {"dir": str(work / name / "checkpoints")},
        "output_dir": str(work / name),
        "distributed": {"backend": backend},
        "device": device,
    }
    (work / f"{name}.json").write_text(json.dumps(config))
EOF

# -- 2. bf16 autocast, TF32, loss going down ---------------------------------------------
cat >"$WORK/bf16_check.py" <<'EOF'
import json, sys
import torch
from torch import nn
from trainer import checkpoint, data, distributed, loop
from trainer.config import RunConfig
from trainer.progress import Reporter

config = RunConfig.model_validate(json.loads(open(sys.argv[1]).read()))
ctx = distributed.setup(config)
loaded = data.load_data(config.inputs, config.model)
trainer = loop.Trainer(config, loaded, ctx, Reporter(enabled=False), checkpoint.StopFlag(), 0.0)
seen = set()
first = next(m for m in trainer.model.modules() if isinstance(m, nn.Linear))
first.register_forward_hook(lambda module, inputs, output: seen.add(output.dtype) if module.training else None)
outcome = trainer.run()
losses = [epoch["loss"] for epoch in outcome.state.history]
print("check: device", ctx.device, "linear output dtypes in training", sorted(map(str, seen)))
print("check: training loss by epoch", [round(v, 4) for v in losses])
print("check: samples/s", round(outcome.samples_per_second or 0))
expected = torch.bfloat16 if ctx.cuda else torch.float32
assert seen == {expected}, f"expected {expected} activations in training, saw {seen}"
if ctx.cuda:
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32, "TF32 is off"
    print("check: tf32 matmul", torch.backends.cuda.matmul.allow_tf32, "cudnn", torch.backends.cudnn.allow_tf32)
assert losses[-1] < losses[0], f"the loss did not go down: {losses}"
metrics = loop.evaluate(outcome.model, loaded.validation, config.model.task, ctx.device)
print("check: validation auc", round(metrics["auc"], 4))
assert metrics["auc"] > 0.8, metrics
EOF
step bf16-training 120 "$PYTHON" "$WORK/bf16_check.py" "$WORK/bf16.json"

# -- 3. single-process DDP (NCCL on GPU, gloo in the CPU fallback) -------------------------
ddp() {
    "$PYTHON" -m torch.distributed.run --standalone --nproc-per-node 1 \
        -m trainer run --config "$WORK/ddp.json" || return $?
    "$PYTHON" - "$WORK/ddp/result.json" <<'EOF'
import json, sys
result = json.loads(open(sys.argv[1]).read())
print("check: ddp status", result["status"], "auc", round(result["metrics"].get("auc", 0), 4),
      "samples/s", round(result["samples_per_second"] or 0))
assert result["status"] == "succeeded", result
EOF
}
export -f ddp
export PYTHON WORK DEVICE
step ddp-single-process 150 bash -c ddp

# -- 4. throughput: the trainer against a bare loop ---------------------------------------
bench() {
    "$PYTHON" bench/trainer.py --device "$DEVICE" --rows "$BENCH_ROWS" --epochs "$BENCH_EPOCHS" \
        --repeats 1 --out "$WORK/trainer-bench.json" | sed 's/^/bench: /'
}
export -f bench
export BENCH_ROWS BENCH_EPOCHS
step throughput 150 bash -c bench

say "done: $failures check(s) failed"
if [[ -n "${OUT:-}" ]]; then
    mkdir -p "$OUT"
    cp "$SUMMARY" "$OUT/gpu_check.txt"
    [[ -f $WORK/trainer-bench.json ]] && cp "$WORK/trainer-bench.json" "$OUT/"
    for log in "$WORK"/*.log; do cp "$log" "$OUT/"; done
fi
exit $((failures > 0))
