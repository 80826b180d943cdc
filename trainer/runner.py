"""One run, end to end: verify inputs, train, evaluate, gate, package, register, report.

Every exit path ends the same way on rank 0: ``result.json`` (a ``RunResult``) written
atomically in the output directory, its compact form at ``termination_message_path``
when the config names one (``trainer.termination``), metrics pushed to the Pushgateway
when one is configured, and the exit code returned:

==================  ======================================================================
EXIT_OK             trained, every gate passed, packaged, registered when asked
EXIT_GATED          trained and packaged, a gate failed: nothing registered, no alias moved
EXIT_PREEMPTED      SIGTERM (or Ctrl-C): a checkpoint was saved; run again to resume
                    (143; 5 under a config of version 1 to 3: ``preempted_exit``)
EXIT_BAD_INPUT      an input table is missing or its sha256 differs (before any training)
EXIT_FAILED         anything else, with a one-line error (a traceback with PIPEFORM_DEBUG=1)
==================  ======================================================================
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer import checkpoint, distributed, fsio
from trainer.config import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_GATED,
    EXIT_OK,
    RunConfig,
    RunResult,
    preempted_exit,
)
from trainer.errors import BadInputError, Preempted, TrainerError
from trainer.gates import check_gates
from trainer.progress import Reporter, process_started_at
from trainer.redact import scrub

DEBUG_ENV = "PIPEFORM_DEBUG"


@dataclass
class Report:
    """What result.json will say, filled in as the run goes."""

    status: str = "failed"
    code: int = EXIT_FAILED
    fields: dict[str, Any] = field(default_factory=dict)

    def result(self, config: RunConfig, duration: float) -> RunResult:
        return RunResult(
            run_id=config.run_id,
            status=self.status,
            duration_seconds=duration,
            **self.fields,
        )


def _evaluate(
    config: RunConfig, outcome: Any, data: Any, ctx: Any
) -> tuple[dict[str, float], dict[str, Any], float]:
    """The task's metrics (with ece and brier when asked), the declared evaluation, seconds."""
    from trainer import evaluation
    from trainer.loop import predict
    from trainer.metrics import compute_metrics

    task, split = config.model.task, data.validation
    outputs = predict(outcome.model, split.x, ctx.device)
    found = compute_metrics(task, outputs, split.y)
    started = time.monotonic()
    flat, evaluated = evaluation.evaluate_extra(
        config.evaluation, task, outputs, split.y, data.segments
    )
    found.update(flat)
    if config.evaluation.importance is not None:
        evaluated["importance"] = evaluation.permutation_importance(
            outcome.model,
            split,
            task,
            ctx.device,
            config.inputs.features,
            config.evaluation.importance,
        )
    return found, evaluated, time.monotonic() - started


def _finish(
    config: RunConfig, outcome: Any, data: Any, ctx: Any, reporter: Reporter, report: Report
) -> None:
    """Rank 0 after training: evaluation, gates, champion, card, package, registration."""
    from trainer import card as model_card
    from trainer.package import write_package

    found, evaluated, seconds = _evaluate(config, outcome, data, ctx)
    gates = check_gates(config.gates, found, evaluated)
    passed = all(gate["passed"] for gate in gates)
    reporter.event("evaluated", metrics=found, gates=gates, evaluation_seconds=round(seconds, 4))
    registry, promotion = None, None
    if passed and config.registry is not None:
        registry = _open_registry(config)
        promotion = _promotion(config, registry, found, data.validation)
    state = outcome.state
    training = {
        "epochs": state.epoch,
        "steps": state.global_step,
        "best_epoch": None if state.best_epoch is None else state.best_epoch + 1,
        "best": state.best,
        "history": state.history,
    }
    card = model_card.build(config, found, gates, evaluated, promotion, training)
    report.fields.update(
        metrics=found, gates=gates, evaluation={**evaluated, "seconds": round(seconds, 4)}
    )
    output_dir = Path(config.output_dir)
    fsio.write_atomic(
        output_dir / "metrics.json",
        (json.dumps({"final": found, "epochs": state.history}, indent=2) + "\n").encode(),
    )
    package_dir, digest, meta = write_package(
        output_dir, outcome.model, config, found, training, data.n_inputs, data.n_outputs, card
    )
    report.fields.update(
        package_dir=str(package_dir),
        package_sha256=digest,
        model_card=str(package_dir / model_card.CARD_JSON),
    )
    if config.package_uri:
        from trainer.remote import upload_package

        stored = upload_package(config, package_dir, digest)
        report.fields["package_uri"] = stored
        reporter.event("package-stored", uri=stored)
    reporter.event(
        "packaged", path=str(package_dir), sha256=digest, export=meta["export"]["status"]
    )
    if not passed:
        report.status, report.code = "gated", EXIT_GATED
        failed = [f"{g['metric']} ({g['where']})" for g in gates if not g["passed"]]
        reporter.event("gated", failed=failed, message="a gate failed: nothing registered")
        return
    if registry is not None:
        _register(config, registry, package_dir, meta, promotion, reporter, report)
    report.status, report.code = "succeeded", EXIT_OK


