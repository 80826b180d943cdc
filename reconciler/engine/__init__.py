"""Wiring for the writing commands: specs, providers, state, lock, plan, apply, journal.

The CLI calls these functions; they hold no argument parsing and print nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from providers import base
from reconciler import faults
from reconciler.diagnostics import PipeformError
from reconciler.engine.providers import data_path, load_providers
from reconciler.plan import model as plans
from reconciler.plan.planner import PlanOptions, Providers, canonical_hash, make_plan
from reconciler.spec.checks import CheckedTree, check
from reconciler.spec.trust import Trust
from reconciler.state import open_backend
from reconciler.state.backend import Access, StateBackend
from reconciler.state.model import (
    JournalEntry,
    LockInfo,
    ResourceState,
    State,
    argv_command,
    now,
)

if TYPE_CHECKING:  # the applier loads with the first apply: plan never needs it
    import threading

    from reconciler.apply.applier import ApplyOptions, ApplyReport, Listener, Outcome

PLAN_FILE_FORMAT = "pipeform-plan/1"


@dataclass
class Session:
    checked: CheckedTree
    backend: StateBackend
    providers: Providers

    @property
    def root(self) -> Path:
        return self.checked.tree.root


def load_specs(paths: list[Path], trust: Trust | None = None) -> CheckedTree:
    """The checked spec tree; an untrusted run (``trust``, else the environment's) is
    refused here, before any state or provider is opened, when a trusted setting differs
    from the trusted configuration."""
    checked = check(paths, trust if trust is not None else Trust.resolve())
    if checked.diagnostics.has_errors:
        raise PipeformError(checked.diagnostics)
    return checked


def specs_digest(checked: CheckedTree) -> str:
    docs = {a: d.raw.data for a, d in checked.tree.documents.items()}
    workspace = checked.tree.workspace_source.raw.data if checked.tree.workspace_source else None
    return canonical_hash({"workspace": workspace, "documents": docs})


def open_session(
    paths: list[Path], access: Access = "create", trust: Trust | None = None
) -> Session:
    """Specs, state and providers for a command; ``existing`` access (a plan that is not
    saved) creates no state where there is none."""
    checked = load_specs(paths, trust)
    # every spec problem is reported before state exists; state may name more providers
    providers = load_providers(checked, State("", 0))
    config = checked.tree.workspace.model_dump()["spec"]["state"]
    backend = open_backend(config, checked.tree.root, access)
    return Session(checked, backend, load_providers(checked, backend.read(), providers))


@contextmanager
def locked(
    backend: StateBackend, timeout: float, command: str | None = None
) -> Iterator[list[str]]:
    info = LockInfo.for_this_process(command or argv_command())
    notes = backend.acquire_lock(info, timeout)
    try:
        faults.point("after-lock")
        yield notes
    finally:
        backend.release_lock(info.id)


def plan(session: Session, options: PlanOptions) -> plans.Plan:
    state = session.backend.read()
    return make_plan(
        session.checked, state, session.providers, options, specs_digest(session.checked)
    )


def save_plan(plan: plans.Plan, path: Path) -> None:
    body = {"format": PLAN_FILE_FORMAT, "plan": plans.to_dict(plan)}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(body, indent=1, default=str), encoding="utf-8")
    tmp.replace(path)


def load_plan(path: Path) -> plans.Plan:
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        if body.get("format") != PLAN_FILE_FORMAT:
            raise ValueError(f"format {body.get('format')!r}")
        return plans.from_dict(body["plan"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PipeformError(
            f"{path} is not a pipeform plan file ({exc}); make one with pipeform plan --out FILE"
        ) from exc


def check_fresh(saved: plans.Plan, session: Session) -> None:
    """Refuse a saved plan made against another state or other specs."""
    state = session.backend.read()
    if saved.lineage != state.lineage:
        raise PipeformError(
            f"saved plan belongs to another state (lineage {saved.lineage} "
            f"vs {state.lineage}). Run pipeform plan --out FILE against this state."
        )
    if saved.serial != state.serial:
        raise PipeformError(
            f"saved plan is stale: the state changed since the plan was made "
            f"(serial {saved.serial} -> {state.serial}).\n  Run pipeform plan --out FILE again."
        )
    if saved.specs_digest != specs_digest(session.checked):
        raise PipeformError(
            "saved plan is stale: the specs changed since the plan was made (a value, or a "
            "document added or removed; comments and formatting do not count).\n"
            "  Run pipeform plan --out FILE again."
        )


def preflight(session: Session, plan: plans.Plan) -> None:
    """Refuse an apply that needs something from outside the specs that cannot be had now
    (a Secret whose environment variable is unset), before any change starts: every
    provider is asked (``Provider.check``) about each resource the apply keeps, unchanged
    ones too (a plan keeps a stored Secret whose source it cannot read, but an apply
    that changes anything must be able to read every source), and every problem is
    reported at once, at its file:line:col."""
    from reconciler.diagnostics import Diagnostics, error

    found = Diagnostics()
    documents = session.checked.tree.documents
    for change in plan.changes if plan.actionable else []:
        if change.after is None:  # a delete needs nothing from outside
            continue
        provider = session.providers.get(change.provider, change.address)
        if type(provider).check is base.Provider.check:
            continue
        ctx = base.ResourceContext.of(change.address, plan.lineage, session.root)
        try:
            problems = provider.check(base.CheckRequest(ctx, change.after, change.before))
        except base.ProviderError as exc:
            problems = [error(str(exc), address=change.address)]
        loaded = documents.get(change.address)
        for d in problems:
            position = d.position
            if position is None and loaded is not None:
                position = loaded.position(data_path(d.path or ""))
            found.add(replace(d, position=position, address=d.address or change.address))
    if found.has_errors:
        raise PipeformError(found, footer="Nothing was changed.")


def spec_commit(root: Path) -> str | None:
    """The git commit of the spec tree, with -dirty when it has uncommitted changes."""
    from reconciler.gitinfo import head_commit

    return head_commit(root, mark_dirty=True)


def apply(
    session: Session,
    plan: plans.Plan,
    command: str,
    parallelism: int,
    listener: Listener | None = None,
    stop: threading.Event | None = None,
    options: ApplyOptions | None = None,
) -> ApplyReport:
    """Carry out a plan under the caller's lock; journal its start and its end. Once
    ``stop`` is set, no further change starts; those running finish and are persisted.
    ``options``: --force-conflicts and --no-wait, passed to every create and update."""
    state = session.backend.read()
    if (plan.lineage, plan.serial) != (state.lineage, state.serial):
        raise PipeformError(
            f"the state changed since this plan was made (serial {plan.serial} -> "
            f"{state.serial}); nothing was applied. Run the command again."
        )
    preflight(session, plan)  # the CLI asks before it shows the plan; asked again here
    started = now()
    who = LockInfo.for_this_process(command).who
    commit = spec_commit(session.root)
    digest = plan.digest()
    planned = [
        {"address": c.address, "action": c.action.value, "status": "planned", "error": None}
        for c in plan.actionable
    ]
    session.backend.append_journal(
        JournalEntry(command, who, started, "", digest, commit, state.serial, state.serial, planned)
    )

    def entry(outcome: Outcome) -> JournalEntry:  # one result, journaled as it lands
        return JournalEntry(
            command,
            who,
            started,
            "",
            digest,
            commit,
            state.serial,
            state.serial,
            [outcome.to_dict()],
        )

    from reconciler.apply.applier import Applier

    applier: Applier | None = None  # the lineage listener reads the state it keeps

    def resources() -> Mapping[str, ResourceState]:
        return applier.resources if applier is not None else {}

    applier = Applier(
        session.backend,
        state,
        session.providers,
        session.root,
        parallelism,
        lineage_listener(session, digest, commit, listener, resources),
        journal=entry,
        stop=stop,
        options=options,
    )
    report = applier.apply(plan)
    faults.point("before-journal")
    from reconciler.promotion import apply_moves

    results = [o.to_dict() for o in report.outcomes]
    results += apply_moves(state, session.backend.read())
    session.backend.append_journal(
        JournalEntry(
            command, who, started, now(), digest, commit, state.serial, report.serial, results
        )
    )
    push_metrics(session, report, drift=len(plan.drift))
    return report


def lineage_listener(
    session: Session,
    digest: str,
    commit: str | None,
    listener: Listener | None,
    resources: Callable[[], Mapping[str, ResourceState]],
) -> Listener | None:
    """The apply's listener, sending OpenLineage run events first when the Workspace names
    where (spec.lineage); the client library loads only then."""
    workspace = session.checked.tree.workspace
    settings = workspace.spec.lineage
    if settings is None or (settings.file is None and settings.url is None):
        return listener
    from reconciler.engine import openlineage

    context = openlineage.Context(
        workspace.metadata.name, commit, digest, openlineage.pipeform_version()
    )
    sinks = openlineage.Sinks(settings, session.root)
    return openlineage.listener(context, sinks, resources, listener)


def push_metrics(session: Session, report: ApplyReport | None, drift: int | None) -> None:
    """After a one-shot apply, push the reconciler's metrics when the Workspace names a
    Pushgateway (providers.prometheus.pushgatewayUrl); a failed push is only a warning."""
    workspace = session.checked.tree.workspace
    url = workspace.spec.providers.prometheus.pushgateway_url
    if not url:
        return
    from datetime import UTC, datetime

    from reconciler.apply import metrics
    from reconciler.plan import policy

    state = session.backend.read()
    statuses = policy.budget_statuses(session.checked, state, [], datetime.now(UTC))
    budgets = {
        s.address.split("/", 1)[1]: float(s.used) / float(s.amount)
        for s in statuses
        if float(s.amount) > 0
    }
    registry = metrics.collect(state, report, drift=drift, budgets=budgets)
    metrics.push(registry, url, workspace.metadata.name)


def apply_refresh(session: Session, plan: plans.Plan) -> int:
    """Record what a refresh-only plan observed: live values kept, vanished objects forgotten."""
    from dataclasses import replace as _replace

    state = session.backend.read()
    serial = state.serial
    for drift in plan.drift:
        prior = state.resources.get(drift.address)
        if prior is None:
            continue
        if not drift.exists:
            serial = session.backend.remove(serial, drift.address)
            continue
        provider = session.providers.get(prior.provider, drift.address)
        live = provider.read(
            base.ReadRequest(
                base.ResourceContext.of(drift.address, state.lineage, session.root),
                prior.spec,
                prior.outputs,
                prior.external_id,
            )
        )
        serial = session.backend.put(
            serial,
            _replace(
                prior,
                observed=live.observed,
                outputs=live.outputs or prior.outputs,
                updated_at=now(),
            ),
        )
    return serial


def import_resource(session: Session, address: str, external_id: str) -> int:
    loaded = session.checked.tree.documents.get(address)
    if loaded is None:
        raise PipeformError(
            f"{address} is not in the specs: write its document first, then import it"
        )
    state = session.backend.read()
    if address in state.resources:
        raise PipeformError(
            f"{address} is already managed (in state); pipeform state rm {address} first "
            "to import another object in its place"
        )
    name = session.providers.for_document(loaded.facts)
    provider = session.providers.get(name, address)
    request = base.ImportRequest(
        base.ResourceContext.of(address, state.lineage, session.root), external_id
    )
    try:
        response = provider.import_(request)
    except base.ProviderError as exc:
        raise PipeformError(f"cannot import {external_id} as {address}: {exc}") from exc
    except Exception as exc:  # a provider bug: still one line, naming the provider
        raise PipeformError(
            f"cannot import {external_id} as {address}: provider {name} crashed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    desired = loaded.facts.desired(session.checked.tree.workspace.spec.defaults.labels)
    spec = (
        {"metadata": {"labels": {}, "annotations": {}}, "spec": response.spec}
        if response.spec is not None
        else desired
    )
    return session.backend.put(
        state.serial,
        ResourceState(
            address=address,
            kind=loaded.facts.kind,
            provider=name,
            spec=spec,
            spec_hash=canonical_hash(spec),
            outputs=response.outputs,
            observed=response.observed,
            external_id=response.external_id,
            inputs_fingerprint=response.inputs_fingerprint,
            dependencies=session.checked.graph.dependencies(address),
            prevent_destroy=loaded.facts.prevent_destroy,
        ),
    )


def open_state(root: Path, access: Access = "read", trust: Trust | None = None) -> StateBackend:
    """The state backend for the spec tree at root, even when other documents are invalid;
    read-only unless access says otherwise (it never creates a state then). An untrusted
    run (``trust``, else the environment's) opens it only where trusted configuration says."""
    from reconciler.diagnostics import Diagnostics
    from reconciler.spec.loader import load_tree
    from reconciler.spec.trust import check_locations, check_settings

    trust = trust if trust is not None else Trust.resolve()
    diagnostics = Diagnostics()
    tree = load_tree([root], diagnostics, confined=trust.untrusted)
    workspace_errors = [
        d for d in diagnostics.errors if d.address and d.address.startswith("Workspace/")
    ]
    if workspace_errors:
        raise PipeformError(Diagnostics(workspace_errors))
    workspace = tree.workspace.model_dump()["spec"]
    if trust.untrusted:
        source = tree.workspace_source.raw if tree.workspace_source else None
        refused = check_settings(trust, workspace, source)
        if not refused.has_errors:
            refused = check_locations(tree.root, workspace)
        if refused.has_errors:
            raise PipeformError(refused)
    return open_backend(workspace["state"], tree.root, access)
