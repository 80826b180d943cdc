"""What one kind of the kubernetes provider implements; the protocol around it, once.

A kind renders its document as manifests (``manifests``: whole objects, without the
ownership marks, which ``objects.owned`` adds), and may say how to read them back
(``observe``, ``outputs``). The rest is here: plan shows the manifests (masked), validate
checks what the schemas miss, check applies each object with ``dryRun=All`` before an
apply starts (so a refusal, a missing namespace or an invalid object stops it before
anything changes), create claims or adopts and applies, update applies (and deletes what the
document no longer renders), delete removes what is ours, and reads are one GET per
object, or, through ``respond``, whatever one LIST per (kind, namespace) found
(``KubernetesProvider.read_batch``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import ClassVar

from providers import handlers
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
    RetryableError,
    default_plan,
)
from providers.kubernetes import objects
from providers.kubernetes.client import RESOURCES, KubeClient, NotFound
from providers.kubernetes.objects import ObjectRef
from providers.kubernetes.settings import KubeSettings
from reconciler.diagnostics import Diagnostic, error

#: what a batch read found: every object asked about, None where there was none of ours
Found = Mapping[ObjectRef, JSON | None]
#: a check that passed this long ago is not asked of the cluster again
CHECK_FRESH_SECONDS = 60.0
#: how often a check asks a busy API server (429, 5xx) before it reports the failure
CHECK_ATTEMPTS = 3


def _canonical(document: JSON) -> str:
    return json.dumps(document, sort_keys=True, default=str)


class KubeHandler(handlers.KindHandler):
    """The provider protocol for one kind, with the provider's settings and client."""

    provider: ClassVar[str] = "kubernetes"
    #: how deleting an object treats its dependents (a Job's pods)
    propagation: ClassVar[str] = "Background"
    #: the resource (``RESOURCES`` key) of the object an external id names
    primary: ClassVar[str] = ""
    #: the document field the object names come from (where a bad name is shown)
    name_path: ClassVar[str] = "metadata.name"

    def __init__(self, settings: KubeSettings, client: KubeClient) -> None:
        self.settings = settings
        self.client = client
        self._checked: dict[tuple[str, str, str], float] = {}  # check passed -> when

    # --- what a kind defines ------------------------------------------------------------

    def manifests(
        self, ctx: ResourceContext, document: JSON, upstream: Mapping[str, JSON]
    ) -> list[JSON]:
        """The objects the document becomes (no ownership marks; no secret values: see
        ``fill``). Pure: no I/O, so plan and validate can call it."""
        raise NotImplementedError

    def fill(self, request: ApplyRequest, manifests: list[JSON]) -> list[JSON]:
        """The manifests as applied: a kind adds what only an apply may read (a secret's
        value). Default: as rendered."""
        return manifests

    def observe(self, ctx: ResourceContext, manifest: JSON, live: JSON) -> JSON:
        """What refresh compares for one object (default: ``objects.observed_of``)."""
        return objects.observed_of(manifest, live)

    def outputs(self, ctx: ResourceContext, live: Sequence[JSON]) -> JSON:
        """The resource's outputs from its live objects (default: the first's id)."""
        first = live[0].get("metadata") or {} if live else {}
        return {"namespace": first.get("namespace"), "name": first.get("name")}

    def namespace_paths(self, document: JSON) -> Mapping[str, str | None]:
        """Where the document names namespaces: dotted path -> namespace (None: the
        Workspace's), for the allowlist check. Default: none."""
        return {}

    # --- helpers ------------------------------------------------------------------------

    def rendered(
        self, ctx: ResourceContext, document: JSON | None, upstream: Mapping[str, JSON]
    ) -> list[JSON]:
        if document is None:
            return []
        labels = (document.get("metadata") or {}).get("labels") or {}
        return [objects.owned(m, ctx, labels) for m in self.manifests(ctx, document, upstream)]

    def _rendered_or_none(self, request: ReadRequest | DeleteRequest) -> list[JSON]:
        try:
            return self.rendered(request.ctx, request.spec, {})
        except (ProviderError, KeyError, TypeError, ValueError):
            return []

    def refs(self, request: ReadRequest | DeleteRequest) -> list[ObjectRef]:
        """The objects a read or delete looks at: the ones the last applied document
        renders, else (import, or a document that no longer renders) the external id."""
        found = [ObjectRef.of(m) for m in self._rendered_or_none(request)]
        return found or self.refs_of_id(request.external_id)

    def refs_of_id(self, external_id: str | None) -> list[ObjectRef]:
        """The objects an external id (``namespace/name`` of the first manifest) names."""
        if not external_id or not self.primary:
            raise PermanentError(
                f"{self.kind} resources cannot be found by id on the kubernetes provider"
            )
        namespace, _, name = external_id.rpartition("/")
        return [ObjectRef(RESOURCES[self.primary], namespace or self.settings.namespace, name)]

    def respond(self, request: ReadRequest, found: Found) -> ReadResponse:
        """The read's answer from what was found (by GET or by a batch LIST)."""
        manifests = {ObjectRef.of(m): m for m in self._rendered_or_none(request)}
        refs = list(manifests) or self.refs(request)
        live = [found.get(r) for r in refs]
        if not any(live):
            return ReadResponse(exists=False)
        observed: JSON = {}
        present: list[JSON] = []
        for ref, obj in zip(refs, live, strict=True):
            key = ref.id if len(refs) == 1 else f"{ref.resource.kind}/{ref.id}"
            if obj is None:
                observed[key] = None
                continue
            present.append(obj)
            manifest = manifests.get(ref)
            observed[key] = self.observe(request.ctx, manifest, obj) if manifest else {}
        if len(refs) == 1:
            observed = observed[refs[0].id]
        return ReadResponse(True, observed, self.outputs(request.ctx, present), refs[0].id)

    # --- the protocol -------------------------------------------------------------------

    def plan(self, request: PlanRequest) -> PlanResponse:
        base = default_plan(request, self.replace_on, self.computed_outputs)
        try:
            shown = [
                objects.masked(m)
                for m in self.rendered(request.ctx, request.desired_spec, request.upstream)
            ]
        except (ProviderError, KeyError, TypeError, ValueError):
            return base  # validate reports why it cannot render
        return PlanResponse(
            requires_replace=base.requires_replace,
            unknown_outputs=base.unknown_outputs,
            manifests=shown,
        )

    def validate(self, ctx: ResourceContext, spec: JSON) -> list[Diagnostic]:
        from providers.kubernetes import validation

        return validation.check_document(self, ctx, spec)

    def check(self, request: CheckRequest) -> list[Diagnostic]:
        """Before an apply changes anything: each object is applied with ``dryRun=All``
        (the API server runs authorisation, the namespace's existence, validation and
        admission, and stores nothing), and a create refuses an object that is not ours.
        A failure to reach or log in to the cluster is reported once, not per object."""
        if self.client.reported_recently():
            return []  # reported with the first object checked (a minute ago at most)
        key = (request.ctx.address, request.ctx.lineage, _canonical(request.spec))
        if time.monotonic() - self._checked.get(key, -1e9) < CHECK_FRESH_SECONDS:
            return []  # passed just now (the CLI checks, then the engine asks again)
        problems = self._check(request)
        if not problems:
            self._checked[key] = time.monotonic()
        return problems

    def _check(self, request: CheckRequest) -> list[Diagnostic]:
        """The dry run; a busy server (429, 5xx) is asked again, twice at most."""
        for attempt in range(CHECK_ATTEMPTS):
            try:
                self._dry_run(request)
            except RetryableError as exc:
                if self.client.unusable is None and attempt + 1 < CHECK_ATTEMPTS:
                    time.sleep(min(exc.delay, 2.0))
                    continue
                self.client.report_unusable()  # when the cluster, not the object, is at fault
                return [error(str(exc), address=request.ctx.address)]
            except ProviderError as exc:
                self.client.report_unusable()
                return [error(str(exc), address=request.ctx.address)]
            return []
        return []  # not reached: the last attempt returns

    def _dry_run(self, request: CheckRequest) -> None:
        ctx = request.ctx
        manifests = self.rendered(ctx, request.spec, {})
        if request.prior_spec is None:
            for manifest in manifests:
                ref = ObjectRef.of(manifest)
                live = self.client.get(ref.resource, ref.namespace, ref.name)
                if live is not None:
                    objects.claim(live, ctx, ref)
        as_applied = ApplyRequest(ctx, request.spec, request.prior_spec, {}, None, {})
        for manifest in self.fill(as_applied, manifests):
            self.client.apply(manifest, force=True, dry_run=True)

    def read(self, request: ReadRequest) -> ReadResponse:
        found = {ref: self._get_ours(request.ctx, ref) for ref in self.refs(request)}
        return self.respond(request, found)

    def _get_ours(self, ctx: ResourceContext, ref: ObjectRef) -> JSON | None:
        live = self.client.get(ref.resource, ref.namespace, ref.name)
        return live if live is not None and objects.is_ours(live, ctx) else None

    def create(self, request: ApplyRequest) -> ApplyResponse:
        """Apply every object; one that exists already is adopted when it is ours (a
        create retried after a crash) and refused when it is not."""
        manifests = self.rendered(request.ctx, request.spec, request.upstream)
        for manifest in manifests:  # refuse before writing anything
            ref = ObjectRef.of(manifest)
            live = self.client.get(ref.resource, ref.namespace, ref.name)
            if live is not None:
                objects.claim(live, request.ctx, ref)
        return self._apply(request, manifests)

    def update(self, request: ApplyRequest) -> ApplyResponse:
        manifests = self.rendered(request.ctx, request.spec, request.upstream)
        response = self._apply(request, manifests)
        if request.prior_spec is not None:
            kept = {ObjectRef.of(m) for m in manifests}
            try:
                before = self.rendered(request.ctx, request.prior_spec, request.prior_outputs)
            except (ProviderError, KeyError, TypeError, ValueError):
                before = []
            for ref in [ObjectRef.of(m) for m in before]:
                if ref not in kept:
                    self._delete_ours(request.ctx, ref)
        return response

    def _apply(self, request: ApplyRequest, manifests: list[JSON]) -> ApplyResponse:
        applied = [
            self.client.apply(m, force=request.force_conflicts)
            for m in self.fill(request, manifests)
        ]
        refs = [ObjectRef.of(m) for m in manifests]
        observed: JSON = {}
        for ref, manifest, live in zip(refs, manifests, applied, strict=True):
            key = ref.id if len(refs) == 1 else f"{ref.resource.kind}/{ref.id}"
            observed[key] = self.observe(request.ctx, manifest, live)
        if len(refs) == 1:
            observed = observed[refs[0].id]
        return ApplyResponse(self.outputs(request.ctx, applied), refs[0].id, observed)

    def spec_of(self, ctx: ResourceContext, live: Sequence[JSON]) -> JSON | None:
        """The live objects in spec terms (the document's ``spec``), for import; None
        where they cannot say (a Secret's source, a rule's document). Default: None."""
        return None

    def import_(self, request: ImportRequest) -> ImportResponse:
        """Mark the objects the id names as this resource's (a merge patch of the
        ownership labels, which leaves every field another manager set as it is).

        Where the kind can tell the live object's spec (``spec_of``), state records it and
        what a read observes, so the next plan shows how it differs from the document.
        Otherwise ``observed`` is a mark no read observes: the next plan shows drift and
        applies the document, so the object ends as the document says."""
        ctx = request.ctx
        refs = self.refs_of_id(request.id)
        adopted = []
        for ref in refs:
            live = self.client.get(ref.resource, ref.namespace, ref.name)
            if live is None:
                raise PermanentError(f"there is no {ref.shown} on {self.client.host} to import")
            adopted.append(self.client.merge_patch(ref, objects.ownership(ctx)))
        outputs = self.outputs(ctx, adopted)
        spec = self.spec_of(ctx, adopted)
        if spec is None:
            return ImportResponse({"imported": request.id}, None, outputs, refs[0].id)
        document = {"metadata": {"labels": {}, "annotations": {}}, "spec": spec}
        read = self.respond(
            ReadRequest(ctx, document, outputs, refs[0].id), dict(zip(refs, adopted, strict=True))
        )
        return ImportResponse(read.observed, spec, outputs, refs[0].id)

    def delete(self, request: DeleteRequest) -> None:
        for ref in self.refs(request):
            self._delete_ours(request.ctx, ref)

    def _delete_ours(self, ctx: ResourceContext, ref: ObjectRef) -> None:
        live = self.client.get(ref.resource, ref.namespace, ref.name)
        if live is None:
            return
        objects.claim(live, ctx, ref)  # never delete what another state or a person made
        try:
            self.client.delete(ref.resource, ref.namespace, ref.name, self.propagation)
        except NotFound:
            return