def _open_registry(config: RunConfig) -> Any:
    from trainer.registry import open_registry

    assert config.registry is not None
    try:
        return open_registry(config.registry)
    except Exception as error:
        raise TrainerError(f"opening the registry failed: {error}") from error


def _promotion(
    config: RunConfig, registry: Any, found: dict[str, float], split: Any
) -> dict[str, Any] | None:
    """The champion gate's decision; None when no alias is moved or no champion gate is set."""
    target = config.registry
    if target is None or not target.alias or target.champion is None:
        return None
    from trainer.champion import decide

    try:
        return decide(config, registry, found, split)
    except TrainerError:
        raise
    except Exception as error:
        raise TrainerError(
            f"comparing with the version alias {target.alias!r} names failed: {error}"
        ) from error


def _register(
    config: RunConfig,
    registry: Any,
    package_dir: Path,
    meta: dict[str, Any],
    promotion: dict[str, Any] | None,
    reporter: Reporter,
    report: Report,
) -> None:
    from trainer.card import CARD_JSON

    target = config.registry
    assert target is not None
    started = time.monotonic()
    promote = promotion is None or bool(promotion["promote"])
    tags = dict(target.tags)
    tags["pipeform.model_card"] = f"package/{CARD_JSON}"
    if promotion is not None:
        tags["pipeform.promoted"] = "true" if promote else "false"
        tags["pipeform.promotion"] = str(promotion["reason"])[:4000]
    try:
        version = registry.register(
            package_dir, target.model, run_id=config.run_id, tags=tags, lineage=meta
        )
        if target.alias and target.promote and promote:
            registry.set_alias(target.model, target.alias, version.version)
    except Exception as error:
        raise TrainerError(f"registering model {target.model!r} failed: {error}") from error
    if target.alias:
        reason = (
            promotion["reason"]
            if promotion is not None
            else f"alias {target.alias!r} moved to v{version.version}"
        )
        report.fields.update(promoted=promote, promotion=reason)
    report.fields.update(model_version=str(version.version), model_uri=version.uri)
    reporter.event(
        "registered",
        model=target.model,
        version=version.version,
        alias=target.alias if target.promote and promote else None,
        promoted=promote if target.alias else None,
        promotion=report.fields.get("promotion"),
        uri=version.uri,
        seconds=round(time.monotonic() - started, 4),
    )


def _train(
    config: RunConfig,
    ctx: Any,
    reporter: Reporter,
    stop: checkpoint.StopFlag,
    started: float,
    report: Report,
) -> None:
    from trainer import data as data_module
    from trainer import remote
    from trainer.loop import Trainer

    if ctx.is_main:  # only rank 0 evaluates
        from trainer.evaluation import prefetch

        prefetch(config.evaluation)
    config, mirror = remote.localise(config)  # s3:// inputs fetched and checked
    if mirror is not None and ctx.is_main:
        pulled = mirror.pull()
        if pulled:
            reporter.event("checkpoints-fetched", count=pulled, uri=f"s3://{mirror.remote}")
    data_module.verify_inputs(config.inputs)
    data = data_module.load_data(config.inputs, config.model)
    reporter.event(
        "data",
        train_rows=data.train.rows,
        validation_rows=data.validation.rows,
        features=data.n_inputs,
    )
    trainer = Trainer(config, data, ctx, reporter, stop, started)
    trainer.mirror = mirror
    try:
        outcome = trainer.run()
    finally:
        report.fields.update(
            epochs=trainer.state.epoch,
            steps=trainer.state.global_step,
            first_step_seconds=trainer.first_step_seconds,
            samples_per_second=trainer.samples_per_second(),
            resumed_from=trainer.resumed_from,
        )
    if ctx.is_main:
        _finish(config, outcome, data, ctx, reporter, report)
    else:
        report.status, report.code = "succeeded", EXIT_OK


