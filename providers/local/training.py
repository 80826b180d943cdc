"""TrainingJob on the local provider: plan retrains by fingerprint, train in a local process.

``plan`` content-addresses a run: its inputs fingerprint is a hash of the job's spec, the
FeatureSet's id and the trainer's code digest, so nothing retrains unless one of them
moved (``retrain: onInputChange``); ``never`` stops following inputs once trained;
``always`` retrains on every apply. ``create`` and ``update`` run the trainer through the
executor (``providers.local.executor``): with retries that resume from the newest
checkpoint, a hard stop at ``maxDuration``, the Quota's limits and the machine's training
slots. A run that finished with the same fingerprint (a create retried after pipeform
crashed) is adopted instead of trained again. Registered model versions are history:
deleting a TrainingJob removes its run directories, never a registry version.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from providers.base import (
    JSON,
    ApplyRequest,
    ApplyResponse,
    DeleteRequest,
    ImportRequest,
    ImportResponse,
    PermanentError,
    PlanRequest,
    PlanResponse,
    ReadRequest,
    ReadResponse,
    ResourceContext,
)
from providers.local import container, executor, files, promotion, retrain
from providers.local import training_runs as runs
from providers.local.kind import KindHandler, inner_spec
from providers.local.training_attempts import Attempts
from providers.local.training_config import (
    NOT_BUILT_NODES,
    UNKNOWN,
    RunPlace,
    build_run_config,
    canonical_hash,
    check_local_machine,
    check_quota,
    check_tables,
    featureset_outputs,
    resources_of,
    run_environment,
)
from reconciler.diagnostics import Diagnostic, error, warning

OUTPUTS = (
    "runId",
    "status",
    "metrics",
    "modelVersion",
    "modelUri",
    "promoted",
    "promotion",
    "modelCard",
    "package",
    "durationSeconds",
    "runs",
    "featureSet",
    "aliasHistory",
    "retrainTriggers",
)


def trainer_digest() -> str:
    """The trainer's code digest (standard library only: planning never imports torch)."""
    from trainer.version import trainer_code_digest

    return trainer_code_digest()


def run_inputs(spec: JSON, featureset_id: str) -> JSON:
    """What a run's result depends on, each part content-addressed."""
    return {
        "spec": canonical_hash(spec),
        "featureSet": featureset_id,
        "trainerCode": trainer_digest(),
    }


