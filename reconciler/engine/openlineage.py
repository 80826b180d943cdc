"""OpenLineage run events for the changes an apply makes to data and models.

A Dataset snapshot, a FeatureSet materialisation and a TrainingJob run each become an
OpenLineage run: START when the applier starts the change, COMPLETE or FAIL when it ends,
with the run's input and output datasets. The events are built with the
``openlineage-python`` client's classes (the only module that imports it) and sent to
the sinks the Workspace names under ``spec.lineage`` (a trusted setting): a file of JSON
lines and an HTTP endpoint. A failed send is a warning; it never fails the apply.

Names (docs/audit.md lists them): the job namespace is the Workspace's name, the job name
the resource's address; pipeform's own datasets live in the namespace
``pipeform://<workspace>`` as ``snapshots/<dataset>/<id>``, ``features/<featureset>/<id>``
and ``models/<model>/v<version>``; a Dataset's source keeps its URI's scheme (``file``,
``s3://bucket``) as namespace and its path as name.
"""

from __future__ import annotations

import logging
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attr
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    RunFacet,
    error_message_run,
    job_type_job,
    processing_engine_run,
    schema_dataset,
    source_code_location_job,
)
from openlineage.client.serde import Serde

from reconciler.state.model import ResourceState

if TYPE_CHECKING:
    from reconciler.apply.report import Listener, Outcome
    from reconciler.kinds.reads import LineageRead
    from reconciler.plan.model import ResourceChange

log = logging.getLogger("pipeform.lineage")

KINDS = ("Dataset", "FeatureSet", "TrainingJob")
PRODUCER = "https://github.com/pipeform/pipeform"
FACET_SCHEMA = PRODUCER + "/blob/main/docs/audit.md#openlineage"
Columns = list[tuple[str, str | None]]


@attr.define
class PipeformRunFacet(RunFacet):
    """pipeform's own run facet: the spec commit the change came from, and the change."""

    address: str
    action: str
    specCommit: str | None  # OpenLineage facets are camelCase
    planDigest: str

    @staticmethod
    def _get_schema() -> str:
        return FACET_SCHEMA


@dataclass(frozen=True)
class Context:
    """What every event of one apply shares."""

    workspace: str
    commit: str | None
    plan_digest: str
    version: str

    @property
    def namespace(self) -> str:
        return f"pipeform://{self.workspace}"


def pipeform_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pipeform")
    except PackageNotFoundError:  # run from a checkout without an install
        return "0+unknown"


def run_id(plan_digest: str, address: str) -> str:
    """The run of one resource change: the same for its START and its end, a new one for
    the next change (another plan)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"pipeform:{plan_digest}:{address}"))


def _schema(columns: Columns) -> dict[str, Any]:
    fields = [schema_dataset.SchemaDatasetFacetFields(name=n, type=t) for n, t in columns]
    return {"schema": schema_dataset.SchemaDatasetFacet(fields=fields)} if fields else {}


def _source(uri: str) -> tuple[str, str]:
    scheme, _, rest = uri.partition("://")
    if scheme == "s3":
        bucket, _, key = rest.partition("/")
        return f"s3://{bucket}", key
    return scheme or "file", rest or uri


def _snapshot(ctx: Context, name: str, outputs: Mapping[str, Any], cols: Columns) -> OutputDataset:
    return OutputDataset(
        ctx.namespace, f"snapshots/{name}/{outputs.get('snapshot')}", facets=_schema(cols)
    )


def datasets(
    ctx: Context,
    change: ResourceChange,
    resources: Mapping[str, ResourceState],
    ended: bool,
) -> tuple[list[InputDataset], list[OutputDataset]]:
    """The run's inputs and, once it ended well, its outputs (from state)."""
    spec = (change.after or change.before or {}).get("spec") or {}
    mine = resources.get(change.address)
    outputs = mine.outputs if (ended and mine is not None) else {}
    if change.kind == "Dataset":
        declared = [(c["name"], c.get("type")) for c in spec.get("schema") or []]
        uri = str((spec.get("source") or {}).get("uri", ""))
        inputs = [InputDataset(*_source(uri), facets=_schema(declared))] if uri else []
        types = dict(declared)
        found = [(str(c), types.get(str(c))) for c in outputs.get("columns") or []] or declared
        snap = [_snapshot(ctx, change.name, outputs, found)] if outputs.get("snapshot") else []
        return inputs, snap
    if change.kind == "FeatureSet":
        dataset = str(spec.get("dataset", ""))
        upstream = resources.get(f"Dataset/{dataset}")
        snapshot = outputs.get("datasetSnapshot") or (upstream.outputs if upstream else {}).get(
            "snapshot"
        )
        ins = [InputDataset(ctx.namespace, f"snapshots/{dataset}/{snapshot}")] if snapshot else []
        if not outputs.get("id"):
            return ins, []
        types = outputs.get("featureTypes") or {}
        cols: Columns = [(n, types.get(n)) for n in outputs.get("features") or []]
        label = outputs.get("label")
        cols += [(str(label), None)] if label else []
        name = f"features/{change.name}/{outputs['id']}"
        return ins, [OutputDataset(ctx.namespace, name, facets=_schema(cols))]
    features = str(spec.get("features", ""))
    upstream = resources.get(f"FeatureSet/{features}")
    feature_id = outputs.get("featureSet") or (upstream.outputs if upstream else {}).get("id")
    ins = [InputDataset(ctx.namespace, f"features/{features}/{feature_id}")] if feature_id else []
    version = outputs.get("modelVersion")
    model = ((spec.get("register") or {}).get("model")) or change.name
    outs = [OutputDataset(ctx.namespace, f"models/{model}/v{version}")] if version else []
    return ins, outs


