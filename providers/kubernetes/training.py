"""TrainingJob on the kubernetes provider: a batch/v1 Job, or a PyTorchJob across nodes.

Planning is the local provider's (``ClusterRuns``, in ``training_run``): the same
fingerprints, retrain policies, promotion and run records on the data directory, which
the pods reach through the Workspace's PersistentVolumeClaim. This handler adds what the
cluster needs around it:

- ``validate``: the trainer image by digest, the data volume, the gpuType's node mapping;
- ``plan``: a job about to train is refused when it can never fit its Quota's live
  ResourceQuota (``status.hard``), and says so when it waits for others (``status.used``);
- ``read`` (and the provider's ``read_batch``, one LIST per kind and namespace): a run
  recorded as running is its Job: gone is drift (the next apply starts it again), a
  change by hand to what pipeform set is drift, a finished Job shows its outcome; a run
  that finished is its record (a Job removed by ``ttlSecondsAfterFinished`` is no drift);
- ``delete``: the run's Jobs and ConfigMaps (pods with them), then the run records.
The namespace is the Quota's (its ResourceQuota's) when the job names one, else the
Workspace's. Secrets reach the pods as ``secretKeyRef``: the Secret's Kubernetes name
(its recorded ``name`` output, else the Secret's own) and key (``key``, else ``value``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from providers.base import (
    JSON,
    ApplyRequest,
    ApplyResponse,
    CheckRequest,
    DeleteRequest,
    ImportRequest,
    ImportResponse,
    PermanentError,
    PlanRequest,
    PlanResponse,
    ProviderError,
    ReadRequest,
    ReadResponse,
    ResourceContext,
)
from providers.kubernetes import objects
from providers.kubernetes import training_render as render
from providers.kubernetes import training_status as status
from providers.kubernetes.client import RESOURCES, KubeClient
from providers.kubernetes.kind import Found, KubeHandler
from providers.kubernetes.objects import ObjectRef
from providers.kubernetes.settings import DEFAULT_MOUNT_PATH, KubeSettings
from providers.local import files
from providers.local import training_runs as runs
from providers.local.kind import inner_spec
from providers.local.settings import LocalSettings
from providers.local.training import OUTPUTS
from providers.local.training_config import (
    UNKNOWN,
    JobResources,
    max_duration,
    resources_of,
)
from reconciler.diagnostics import Diagnostic, error

SECRET_KEY = "value"
FINISHED = ("succeeded", "gated")


class TrainingJobHandler(KubeHandler):
    kind = "TrainingJob"
    computed_outputs = OUTPUTS
    primary = "jobs.batch"

    def __init__(self, settings: KubeSettings, client: KubeClient) -> None:
        super().__init__(settings, client)
        from providers.kubernetes.training_run import ClusterRuns

        self.local_settings = LocalSettings.from_config(settings.local_config, settings.root)
        self.runs = ClusterRuns(self.local_settings, self)

    # --- settings ------------------------------------------------------------------------

    def image_reference(self) -> str:
        image = self.settings.image
        reference = image.reference if image is not None else None
        if reference is None:
            raise PermanentError(
                "a TrainingJob on the kubernetes provider runs the trainer image by digest; "
                "set providers.kubernetes.image.repository and .digest (make image prints it)"
            )
        return reference

    def mount_path(self) -> str:
        volume = self.settings.volume
        return volume.mount_path if volume is not None else DEFAULT_MOUNT_PATH

    def namespace_of(self, spec: JSON, upstream: Mapping[str, JSON]) -> str:
        quota = spec.get("quota")
        if quota:
            found = (upstream.get(f"Quota/{quota}") or {}).get("namespace")
            if isinstance(found, str) and found and found != UNKNOWN:
                return found
        return self.settings.namespace

    def run_manifests(
        self,
        ctx: ResourceContext,
        spec: JSON,
        namespace: str,
        run_id: str,
        config: Any,
        asked: JobResources,
        upstream: Mapping[str, JSON],
    ) -> render.RunManifests:
        """Everything the run's manifests are made of (training_render)."""
        secret_env, plain_env = self.environment(spec, namespace, upstream)
        volume = self.settings.volume
        elastic = (spec.get("distributed") or {}).get("elastic")
        return render.RunManifests(
            name=render.object_name(ctx.name, run_id),
            namespace=namespace,
            run_id=run_id,
            config=config.model_dump(mode="json"),
            asked=asked,
            image=self.image_reference(),
            pull_policy=self.settings.image.pull_policy if self.settings.image else "IfNotPresent",
            placement=render.placement_of(self.settings.gpu_types, asked),
            claim=volume.claim if volume is not None else None,
            mount_path=self.mount_path(),
            secret_env=secret_env,
            plain_env=plain_env,
            retries=int(spec.get("retries", 2)),
            max_duration_seconds=max(1, int(max_duration(spec))),
            ttl_seconds=self.settings.ttl_seconds_after_finished,
            service_account=self.settings.service_account,
            elastic=elastic if isinstance(elastic, dict) else None,
        )

    def environment(
        self, spec: JSON, namespace: str, upstream: Mapping[str, JSON]
    ) -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
        """spec.env as the pods get it: secret references (Secret name, key), plain values."""
        secret_env: dict[str, tuple[str, str]] = {}
        plain_env: dict[str, str] = {}
        for variable, source in (spec.get("env") or {}).items():
            if "secret" in source:
                secret_env[variable] = secret_place(
                    str(source["secret"]), namespace, upstream, f"spec.env.{variable}"
                )
            else:
                plain_env[variable] = str(source.get("value", ""))
        return secret_env, plain_env

    def check_run(
        self, spec: JSON, namespace: str, asked: JobResources, upstream: Mapping[str, JSON]
    ) -> None:
        """What would stop a run's manifests from rendering, before its record is made."""
        self.image_reference()
        render.placement_of(self.settings.gpu_types, asked)
        self.environment(spec, namespace, upstream)

    # --- checks --------------------------------------------------------------------------

    def manifests(
        self, ctx: ResourceContext, document: JSON, upstream: Mapping[str, JSON]
    ) -> list[JSON]:
        """None from the document alone: a run's objects are named after its run id,
        which only apply knows (``run_manifests``)."""
        return []

    def check(self, request: CheckRequest) -> list[Diagnostic]:
        """Before an apply changes anything: a dry-run apply of a ConfigMap like the run's
        in the Workspace's namespace (the API server checks the namespace, authorisation
        and admission, and stores nothing). A Quota's namespace is its Quota's to check."""
        if self.client.unusable is not None or inner_spec(request.spec).get("quota"):
            return []
        ctx = request.ctx
        probe = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": render.object_name(ctx.name, "check"),
                "namespace": self.settings.namespace,
            },
        }
        try:
            self.client.apply(objects.owned(probe, ctx), force=True, dry_run=True)
        except ProviderError as exc:
            return [error(str(exc), address=ctx.address)]
        return []

    def validate(self, ctx: ResourceContext, spec: JSON) -> list[Diagnostic]:
        inner = inner_spec(spec)
        found = list(self.runs.validate(ctx, spec))
        if self.settings.image is None or self.settings.image.reference is None:
            found.append(
                error(
                    "the kubernetes provider runs TrainingJobs in the trainer image by digest, "
                    "and the Workspace names none",
                    address=ctx.address,
                    hint="set providers.kubernetes.image.repository and .digest (make image "
                    "prints the digest; push it with podman push)",
                )
            )
        if self.settings.volume is None:
            found.append(
                error(
                    "the kubernetes provider needs the data volume the pods read features "
                    "from and write runs to",
                    address=ctx.address,
                    hint="set providers.kubernetes.volume.claim (the PersistentVolumeClaim "
                    "holding providers.local.dataDir)",
                )
            )
        asked = resources_of(inner, self.local_settings)
        try:
            render.placement_of(self.settings.gpu_types, asked)
        except PermanentError as exc:
            found.append(error(str(exc), address=ctx.address, path="spec.resources.gpuType"))
        return found

    def check_quota(
        self,
        address: str,
        spec: JSON,
        namespace: str,
        asked: JobResources,
        upstream: Mapping[str, JSON],
        applying: bool = False,
    ) -> str | None:
        """Refuse a job that can never fit its Quota's live ResourceQuota (and, when
        ``applying``, one whose Job the quota refuses now: ``count/jobs.batch``); what it
        waits for when it does not fit now (None when it fits, or there is no live quota)."""
        name = spec.get("quota")
        if not name:
            return None
        recorded = upstream.get(f"Quota/{name}") or {}
        quota_name = recorded.get("name") if isinstance(recorded.get("name"), str) else None
        from providers.kubernetes.quota import live_quota
        from providers.kubernetes.training_quota import quota_fit

        live = live_quota(self.client, namespace, quota_name or str(name))
        if live is None:
            return None

        never, waits, full = quota_fit(live, asked)
        shown = f"ResourceQuota {namespace}/{quota_name or name} (Quota/{name})"
        if never:
            raise PermanentError(
                f"{address}: can never fit {shown}: {'; '.join(never)}; lower "
                "spec.resources or spec.distributed, or raise the Quota"
            )
        if full and applying:
            raise PermanentError(
                f"{address}: {shown} allows no more Jobs now ({'; '.join(full)}); apply again "
                "once one has finished, or raise the Quota's concurrentJobs"
            )
        waits = waits + [f"{f} (the Job waits for a slot)" for f in full]
        if waits:
            return f"{shown} is in use ({'; '.join(waits)}): the pods wait until it frees"
        return None

    # --- plan ----------------------------------------------------------------------------

    def plan(self, request: PlanRequest) -> PlanResponse:
        response = self.runs.plan(request)
        if not response.unknown_outputs:
            return response
        running = self._running_job(request.ctx, response.inputs_fingerprint)
        if running is not None and response.adopts is None:
            response = replace(response, adopts=f"{running} (no new Job)")
        if running is not None and request.prior_outputs.get("status") in FINISHED:
            # refresh saw it finish; an apply records the run (promotion, history)
            response = replace(response, pending=f"record the finished run of {running}")
        spec = inner_spec(request.desired_spec)
        try:
            asked = resources_of(spec, self.local_settings)
            namespace = self.namespace_of(spec, request.upstream)
        except (ValueError, TypeError):
            return response
        waits = self.check_quota(request.ctx.address, spec, namespace, asked, request.upstream)
        if waits is not None:
            detail = f"{response.reason_detail}; {waits}" if response.reason_detail else waits
            response = replace(response, reason_detail=detail)
        if running is None:
            from providers.kubernetes.training_run import preview

            response = replace(response, manifests=preview(self, request, namespace, asked))
        return response

    def _running_job(self, ctx: ResourceContext, fingerprint: str | None) -> str | None:
        """The Job of a run of these inputs that is still running (an apply killed while
        it waited, or --no-wait), which the apply adopts: ``Job ml/name``."""
        if fingerprint is None:
            return None
        for record in runs.RunStore(self.local_settings, ctx).running():
            placed = record.get("cluster") or {}
            if record.get("fingerprint") == fingerprint and placed.get("name"):
                return f"{placed.get('kind')} {placed.get('namespace')}/{placed['name']}"
        return None

    # --- apply ---------------------------------------------------------------------------

    def create(self, request: ApplyRequest) -> ApplyResponse:
        return self._observed(request, self.runs.create(request))

    def update(self, request: ApplyRequest) -> ApplyResponse:
        return self._observed(request, self.runs.update(request))

    def _observed(self, request: ApplyRequest, response: ApplyResponse) -> ApplyResponse:
        """A run left running (--no-wait): its namespace and Job in the outputs, and the
        Job's managed fields in what refresh compares."""
        outputs = dict(response.outputs)
        if outputs.get("status") != "running":
            return response
        run_id = str(outputs.get("runId"))
        record = runs.RunStore(self.local_settings, request.ctx).load(run_id) or {}
        placed = record.get("cluster") or {}
        outputs.update(placed and {"cluster": placed})
        ref = self._ref(placed)
        live = self.client.get(ref.resource, ref.namespace, ref.name) if ref else None
        observed = self._running_observed(run_id, live, inner_spec(request.spec))
        return ApplyResponse(outputs, response.external_id, observed, response.note)

    def claim_or_adopt(self, ctx: ResourceContext, manifest: JSON) -> None:
        ref = ObjectRef.of(manifest)
        live = self.client.get(ref.resource, ref.namespace, ref.name)
        if live is not None:
            objects.claim(live, ctx, ref)

    def keep_result(self, store: runs.RunStore, run_id: str, message: JSON) -> None:
        """The pod's termination message as the run's result.json, unless the trainer's
        own (fuller) one is on the volume already."""
        if store.result(run_id) is not None:
            return
        from trainer.config import RunResult

        fields = {k: message[k] for k in RunResult.model_fields if k in message}
        result = RunResult.model_validate({**fields, "run_id": run_id})
        files.write_json(store.run_dir(run_id) / runs.RESULT, result.model_dump(mode="json"))

    def import_(self, request: ImportRequest) -> ImportResponse:
        return self.runs.import_(request)

    # --- read ----------------------------------------------------------------------------

    def _ref(self, placed: Any) -> ObjectRef | None:
        if not isinstance(placed, dict) or not placed.get("name"):
            return None
        key = "pytorchjobs.kubeflow.org" if placed.get("kind") == "PyTorchJob" else "jobs.batch"
        return ObjectRef(RESOURCES[key], str(placed.get("namespace")), str(placed["name"]))

    def refs(self, request: ReadRequest | DeleteRequest) -> list[ObjectRef]:
        """The Job of a run recorded as running (a run an apply waited for is read from its
        record alone)."""
        ref = self._ref(request.outputs.get("cluster"))
        return [ref] if ref is not None else []

    def respond(self, request: ReadRequest, found: Found) -> ReadResponse:
        refs = self.refs(request)
        if request.outputs.get("status") in FINISHED or not refs:
            recorded = self.runs.read(request)
            # a finished run is its record; one only refresh has seen finish is its Job
            if recorded.exists or not refs or found.get(refs[0]) is None:
                return recorded
        live = found.get(refs[0]) if refs else None
        if live is None:
            return ReadResponse(exists=False)  # deleted by hand: the next apply starts it again
        run_id = str(request.outputs.get("runId"))
        spec = inner_spec(request.spec or {})
        observed = self._running_observed(run_id, live, spec)
        return ReadResponse(True, observed, self._outcome(request, live), refs[0].id)

    def _running_observed(self, run_id: str, live: JSON | None, spec: JSON) -> JSON:
        """A running run as refresh compares it: its state, and the Job's fields that
        pipeform set and someone may change by hand."""
        state = "running"
        managed: JSON = {}
        if live is not None:
            pods: list[status.PodView] = []  # conditions alone say whether it finished
            progress = status.progress_of(live, pods)
            state = progress.state if progress.finished else "running"
            managed = objects.project(self._managed(live.get("kind"), spec), live)
        return {"runId": run_id, "status": state, "modelVersion": None, "job": managed}

    def _managed(self, kind: Any, spec: JSON) -> JSON:
        """The mutable fields pipeform sets on a run's Job, with their values."""
        values = {
            "backoffLimit": int(spec.get("retries", 2)),
            "activeDeadlineSeconds": max(1, int(max_duration(spec))),
            "ttlSecondsAfterFinished": self.settings.ttl_seconds_after_finished,
        }
        if kind == "PyTorchJob":
            return {"spec": {"runPolicy": values}}
        return {"spec": values}

    def _outcome(self, request: ReadRequest, live: JSON) -> JSON:
        """The outputs with a finished Job's outcome (its termination message) folded in."""
        outputs = dict(request.outputs)
        progress = status.progress_of(live, [])
        if not progress.finished:
            return outputs
        metadata = live.get("metadata") or {}
        pods = status.pods_of(
            self.client.list(
                RESOURCES["pods"],
                metadata.get("namespace"),
                status.pod_selector(str(live.get("kind")), str(metadata.get("name"))),
            )
        )
        message = status.message_of(status.result_pod(live, pods)) or {}
        outputs["status"] = message.get("status") or progress.state
        if isinstance(message.get("metrics"), dict):
            outputs["metrics"] = message["metrics"]
        version = str(message.get("model_version") or "")
        outputs["modelVersion"] = int(version) if version.isdigit() else None
        outputs["modelUri"] = message.get("model_uri")
        return outputs

    # --- delete --------------------------------------------------------------------------

    def delete(self, request: DeleteRequest) -> None:
        store = runs.RunStore(self.local_settings, request.ctx)
        for record in store.records():
            self.delete_run_objects(request.ctx, record)
        self.runs.delete(request)

    def delete_run_objects(self, ctx: ResourceContext, record: JSON) -> None:
        """A run's Job (its pods with it) and ConfigMap, when they are still there."""
        ref = self._ref(record.get("cluster"))
        if ref is None:
            return
        config = ObjectRef(RESOURCES["configmaps"], ref.namespace, ref.name)
        for target in (ref, config):
            self._delete_ours(ctx, target)


def secret_place(
    name: str, namespace: str, upstream: Mapping[str, JSON], where: str
) -> tuple[str, str]:
    """The Kubernetes Secret (name, key) in the pod's namespace that a Secret document
    made (its ``secrets`` outputs); refused when it made none there."""
    recorded = upstream.get(f"Secret/{name}") or {}
    if namespace == UNKNOWN or recorded.get("secrets") == UNKNOWN:
        return UNKNOWN, UNKNOWN  # a plan's preview, before the Quota or Secret is made
    places = [p for p in recorded.get("secrets") or [] if isinstance(p, dict)]
    for place in places:
        if place.get("namespace") == namespace and place.get("name"):
            return str(place["name"]), str(place.get("key") or SECRET_KEY)
    if places or not recorded:
        raise PermanentError(
            f"{where} takes Secret/{name}, which has no Kubernetes Secret in namespace "
            f"{namespace!r}, where the training pods run; add a target "
            f"{{provider: kubernetes, namespace: {namespace}}} to Secret/{name}"
        )
    return name, SECRET_KEY  # not made by the kubernetes provider: its own name