def _push(config: RunConfig, result: RunResult, finished_at: float, reporter: Reporter) -> None:
    target = config.metrics
    if target is None or not target.pushgateway_url:
        return
    try:
        from trainer.pushmetrics import push_run_metrics
    except ImportError:
        reporter.event("warning", message="trainer.pushmetrics is missing: metrics not pushed")
        return
    try:
        push_run_metrics(
            target,
            run_id=result.run_id,
            status=result.status,
            metrics=dict(result.metrics),
            duration_seconds=result.duration_seconds,
            samples_per_second=result.samples_per_second,
            finished_at=finished_at,
            prior_counts=dict(target.prior_counts),
        )
    except Exception as error:  # never fails the run
        reporter.event("warning", message=scrub(f"pushing metrics failed: {error}"))


def write_result(output_dir: Path, result: RunResult) -> None:
    fsio.write_atomic(
        output_dir / "result.json", (result.model_dump_json(indent=2) + "\n").encode()
    )


def run(config: RunConfig, started: float | None = None) -> int:
    """Run the config; the exit code. Rank 0 writes result.json whatever happens."""
    started = process_started_at() if started is None else started
    rank = int(os.environ.get("RANK", "0") or 0)
    reporter = Reporter(enabled=rank == 0)
    report = Report()
    stop = checkpoint.StopFlag().install()
    ctx: distributed.Context | None = None
    try:
        ctx = distributed.setup(config)
        reporter.event(
            "started", run_id=config.run_id, device=str(ctx.device), world_size=ctx.world_size
        )
        _train(config, ctx, reporter, stop, started, report)
    except Preempted as preempted:
        report.status, report.code = "preempted", preempted_exit(config.version)
        reporter.event("preempted", checkpoint=preempted.checkpoint)
    except BaseException as error:  # every failure still writes result.json
        report.status = "failed"
        report.code = EXIT_BAD_INPUT if isinstance(error, BadInputError) else EXIT_FAILED
        message = _message(error)
        report.fields["error"] = message
        if rank == 0 or not isinstance(error, TrainerError):
            prefix = f"trainer (rank {rank})" if rank else "trainer"
            print(f"{prefix}: error: {message}", file=sys.stderr, flush=True)
        if os.environ.get(DEBUG_ENV) == "1":
            traceback.print_exc()
        if not isinstance(error, Exception):  # KeyboardInterrupt, SystemExit
            report.code = EXIT_FAILED
    finally:
        stop.restore()
        reporter.close()
    if rank == 0:
        finished_at = time.time()
        result = report.result(config, round(finished_at - started, 4))
        try:
            write_result(Path(config.output_dir), result)
        except OSError as error:
            print(
                f"trainer: error: cannot write result.json in {config.output_dir}: {error}",
                file=sys.stderr,
            )
            report.code = EXIT_FAILED
        _terminate(config, result)
        _push(config, result, finished_at, reporter)
        reporter.event(
            "finished", status=result.status, exit_code=report.code, seconds=result.duration_seconds
        )
    if ctx is not None:
        distributed.teardown(ctx)
    return report.code


def _terminate(config: RunConfig, result: RunResult) -> None:
    """The compact result at the pod's termination message path, when the config names one."""
    if not config.termination_message_path:
        return
    from trainer.termination import write_message

    try:
        write_message(config.termination_message_path, result)
    except OSError as error:  # Kubernetes then falls back to the log's tail
        print(f"trainer: warning: cannot write the termination message: {error}", file=sys.stderr)


def _message(error: BaseException) -> str:
    if isinstance(error, TrainerError):
        text = str(error)
    elif isinstance(error, KeyboardInterrupt):
        text = "interrupted"
    else:
        detail = str(error).splitlines()[0] if str(error) else ""
        text = f"{type(error).__name__}: {detail}".rstrip(": ")
    return scrub(" ".join(text.split()))
