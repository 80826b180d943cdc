"""Desired specs x prior state x live objects -> a Plan.

Steps, as Terraform's: refresh (read every recorded object; report drift:
``reconciler.plan.refresh``), diff each desired document against what was applied
(``reconciler.plan.diff``: per field, ignoring lifecycle.ignoreChanges paths), ask the provider which changes force replacement and
which outputs become unknown, carry unknown outputs to dependents (a changed Dataset
re-materialises its FeatureSet), delete what left the specs, and refuse any plan that
would destroy a resource protected by lifecycle.preventDestroy (kept in state).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from providers.base import PlanRequest, PlanResponse, Provider, ReadResponse, ResourceContext
from reconciler.diagnostics import Diagnostics, PipeformError, error
from reconciler.plan import cost, policy
from reconciler.plan.diff import apply_ignore, field_changes
from reconciler.plan.model import UNKNOWN, Action, Note, Plan, Reason, ResourceChange
from reconciler.plan.refresh import Refresher, provider_call
from reconciler.spec.checks import CheckedTree
from reconciler.spec.facts import Facts
from reconciler.spec.loader import LoadedDocument
from reconciler.state.model import ResourceState, State, Status, now


@dataclass(frozen=True)
class PlanOptions:
    mode: str = "normal"  # normal | destroy | refresh-only
    refresh: bool = True
    targets: tuple[str, ...] = ()
    replace: tuple[str, ...] = ()
    allow_over_budget: bool = False  # an enforced budget overrun is a warning, not an error
    parallelism: int = 10  # live objects read at once during refresh


#: Where the embedded default sends kinds that are rules: with the local provider as the
#: default, Alert and SLO documents, and a Budget's burn alerts, become Prometheus rules
#: (rule files on disk when no Prometheus URL is configured). Budgets are enforced at plan
#: time whichever provider holds them. Other defaults (kubernetes) realise them.
KIND_PROVIDERS: Mapping[str, str] = {
    "Alert": "prometheus",
    "SLO": "prometheus",
    "Budget": "prometheus",
}


@dataclass
class Providers:
    """Provider instances by name, and which provider realises each address."""

    instances: Mapping[str, Provider]
    default: str = "local"

    def for_document(self, facts: Facts) -> str:
        """spec.provider when given, else the default (with local, KIND_PROVIDERS first); a
        Secret whose targets all name one provider (aws) is realised by that provider, and an
        Alert on a CloudWatch metric by aws."""
        if facts.provider:
            return facts.provider
        if facts.kind == "Alert" and facts.spec.get("cloudwatch"):
            return "aws"
        if facts.kind == "Secret":
            wanted = {t.get("provider") for t in facts.spec.get("targets") or []}
            if len(wanted) == 1 and wanted != {"local"}:
                return str(wanted.pop())
        if self.default == "local":
            return KIND_PROVIDERS.get(facts.kind, self.default)
        return self.default

    def get(self, name: str, address: str) -> Provider:
        provider = self.instances.get(name)
        if provider is None:
            raise PipeformError(f"{address}: provider {name!r} is not installed or not configured")
        return provider


def canonical_hash(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def desired_document(doc: Any, default_labels: Mapping[str, str]) -> dict[str, Any]:
    """What is diffed and stored of a validated model (``Facts.desired``, for a model)."""
    return Facts.of(doc).desired(default_labels)


@dataclass
class _Context:
    checked: CheckedTree
    state: State
    providers: Providers
    options: PlanOptions
    diagnostics: Diagnostics = field(default_factory=Diagnostics)
    live: dict[str, ReadResponse] = field(default_factory=dict)
    changes: dict[str, ResourceChange] = field(default_factory=dict)
    contexts: dict[str, ResourceContext] = field(default_factory=dict)

    @property
    def default_labels(self) -> Mapping[str, str]:
        labels: Mapping[str, str] = self.checked.tree.workspace.spec.defaults.labels
        return labels

    def ctx(self, address: str) -> ResourceContext:
        """The (frozen, so shared) context for address: refresh and plan both need it."""
        made = self.contexts.get(address)
        if made is None:
            made = ResourceContext.of(address, self.state.lineage, self.checked.tree.root)
            self.contexts[address] = made
        return made


def _scope(c: _Context) -> tuple[set[str], set[str]]:
    """(desired addresses, state addresses) the plan may touch, narrowed by --target."""
    desired = set(c.checked.tree.documents)
    recorded = set(c.state.resources)
    if not c.options.targets:
        return desired, recorded
    graph = c.checked.graph
    if c.options.mode == "destroy":  # a target and everything that depends on it
        wanted = set(c.options.targets)
        for address in list(wanted):
            stack = [address]
            while stack:
                for dependent in graph.dependents(stack.pop()):
                    if dependent not in wanted:
                        wanted.add(dependent)
                        stack.append(dependent)
        return desired & wanted, recorded & wanted
    wanted = graph.closure(c.options.targets)
    return desired & wanted, recorded & wanted


def _upstream_outputs(c: _Context, deps: list[str]) -> dict[str, dict[str, Any]]:
    out = {}
    for dep in deps:
        change = c.changes.get(dep)
        prior = c.state.resources.get(dep)
        outputs = dict(prior.outputs) if prior else {}
        if change is not None:
            for key in change.after_unknown:
                outputs[key] = UNKNOWN
        out[dep] = outputs
    return out


def _changed_inputs(c: _Context, deps: list[str]) -> list[str]:
    return [
        dep
        for dep in deps
        if (ch := c.changes.get(dep)) is not None
        and ch.action is not Action.NOOP
        and ch.after_unknown
    ]


def plan_resource(c: _Context, address: str, loaded: LoadedDocument) -> ResourceChange:
    facts = loaded.facts
    provider_name = c.providers.for_document(facts)
    provider = c.providers.get(provider_name, address)
    desired = facts.desired(c.default_labels)
    prior = c.state.resources.get(address)
    live = c.live.get(address)
    deps = c.checked.graph.dependencies(address)  # a fresh list: the change keeps it
    upstream = _upstream_outputs(c, deps) if deps else {}
    if prior is not None:
        desired = apply_ignore(prior.spec, desired, facts.ignore_changes)
    request = PlanRequest(
        c.ctx(address),
        prior.spec if prior else None,
        desired,
        prior.outputs if prior else {},
        upstream,
        live.observed if live is not None and live.exists else None,
    )
    response = provider_call(provider_name, address, "plan", provider.plan, request)
    change = ResourceChange(
        address=address,
        kind=facts.kind,
        provider=provider_name,
        action=Action.NOOP,
        before=prior.spec if prior else None,
        after=desired,
        dependencies=deps,
        prevent_destroy=facts.prevent_destroy,
        inputs_fingerprint=response.inputs_fingerprint,
    )
    change = _decide(c, change, prior, live, response)
    if response.waiting:
        change = replace(change, waiting=response.waiting)
    if response.manifests is not None:
        change = replace(change, manifests=response.manifests)
    if response.adopts and change.action in (Action.CREATE, Action.UPDATE):
        # what apply will really do: adopt what exists (a replace deletes it first)
        change = replace(change, adopts=response.adopts)
    return change


def _decide(
    c: _Context,
    change: ResourceChange,
    prior: ResourceState | None,
    live: ReadResponse | None,
    response: PlanResponse,
) -> ResourceChange:
    """The action and its reason, from the prior state, the diff and the provider's plan."""
    unknown = response.unknown_outputs
    created = _create_reason(prior, live)
    if created is not None or prior is None:
        reason = created or Reason.NEW
        return replace(change, action=Action.CREATE, reason=reason, after_unknown=unknown)
    forcing = set(response.requires_replace)
    fields = [
        replace(f, forces_replacement=_forces(f.path, forcing))
        for f in field_changes(prior.spec, change.after or {})
    ]
    if fields:  # dataclasses.replace costs a whole __init__: skip it when nothing changed
        change = replace(change, field_changes=fields)
    if change.address in c.options.replace or prior.status is Status.TAINTED:
        requested = change.address in c.options.replace
        reason = Reason.REPLACE_REQUESTED if requested else Reason.TAINTED
        return replace(
            change, action=Action.DELETE_THEN_CREATE, reason=reason, after_unknown=unknown
        )
    if any(f.forces_replacement for f in fields):
        return replace(
            change,
            action=Action.DELETE_THEN_CREATE,
            reason=Reason.REPLACE_BY_FIELDS,
            after_unknown=unknown,
        )
    if fields or prior.status is Status.FAILED:
        reason = Reason.SPEC_CHANGED if fields else Reason.FAILED
        return replace(change, action=Action.UPDATE, reason=reason, after_unknown=unknown)
    inputs = _changed_inputs(c, change.dependencies) if change.dependencies else []
    fingerprint_moved = (
        response.inputs_fingerprint is not None
        and prior.inputs_fingerprint is not None
        and response.inputs_fingerprint != prior.inputs_fingerprint
    )
    # only content-addressed resources (a provider fingerprint) depend on upstream outputs
    if (inputs and response.inputs_fingerprint is not None) or fingerprint_moved:
        detail = (
            f"input {', '.join(inputs)} changed"
            if inputs
            else response.reason_detail or "inputs changed"
        )
        if response.trigger:
            detail = f"{detail}; {response.trigger}"
        return replace(
            change,
            action=Action.UPDATE,
            reason=Reason.INPUT_CHANGED,
            reason_detail=detail,
            after_unknown=unknown,
        )
    if live is not None and prior.observed and live.observed != prior.observed:
        return replace(change, action=Action.UPDATE, reason=Reason.DRIFTED, after_unknown=unknown)
    if response.pending:
        return replace(
            change, action=Action.UPDATE, reason=Reason.PENDING, reason_detail=response.pending
        )
    return change


