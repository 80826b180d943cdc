"""A stand-in for ``python -m trainer`` that keeps the trainer contract (trainer/config.py).

Used through the executor's PIPEFORM_TRAINER_COMMAND hook where a test needs behaviour the
real trainer only shows by chance (a crash that prints a secret, an exact pace). It reads
the RunConfig, checks input checksums (exit 3), "trains" one epoch per FAKE_EPOCH_SECONDS,
checkpoints after every epoch and on SIGTERM (exit 5), resumes from the newest checkpoint,
applies the gates to FAKE_AUC, registers with the real registry, writes result.json.
FAKE_CRASH_PRINTING names a variable whose value it prints before crashing (exit 1).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import time
from pathlib import Path

from trainer.config import RunConfig, RunResult
from trainer.registry import open_registry


def main() -> int:
    config = RunConfig.model_validate_json(
        Path(sys.argv[sys.argv.index("--config") + 1]).read_bytes()
    )
    out = Path(config.output_dir)
    started = time.monotonic()

    def finish(status: str, code: int, **extra: object) -> int:
        result = RunResult(
            run_id=config.run_id,
            status=status,  # type: ignore[arg-type]
            duration_seconds=time.monotonic() - started,
            **extra,  # type: ignore[arg-type]
        )
        (out / "result.json").write_text(result.model_dump_json())
        return code

    for table in (config.inputs.train, config.inputs.validation):
        if hashlib.sha256(Path(table.path).read_bytes()).hexdigest() != table.sha256:
            return finish("failed", 3, error=f"checksum mismatch: {table.path}")
    leak = os.environ.get("FAKE_CRASH_PRINTING")
    if leak:
        print(f"crashing with {leak}={os.environ.get(leak)}", flush=True)
        return 1
    ckpt = Path(config.checkpoint.dir)
    ckpt.mkdir(parents=True, exist_ok=True)
    done = sorted(int(p.stem.split("-")[1]) for p in ckpt.glob("epoch-*.json"))
    epoch = done[-1] if done else 0
    resumed = str(ckpt / f"epoch-{epoch}.json") if done else None
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    pace = float(os.environ.get("FAKE_EPOCH_SECONDS", "0.05"))
    while epoch < config.hyperparameters.epochs:
        if stop["now"]:
            return finish("preempted", 5, epochs=epoch, resumed_from=resumed)
        time.sleep(pace)
        epoch += 1
        (ckpt / f"epoch-{epoch}.json").write_text(json.dumps({"epoch": epoch}))
        print(json.dumps({"epoch": epoch, "loss": 1.0 / epoch}), flush=True)
    auc = float(os.environ.get("FAKE_AUC", "0.8"))
    # the other metrics a gate may name, at values a fair, calibrated model has
    values = {"ece": 0.02, "brier": 0.13, "disparate-impact-ratio": 0.97}
    values |= {"demographic-parity-difference": 0.03, "equal-opportunity-difference": 0.02}
    gates = []
    for gate in config.gates:
        value = values.get(gate.metric, auc)
        passed = (gate.min is None or value >= gate.min) and (gate.max is None or value <= gate.max)
        gates.append(
            {
                "metric": gate.metric,
                "value": value,
                "min": gate.min,
                "max": gate.max,
                "passed": passed,
            }
        )
    metrics = {"auc": auc}
    if not all(g["passed"] for g in gates):
        return finish("gated", 4, metrics=metrics, gates=gates, epochs=epoch, resumed_from=resumed)
    package = out / "package"
    package.mkdir(exist_ok=True)
    (package / "model.json").write_text(
        json.dumps({"epochs": epoch, "seed": config.hyperparameters.seed})
    )
    version = uri = None
    if config.registry is not None:
        registry = open_registry(config.registry)
        registered = registry.register(
            package,
            config.registry.model,
            run_id=config.run_id,
            tags=config.registry.tags,
            lineage={"lineage": config.lineage.model_dump(mode="json")},  # as trainer/package.py
        )
        if config.registry.alias and config.registry.promote:
            registry.set_alias(config.registry.model, config.registry.alias, registered.version)
        version, uri = str(registered.version), registered.uri
    return finish(
        "succeeded",
        0,
        metrics=metrics,
        gates=gates,
        epochs=epoch,
        resumed_from=resumed,
        package_dir=str(package),
        model_version=version,
        model_uri=uri,
    )


if __name__ == "__main__":
    sys.exit(main())