def event(
    ctx: Context,
    state: RunState,
    change: ResourceChange,
    resources: Mapping[str, ResourceState],
    error: str | None = None,
) -> RunEvent:
    """One run event for a change, from the plan's change and the state as it stands."""
    run_facets: dict[str, RunFacet] = {
        "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
            version=ctx.version, name="pipeform"
        ),
        "pipeform": PipeformRunFacet(
            change.address, change.action.value, ctx.commit, ctx.plan_digest
        ),
    }
    if error is not None:
        run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=error, programmingLanguage="python"
        )
    job_facets: dict[str, Any] = {
        "jobType": job_type_job.JobTypeJobFacet(
            processingType="BATCH", integration="PIPEFORM", jobType=change.kind
        )
    }
    if ctx.commit:
        job_facets["sourceCodeLocation"] = source_code_location_job.SourceCodeLocationJobFacet(
            type="git", url="file:.", version=ctx.commit.removesuffix("-dirty")
        )
    inputs, outputs = datasets(ctx, change, resources, state is RunState.COMPLETE)
    return RunEvent(
        eventType=state,
        eventTime=datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        run=Run(runId=run_id(ctx.plan_digest, change.address), facets=run_facets),
        job=Job(namespace=ctx.workspace, name=change.address, facets=job_facets),
        inputs=inputs,
        outputs=outputs,
        producer=PRODUCER,
    )


class Sinks:
    """The file and the endpoint events go to; each send that fails is one warning."""

    def __init__(self, settings: LineageRead, root: Path) -> None:
        self.file = (root / settings.file) if settings.file else None
        self.url = settings.url
        self.timeout = settings.timeout_seconds
        self._lock = threading.Lock()

    def send(self, run_event: RunEvent) -> None:
        body = Serde.to_json(run_event)
        with self._lock:  # listeners run on the applier's worker threads
            if self.file is not None:
                self._append(body)
            if self.url is not None:
                self._post(body)

    def _append(self, body: str) -> None:
        assert self.file is not None
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            with self.file.open("a", encoding="utf-8") as out:
                out.write(body + "\n")
        except OSError as exc:
            log.warning("could not write OpenLineage events to %s: %s", self.file, exc.strerror)

    def _post(self, body: str) -> None:
        request = urllib.request.Request(
            str(self.url),
            data=body.encode("utf-8"),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:  # the receiver's body is not ours to print
            exc.close()
            log.warning("the OpenLineage endpoint %s refused an event: HTTP %s", self.url, exc.code)
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or type(exc).__name__
            log.warning("could not send an OpenLineage event to %s: %s", self.url, reason)


def listener(
    ctx: Context,
    sinks: Sinks,
    read_resources: Callable[[], Mapping[str, ResourceState]],
    then: Listener | None,
) -> Listener:
    """An apply listener that sends run events, then calls ``then`` (the progress lines)."""
    from reconciler.plan.model import Action

    def on(kind: str, change: ResourceChange, outcome: Outcome | None) -> None:
        try:
            if change.kind in KINDS and change.action not in (Action.NOOP, Action.DELETE):
                _send(kind, change, outcome)
        except Exception as exc:  # lineage never fails an apply
            log.warning("could not build an OpenLineage event for %s: %s", change.address, exc)
        if then is not None:
            then(kind, change, outcome)

    def _send(kind: str, change: ResourceChange, outcome: Outcome | None) -> None:
        if kind == "start":
            state = RunState.START
        elif kind == "finish" and outcome is not None:
            state = RunState.COMPLETE if outcome.status == "succeeded" else RunState.FAIL
        else:
            return  # a skipped change never started: no run
        error = outcome.error if outcome is not None and state is RunState.FAIL else None
        sinks.send(event(ctx, state, change, read_resources(), error))

    return on