def _create_reason(prior: ResourceState | None, live: ReadResponse | None) -> Reason | None:
    """Why the resource must be created: new (a pending record whose object was never
    made counts as new), an interrupted create that made something, or gone; else None."""
    if prior is None:
        return Reason.NEW
    if prior.status is Status.PENDING:  # recorded before its create, which may not have run
        return Reason.NEW if live is not None and not live.exists else Reason.INTERRUPTED
    if live is not None and not live.exists:
        return Reason.GONE
    return None


def _forces(path: str, forcing: set[str]) -> bool:
    return any(path == p or path.startswith(p + ".") for p in forcing)


def _delete(c: _Context, prior: ResourceState, reason: Reason) -> ResourceChange:
    return ResourceChange(
        address=prior.address,
        kind=prior.kind,
        provider=prior.provider,
        action=Action.DELETE,
        reason=reason,
        before=prior.spec,
        dependencies=list(prior.dependencies),
        prevent_destroy=prior.prevent_destroy,
    )


def _check_protection(c: _Context) -> None:
    for change in c.changes.values():
        if (change.action is Action.DELETE or change.action.is_replace) and change.prevent_destroy:
            loaded = c.checked.tree.documents.get(change.address)
            verb = "destroy" if change.action is Action.DELETE else "replace"
            c.diagnostics.add(
                error(
                    f"the plan would {verb} {change.address}, which has lifecycle.preventDestroy set",
                    loaded.position(("metadata", "lifecycle")) if loaded else None,
                    address=change.address,
                    hint="remove preventDestroy from its metadata and apply that first, if you really mean it"
                    if loaded
                    else "it was protected when last applied: restore its document, or apply with "
                    "preventDestroy: false before removing it",
                )
            )


