"""One TrainingJob run on the cluster: the local provider's planning, a Job as the attempt.

``ClusterRuns`` is the local provider's TrainingJob handler (fingerprints, retrain
policies, adoption of a finished run, promotion, run records under the data directory,
``build_run_config``) with one method replaced: ``_train``, which here renders the run
(``training_render``), applies its ConfigMap and Job (or PyTorchJob) by server-side
apply, and waits for it. The run record is written before the Job exists and names it,
so a pipeform killed while it waits finds the record on the next apply and adopts the
running Job (same run id, same object name: the apply is a no-op) instead of starting a
second one. The Job retries by itself (``backoffLimit``); preempted pods (the
``DisruptionTarget`` condition, or exit 143) are recorded as preempted attempts and never
counted; every attempt reads the same ConfigMap, so it resumes from the same checkpoint
directory.

Waiting polls the Job and its pods every ``pollSeconds`` and reports a progress line as
it changes; Ctrl-C stops the waiting, not the Job. With ``apply --no-wait`` the run is
left recorded as running: a later plan shows its outcome as a change, and the next
apply records it (adopting the Job, which is then finished).
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

from providers.base import JSON, ApplyRequest, PermanentError, PlanRequest, report_progress
from providers.kubernetes import objects
from providers.kubernetes import training_render as render
from providers.kubernetes import training_status as status
from providers.kubernetes.client import RESOURCES, Call
from providers.local import executor, files, promotion
from providers.local import training as local
from providers.local import training_runs as runs
from providers.local.kind import inner_spec
from providers.local.training_config import (
    UNKNOWN,
    RunPlace,
    build_run_config,
    check_tables,
    max_duration,
    resources_of,
)
from reconciler.diagnostics import Diagnostic

if TYPE_CHECKING:
    from providers.kubernetes.training import TrainingJobHandler

LOG_LINES = 20
SPLITS = ("train", "validation")
#: how often the wait looks for Ctrl-C between polls
TICK_SECONDS = 0.05


class ClusterRuns(local.TrainingJobHandler):
    """The local TrainingJob handler whose runs are Jobs on the cluster."""

    def __init__(self, settings: Any, cluster: TrainingJobHandler) -> None:
        super().__init__(settings)
        self.cluster = cluster

    def validate(self, ctx: Any, spec: JSON) -> list[Diagnostic]:
        return promotion.validate(self.settings, ctx.address, inner_spec(spec))

    def _train(
        self,
        request: ApplyRequest,
        fs: JSON,
        inputs: JSON,
        fingerprint: str,
        store: runs.RunStore,
        prior_runs: list[JSON],
    ) -> JSON:
        ctx, spec = request.ctx, inner_spec(request.spec)
        cluster = self.cluster
        asked = resources_of(spec, self.settings)
        namespace = cluster.namespace_of(spec, request.upstream)
        check_tables(ctx, spec, fs, self.settings)
        cluster.check_run(spec, namespace, asked, request.upstream)
        image = cluster.image_reference()
        record = self._resumable(store, fingerprint)
        if record is None:  # a new Job: it must fit (an adopted one is counted already)
            cluster.check_quota(
                ctx.address, spec, namespace, asked, request.upstream, applying=True
            )
            record = store.new(fingerprint, inputs, asked.as_output())
        run_id = str(record["runId"])
        said = store.result(run_id)
        if record.get("cluster") and said is not None and said.status in ("succeeded", "gated"):
            # it finished while no pipeform waited (--no-wait, a killed apply): the trainer's
            # result.json is on the volume, whether or not its Job is still there
            return Wait(cluster, store, record, {}, spec).finish_recorded(said.status)
        place = RunPlace(run_id, store.run_dir(run_id))
        config = build_run_config(
            ctx, request.spec, fs, self.settings, place, store.prior_counts(prior_runs), image
        )
        mount = cluster.mount_path()
        pod = render.pod_config(config, self.settings.data_dir, mount)
        files.write_json(place.config_path, pod.model_dump(mode="json"), 0o600)
        run = cluster.run_manifests(ctx, spec, namespace, run_id, pod, asked, request.upstream)
        manifests = [
            objects.owned(render.config_map(run), ctx),
            objects.owned(render.workload(run), ctx),
        ]
        workload = manifests[1]
        record["image"] = image
        record["cluster"] = {"namespace": namespace, "kind": workload["kind"], "name": run.name}
        store.save(record)  # the Job's name is on disk before the Job exists
        for manifest in manifests:
            cluster.claim_or_adopt(ctx, manifest)
        for manifest in manifests:
            cluster.client.apply(manifest, force=request.force_conflicts)
        if not request.wait:
            report_progress(
                ctx.address,
                {
                    "event": "waiting",
                    "message": f"{workload['kind']} {namespace}/{run.name} started; not waiting "
                    "(apply --no-wait): a later plan or refresh shows its outcome",
                },
            )
            return record
        Wait(cluster, store, record, workload, spec).run()
        return record

    def _resumable(self, store: runs.RunStore, fingerprint: str) -> JSON | None:
        """The newest run of these inputs still running (its Job adopted); other running
        runs are abandoned and their Jobs deleted."""
        chosen = None
        for record in reversed(store.running()):
            if chosen is None and record.get("fingerprint") == fingerprint:
                chosen = record
                continue
            record["status"] = "abandoned"
            store.save(record)
            self.cluster.delete_run_objects(store.ctx, record)
        return chosen


def preview(
    cluster: TrainingJobHandler, request: PlanRequest, namespace: str, asked: Any
) -> list[JSON] | None:
    """The manifests an apply will make, for ``plan --json`` (secrets are references
    already): what only apply knows shown as ``(known after apply)``, as Terraform shows
    it: the run id, which only apply draws; the run config in the ConfigMap while the
    FeatureSet is not materialised (its tables are the config's inputs); the namespace
    while a new Quota chooses it. None when the Workspace lacks what a run needs."""
    spec = inner_spec(request.desired_spec)
    upstream = request.upstream.get(f"FeatureSet/{spec.get('features')}") or {}
    known = isinstance(upstream.get("id"), str) and upstream["id"] != UNKNOWN
    ctx, settings = request.ctx, cluster.local_settings
    store = runs.RunStore(settings, ctx)
    place = RunPlace(UNKNOWN, store.job_dir / UNKNOWN)
    if _quota_pending(spec, request.upstream):
        namespace = UNKNOWN
    try:
        image = cluster.image_reference()
        fs = upstream if known else _featureset_to_come(settings.data_dir)
        config = build_run_config(ctx, request.desired_spec, fs, settings, place, {}, image)
        pod = render.pod_config(config, settings.data_dir, cluster.mount_path())
        run = cluster.run_manifests(ctx, spec, namespace, UNKNOWN, pod, asked, request.upstream)
    except (PermanentError, ValueError, KeyError, TypeError):
        return None
    run = dataclasses.replace(run, name=f"{render.object_name(ctx.name, 'x')[:-2]}-{UNKNOWN}")
    config_map = render.config_map(run)
    if not known:
        config_map["data"] = {name: UNKNOWN for name in config_map["data"]}
    return [objects.owned(config_map, ctx), objects.owned(render.workload(run), ctx)]


def _quota_pending(spec: JSON, upstream: Any) -> bool:
    """Whether the job's Quota is to be made (or changed) by this apply, so that the
    namespace it puts the job in is not known yet."""
    quota = spec.get("quota")
    if not quota:
        return False
    found = (upstream.get(f"Quota/{quota}") or {}).get("namespace")
    return found == UNKNOWN


def _featureset_to_come(data_dir: Any) -> JSON:
    """Stand-in outputs of a FeatureSet not yet materialised: enough to render the run's
    manifests, whose config (the only part that reads them) the preview then hides."""
    where = data_dir / "featuresets" / "pending"
    tables = {split: {"path": str(where / f"{split}.parquet"), "sha256": ""} for split in SPLITS}
    return {"id": UNKNOWN, **tables, "transform": {"path": str(where / "transform.json")}}


class Wait:
    """Watch one run's Job until it finishes; record each pod's end as an attempt."""

    def __init__(
        self,
        cluster: TrainingJobHandler,
        store: runs.RunStore,
        record: JSON,
        workload: JSON,
        spec: JSON,
    ) -> None:
        self.cluster, self.store, self.record, self.spec = cluster, store, record, spec
        placed = record.get("cluster") or {}
        self.kind = str(workload.get("kind") or placed.get("kind"))
        metadata = workload.get("metadata") or placed
        self.namespace, self.name = str(metadata["namespace"]), str(metadata["name"])
        self.resource = RESOURCES[
            "pytorchjobs.kubeflow.org" if self.kind == "PyTorchJob" else "jobs.batch"
        ]
        self.address = store.ctx.address
        self.shown = f"{self.kind} {self.namespace}/{self.name}"

    def run(self) -> None:
        started_interrupts = executor.interrupts()
        last_line = ""
        poll = max(0.05, float(self.cluster.settings.poll_seconds))
        while True:
            live = self.cluster.client.get(self.resource, self.namespace, self.name)
            if live is None:
                self.store.save(self.record)
                raise PermanentError(
                    f"{self.address}: {self.shown} was deleted while pipeform waited for it; "
                    f"run {self.record['runId']} stays recorded as running, and the next apply "
                    "starts its Job again (resuming from its newest checkpoint)"
                )
            pods = self.pods()
            self.record_attempts(live, pods)
            progress = status.progress_of(live, pods)
            if progress.line != last_line:
                report_progress(self.address, {"event": "waiting", "message": progress.line})
                last_line = progress.line
            if progress.finished:
                self.finish(live, pods, progress)
                return
            deadline = time.monotonic() + poll
            while time.monotonic() < deadline:
                if executor.interrupts() != started_interrupts:
                    self.store.save(self.record)
                    said = (
                        f"interrupted: pipeform stopped waiting, but {self.shown} keeps "
                        "running on the cluster; a later plan or refresh shows its outcome, "
                        "and the next apply records it"
                    )
                    # a line now too: the main thread is going down with the Ctrl-C
                    report_progress(
                        self.address,
                        {
                            "event": "waiting",
                            "message": f"Ctrl-C: stopped waiting; {self.shown} keeps running",
                        },
                    )
                    raise PermanentError(f"{self.address}: {said}")
                time.sleep(TICK_SECONDS)

    def pods(self) -> list[status.PodView]:
        selector = status.pod_selector(self.kind, self.name)
        items = self.cluster.client.list(RESOURCES["pods"], self.namespace, selector)
        return status.pods_of(items)

    def record_attempts(self, live: JSON, pods: list[status.PodView]) -> None:
        """Each pod that ended is one attempt (a PyTorchJob's Master stands for the run;
        its restarts are preemptions); preempted ones are not failures."""
        seen = {a.get("pod") for a in self.record["attempts"]}
        changed = False
        restart = status.restart_of(live) if self.kind == "PyTorchJob" else None
        if restart is not None and f"restart:{restart}" not in seen:
            attempt = runs.start_attempt(self.record)
            attempt["pod"] = f"restart:{restart}"
            runs.finish_attempt(self.record, "preempted", 0.0, None, None)
            report_progress(
                self.address,
                {
                    "event": "waiting",
                    "message": f"{self.shown} restarting its pods (a retryable exit such as "
                    "a preemption's 143) from the same checkpoint, not counted against retries",
                },
            )
            changed = True
        if self.kind == "PyTorchJob":  # a retryable exit (128-255) is the restart above
            pods = [
                p
                for p in pods
                if p.role == "master" and not (p.exit_code is not None and p.exit_code >= 128)
            ]
        for pod in pods:
            if not pod.finished or pod.uid in seen:
                continue
            state = (
                "succeeded"
                if pod.phase == "Succeeded"
                else "preempted"
                if pod.preempted
                else "gated"
                if pod.exit_code == 4
                else "failed"
            )
            attempt = runs.start_attempt(self.record)
            attempt["pod"] = pod.uid
            attempt["podName"] = pod.name
            runs.finish_attempt(self.record, state, 0.0, pod.exit_code, None)
            if state == "failed":
                self.record["failures"] = int(self.record.get("failures") or 0) + 1
            if state == "preempted":
                report_progress(
                    self.address,
                    {
                        "event": "waiting",
                        "message": f"pod {pod.name} preempted ({pod.reason or 'exit 143'}); "
                        "the Job starts another from the same checkpoint, not counted "
                        "against retries",
                    },
                )
            changed = True
        self.record["status"] = "running"
        if changed:
            self.store.save(self.record)

    def finish(self, live: JSON, pods: list[status.PodView], progress: status.Progress) -> None:
        message = status.message_of(status.result_pod(live, pods))
        run_id = str(self.record["runId"])
        if message is not None and message.get("run_id") == run_id:
            self.cluster.keep_result(self.store, run_id, message)
        result = self.store.result(run_id)
        said = result.status if result is not None else None
        if progress.state == "succeeded" and said == "succeeded":
            self.finish_run("succeeded")
            return
        if said == "gated":
            self.finish_run("gated")
            raise PermanentError(f"{self.address}: {runs.gate_text(result)}; {self.where()}")
        if progress.reason == "DeadlineExceeded":
            self.finish_run("timed-out")
            raise PermanentError(
                f"{self.address}: {self.shown} ran past spec.maxDuration "
                f"({max_duration(self.spec):g}s, activeDeadlineSeconds) and was stopped; raise "
                f"spec.maxDuration or make the run shorter; {self.where()}"
            )
        self.finish_run("failed")
        failing = [p for p in pods if p.phase == "Failed"]
        why = progress.reason or "it failed"
        if progress.state == "succeeded":
            why = "the Job succeeded but the trainer left no result (no termination message)"
        raise PermanentError(
            f"{self.address}: training failed: {self.shown}: {why}"
            + (f" ({progress.message})" if progress.message else "")
            + (f"; the trainer said: {result.error}" if result is not None and result.error else "")
            + f"; {self.where()}"
            + self.log_tail(failing[-1] if failing else None)
        )

    def finish_recorded(self, said: str) -> JSON:
        """Record a run whose result the trainer left on the volume; the record."""
        if said == "gated":
            self.finish_run("gated")
            result = self.store.result(str(self.record["runId"]))
            raise PermanentError(f"{self.address}: {runs.gate_text(result)}; {self.where()}")
        self.finish_run("succeeded")
        return self.record

    def finish_run(self, state: str) -> None:
        self.record["status"] = state
        self.store.save(self.record)
        self.store.count_finished(state, [])

    def where(self) -> str:
        return f"run {self.record['runId']}, {self.shown}"

    def log_tail(self, pod: status.PodView | None) -> str:
        if pod is None:
            return ""
        try:
            text = pod_log(self.cluster, self.namespace, pod.name, LOG_LINES)
        except Exception as exc:  # the log is a courtesy: never hide the failure itself
            return f". (Its log could not be read: {exc})"
        lines = [line for line in text.splitlines() if line.strip()][-LOG_LINES:]
        shown = "\n  ".join(lines) or "(the pod printed nothing)"
        code = f", exit {pod.exit_code}" if pod.exit_code is not None else ""
        return f". Last lines of pod {pod.name}{code}:\n  {shown}"


def pod_log(cluster: TrainingJobHandler, namespace: str, pod: str, lines: int) -> str:
    """The last lines of a pod's log (``pods/log``), as text."""
    from providers.kubernetes.client import failure

    client = cluster.client
    api = client.api()
    call = Call("get", RESOURCES["pods"], namespace, pod, "log")
    path = call.resource.path(namespace, pod, "log")
    serialized = api.param_serialize(
        "GET",
        path,
        query_params=[("tailLines", str(lines))],
        header_params={"Accept": "text/plain"},
        auth_settings=["BearerToken"],
    )
    try:
        response = api.call_api(*serialized, _request_timeout=(10.0, 60.0))
        data = response.read()
    except Exception as exc:
        raise client.unreachable(exc, call) from None
    if not 200 <= int(response.status) < 300:
        raise failure(client, call, int(response.status), {})
    return bytes(data or b"").decode("utf-8", "replace")