def fingerprint_of(inputs: JSON) -> str:
    text = json.dumps(inputs, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _only_features_moved(before: Any, after: JSON) -> bool:
    """Whether the trained run differs from these inputs in its features alone."""
    return isinstance(before, dict) and all(
        before.get(k) == after[k] for k in ("spec", "trainerCode")
    )


def _why(before: JSON, after: JSON) -> str | None:
    """Which input of a trained run moved, in words."""
    moved = []
    if before.get("featureSet") != after["featureSet"]:
        moved.append(f"features changed ({before.get('featureSet')} -> {after['featureSet']})")
    if before.get("trainerCode") != after["trainerCode"]:
        moved.append("trainer code changed")
    if before.get("spec") != after["spec"]:
        moved.append("spec changed")
    return "retrain: " + ", ".join(moved) if moved else None


class TrainingJobHandler(KindHandler):
    kind = "TrainingJob"
    computed_outputs = OUTPUTS

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        executor.install_interrupt_handler()  # made in the main thread, as providers load

    def validate(self, ctx: ResourceContext, spec: JSON) -> list[Diagnostic]:
        inner = inner_spec(spec)
        found = []
        nodes = (inner.get("distributed") or {}).get("nodes") or 1
        if nodes > 1:
            found.append(
                error(
                    f"spec.distributed.nodes is {nodes}, but the local provider trains on one "
                    f"machine; set nodes: 1 ({NOT_BUILT_NODES})",
                    address=ctx.address,
                )
            )
        if inner.get("image"):
            found.append(
                warning(
                    "spec.image is for container platforms, which no provider here runs yet; "
                    "the local provider runs the bundled trainer (python -m trainer)",
                    address=ctx.address,
                )
            )
        return found + promotion.validate(self.settings, ctx.address, inner)

    # ---- plan -------------------------------------------------------------------------

    def plan(self, request: PlanRequest) -> PlanResponse:
        spec = inner_spec(request.desired_spec)
        policy = spec.get("retrain") or "onInputChange"
        if policy == "always":
            return PlanResponse(
                unknown_outputs=list(OUTPUTS),
                inputs_fingerprint=f"always:{uuid.uuid4().hex}",
                reason_detail="retrain: always",
            )
        trained = self._trained(request.ctx, request.prior_outputs)
        if policy == "never" and trained is not None:
            changed = request.prior_spec is not None and inner_spec(request.prior_spec) != spec
            return PlanResponse(unknown_outputs=list(OUTPUTS) if changed else [])
        upstream = request.upstream.get(f"FeatureSet/{spec.get('features')}") or {}
        featureset_id = upstream.get("id")
        features = featureset_id if isinstance(featureset_id, str) else UNKNOWN
        inputs = run_inputs(spec, features)
        fingerprint = fingerprint_of(inputs)
        # what apply will find: the job's newest successful run, if it trained these inputs
        store = runs.RunStore(self.settings, request.ctx)
        done = store.succeeded(fingerprint) if features != UNKNOWN else None
        adopts = f"run {str(done['runId'])[:12]} (no training)" if done is not None else None
        if trained is not None and trained.get("fingerprint") == fingerprint:
            return PlanResponse(
                inputs_fingerprint=fingerprint,
                adopts=adopts,
                pending=promotion.release(self.settings, spec, request.prior_outputs),
                waiting=promotion.waiting(self.settings, spec, request.prior_outputs),
            )
        before = (trained or {}).get("inputs")
        trigger = None
        drift_policy = retrain.policy_of(spec)
        if drift_policy and trained is not None and _only_features_moved(before, inputs):
            decision = retrain.decide(self.settings, spec, drift_policy, trained)
            if not decision.retrain:  # new snapshot and features, the same model
                return PlanResponse(
                    waiting=promotion.waiting(self.settings, spec, request.prior_outputs)
                )
            trigger = f"retrain: {decision.why}"
        return PlanResponse(
            unknown_outputs=list(OUTPUTS),
            inputs_fingerprint=fingerprint,
            reason_detail=_why(before, inputs) if isinstance(before, dict) else None,
            adopts=adopts,
            trigger=trigger,
        )

    def _trained(self, ctx: ResourceContext, outputs: JSON) -> JSON | None:
        """The run record behind the recorded outputs, if it succeeded and is still there."""
        run_id = outputs.get("runId")
        if not isinstance(run_id, str) or outputs.get("status") != "succeeded":
            return None
        store = runs.RunStore(self.settings, ctx)
        try:
            record = store.load(run_id)
        except PermanentError:
            return None
        return record if record is not None and record.get("status") == "succeeded" else None

    # ---- read / delete ----------------------------------------------------------------

    def owned_records(self) -> tuple[str, ...]:
        return ("runs/*/*/run.json",)

    def read(self, request: ReadRequest) -> ReadResponse:
        run_id = request.outputs.get("runId") or request.external_id
        if not isinstance(run_id, str) or not run_id:
            return ReadResponse(exists=False)
        store = runs.RunStore(self.settings, request.ctx)
        try:
            result = store.result(run_id)
        except PermanentError:  # not a run id this provider could have made
            return ReadResponse(exists=False)
        if result is None or result.status not in ("succeeded", "gated"):
            return ReadResponse(exists=False)
        return ReadResponse(True, _observed(run_id, result), dict(request.outputs), run_id)

    def delete(self, request: DeleteRequest) -> None:
        # Registered versions stay in the registry: they are the model's history.
        store = runs.RunStore(self.settings, request.ctx)
        for record in store.running():
            if isinstance(record.get("pid"), int):
                executor.stop_orphan(record["pid"], record.get("processStart"))
        store.remove_ours()

    def import_(self, request: ImportRequest) -> ImportResponse:
        """Adopt a run of this job that succeeded (its id is the run directory's name):
        its outputs and model version become the resource's, as if this state trained it."""
        store = runs.RunStore(self.settings, request.ctx)
        record = store.adopt(request.id)
        featureset = (record.get("inputs") or {}).get("featureSet")
        adopted = _response(store, record, {"id": featureset}, [])
        return ImportResponse(
            adopted.observed,
            None,
            adopted.outputs,
            adopted.external_id,
            inputs_fingerprint=record.get("fingerprint"),
        )

    # ---- create / update --------------------------------------------------------------

    def create(self, request: ApplyRequest) -> ApplyResponse:
        return self._apply(request)

    def update(self, request: ApplyRequest) -> ApplyResponse:
        return self._apply(request)

    def _apply(self, request: ApplyRequest) -> ApplyResponse:
        ctx, spec = request.ctx, inner_spec(request.spec)
        fs = featureset_outputs(ctx, spec, request.upstream)
        inputs = run_inputs(spec, str(fs["id"]))
        fingerprint = fingerprint_of(inputs)
        store = runs.RunStore(self.settings, ctx)
        prior_runs = [r for r in request.prior_outputs.get("runs") or [] if isinstance(r, dict)]
        if spec.get("retrain") != "always":
            done = store.succeeded(fingerprint)
            if done is not None:  # trained already (a retried create, or inputs back to these)
                return _promote(self, spec, request, _response(store, done, fs, prior_runs))
        record = self._train(request, fs, inputs, fingerprint, store, prior_runs)
        response = _response(store, record, fs, prior_runs)
        if retrain.policy_of(spec) and request.prior_outputs.get("metrics"):
            triggers = retrain.outcome(spec, request.prior_outputs, response.outputs["metrics"])
            response.outputs["retrainTriggers"] = triggers
        return _promote(self, spec, request, response)

    def _train(
        self,
        request: ApplyRequest,
        fs: JSON,
        inputs: JSON,
        fingerprint: str,
        store: runs.RunStore,
        prior_runs: list[JSON],
    ) -> JSON:
        """Run the trainer for these inputs (resuming an interrupted run of them); the run's
        record once it succeeded. Another executor (a cluster) replaces this method."""
        ctx, spec = request.ctx, inner_spec(request.spec)
        asked = resources_of(spec, self.settings)
        check_local_machine(ctx, asked)
        jobs = check_quota(ctx, spec, request.upstream, self.settings, asked)
        check_tables(ctx, spec, fs, self.settings)
        env, secrets = run_environment(ctx, spec, self.settings, request.upstream, asked)
        image = self._image()
        reference = image.reference if image is not None else None
        record = _resumable(store, fingerprint) or store.new(fingerprint, inputs, asked.as_output())
        place = RunPlace(str(record["runId"]), store.run_dir(str(record["runId"])))
        config = build_run_config(
            ctx,
            request.spec,
            fs,
            self.settings,
            place,
            store.prior_counts(prior_runs),
            reference,
        )
        files.write_json(place.config_path, config.model_dump(mode="json"), 0o600)
        boxed = None
        if image is not None:
            record["image"] = image.reference
            boxed = container_run(self.settings, spec, config, place, asked, image.id)
        with self._slots(ctx, spec, jobs):
            attempt = Attempts(store, record, place, env, secrets, spec, asked, prior_runs, boxed)
            attempt.run()
        return record

    def _image(self) -> container.Image | None:
        """The trainer image (container executor), or None (a local process)."""
        if self.settings.executor != "container":
            return None
        return container.find_image(self.settings.image)

    @contextlib.contextmanager
    def _slots(self, ctx: ResourceContext, spec: JSON, quota_jobs: int | None) -> Iterator[None]:
        """The Quota's concurrent-jobs slot (when it sets one), then the machine's."""
        slots = runs.runs_dir(self.settings) / ".slots"
        with contextlib.ExitStack() as held:
            if quota_jobs is not None:
                quota = files.check_name(str(spec["quota"]), "Quota name")
                held.enter_context(
                    executor.slot(
                        slots / f"quota-{quota}", quota_jobs, f"Quota/{quota}", ctx.address
                    )
                )
            held.enter_context(
                executor.slot(
                    slots / "machine", self.settings.max_concurrent_jobs, "training", ctx.address
                )
            )
            yield


def container_run(
    settings: Any, spec: JSON, config: Any, place: RunPlace, asked: Any, image: str
) -> container.ContainerRun:
    """What a run's container mounts and is given (see providers.local.container)."""
    inputs = config.inputs
    read_only = [Path(inputs.train.path), Path(inputs.validation.path)]
    if inputs.transform_path:
        read_only.append(Path(inputs.transform_path))
    read_write = []
    if config.registry is not None and config.registry.type == "local":
        registry = Path(config.registry.uri)
        files.ensure_dir(registry)
        read_write.append(registry)
    workspace = settings.workspace
    endpoint = bool(workspace.get("pushgatewayUrl")) or (
        (workspace.get("registry") or {}).get("type") == "mlflow"
    )
    return container.ContainerRun(
        image=image,
        name=f"pipeform-{place.run_id}",
        config=place.config_path,
        run_dir=place.run_dir,
        read_only=tuple(read_only),
        read_write=tuple(read_write),
        variables=container.variables(list(spec.get("env") or {})),
        network=endpoint,
        cpu=asked.cpu,
        memory_gib=asked.memory_gib,
        gpus=asked.gpus,
        workers=asked.workers,
    )


def _promote(
    handler: TrainingJobHandler, spec: JSON, request: ApplyRequest, response: ApplyResponse
) -> ApplyResponse:
    """The response with the promotion decided (the alias moved, or why it waits)."""
    version = response.outputs.get("modelVersion")
    said = response.outputs.get("promotion")
    said = str(said) if isinstance(said, str) and said else None
    held = said if response.outputs.get("promoted") is False else None
    decided = promotion.after_run(
        handler.settings, spec, request.prior_outputs, version, held, said
    )
    return ApplyResponse(
        {**response.outputs, **decided},
        response.external_id,
        response.observed,
        promotion.note(decided.get("promotion")),
    )


def _observed(run_id: str, result: Any) -> JSON:
    return {
        "runId": run_id,
        "status": result.status,
        "modelVersion": _version(result.model_version),
    }


def _version(value: str | None) -> int | None:
    return int(value) if value is not None and str(value).isdigit() else None


def _response(
    store: runs.RunStore, record: JSON, fs: JSON, prior_runs: list[JSON]
) -> ApplyResponse:
    run_id = str(record["runId"])
    result = store.result(run_id)
    if result is None:  # still running (a cluster job applied without waiting)
        from trainer.config import RunResult

        result = RunResult(run_id=run_id, status="failed")
    outputs = {
        "runId": run_id,
        "status": record["status"],
        "metrics": dict(result.metrics),
        "modelVersion": _version(result.model_version),
        "modelUri": result.model_uri,
        "promoted": result.promoted,
        "promotion": result.promotion,
        "modelCard": result.model_card,
        "package": result.package_dir,
        **({"packageUri": result.package_uri} if result.package_uri else {}),
        "durationSeconds": round(runs.elapsed(record), 3),
        "featureSet": fs["id"],
        "runs": runs.history(prior_runs, store.records()),
    }
    observed = _observed(run_id, result)
    if record["status"] == "running":
        observed = {"runId": run_id, "status": "running", "modelVersion": None}
    return ApplyResponse(outputs, run_id, observed)


def _resumable(store: runs.RunStore, fingerprint: str) -> JSON | None:
    """The newest interrupted run of these inputs (its process stopped), to resume; older or
    other interrupted runs are marked abandoned."""
    chosen = None
    for record in reversed(store.running()):
        if isinstance(record.get("pid"), int):
            executor.stop_orphan(record["pid"], record.get("processStart"))
        attempts = record.get("attempts") or []
        if attempts and attempts[-1].get("finishedAt") is None:
            started = _seconds_since(str(attempts[-1]["startedAt"]))
            last_output = _seconds_since_mtime(store.log_path(str(record["runId"])))
            lasted = max(0.0, started - last_output) if last_output is not None else 0.0
            runs.finish_attempt(record, "failed", lasted, None, None)
        if chosen is None and record.get("fingerprint") == fingerprint:
            chosen = record
        else:
            record["status"] = "abandoned"
        store.save(record)
    return chosen


def _seconds_since(iso: str) -> float:
    from datetime import datetime

    return time.time() - datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _seconds_since_mtime(path: Path) -> float | None:
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return None