def make_plan(
    checked: CheckedTree,
    state: State,
    providers: Providers,
    options: PlanOptions,
    specs_digest: str,
) -> Plan:
    """The plan; raises PipeformError when it would break a protection."""
    c = _Context(checked, state, providers, options)
    desired, recorded = _scope(c)
    drift = (
        Refresher(state, providers, c.ctx, options.parallelism).refresh(sorted(recorded), c.live)
        if options.refresh
        else []
    )
    order = [a for a in checked.graph.order() if a in desired]
    if options.mode == "normal":
        for address in order:
            c.changes[address] = plan_resource(c, address, checked.tree.documents[address])
        for address in sorted(recorded - set(checked.tree.documents)):
            c.changes[address] = _delete(c, state.resources[address], Reason.REMOVED)
    elif options.mode == "destroy":
        for address in sorted(recorded):
            c.changes[address] = _delete(c, state.resources[address], Reason.DESTROY)
    _check_protection(c)
    if c.diagnostics.has_errors:
        raise PipeformError(c.diagnostics)
    changes = _ordered(c, list(c.changes.values()))
    totals: dict[str, str] = {}
    pricing, report = None, None
    if options.mode == "normal":  # cost and policy judge what would be trained and kept
        changes, totals = cost.estimate_changes(checked, state, changes)
        pricing = cost.Prices.of(checked.tree.workspace).to_json()
        report = policy.evaluate(checked, state, changes, options.allow_over_budget)
    return Plan(
        lineage=state.lineage,
        serial=state.serial,
        specs_digest=specs_digest,
        created_at=now(),
        mode=options.mode,
        changes=changes,
        drift=drift,
        notes=[Note(a, n) for a, live in sorted(c.live.items()) for n in live.notes],
        targets=list(options.targets),
        replace=list(options.replace),
        cost_totals=totals,
        pricing=pricing,
        policy=report,
    )


def _ordered(c: _Context, changes: list[ResourceChange]) -> list[ResourceChange]:
    """Creates and updates in graph order, then deletions in reverse dependency order."""
    rank = {address: i for i, address in enumerate(c.checked.graph.order())}
    keep = [ch for ch in changes if ch.action is not Action.DELETE]
    gone = [ch for ch in changes if ch.action is Action.DELETE]
    keep.sort(key=lambda ch: rank.get(ch.address, 0))
    depths = _depths(c.state) if gone else {}
    gone.sort(key=lambda ch: (-depths.get(ch.address, 0), ch.address))
    return keep + gone


def _depths(state: State) -> dict[str, int]:
    """How deep each recorded resource sits in its recorded dependencies (leaves are 1)."""
    depths: dict[str, int] = {}

    def depth(address: str, seen: frozenset[str]) -> int:
        prior = state.resources.get(address)
        if prior is None or address in seen:
            return 0
        if address not in depths:  # each resource once, so diamonds cost nothing extra
            depths[address] = 1 + max(
                (depth(d, seen | {address}) for d in prior.dependencies), default=0
            )
        return depths[address]

    for address in state.resources:
        depth(address, frozenset())
    return depths
