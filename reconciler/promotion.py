"""Moving a registered model's alias: ``pipeform approve``, ``pipeform rollback``, and the
journal lines of alias moves an apply made.

A move by hand goes through the provider that realises the TrainingJob registering the
model (``Provider.move_alias``: it refuses a version the registry does not hold); the
job's new outputs (``promotion``, ``aliasHistory``) are written to state together with a
journal entry naming who moved the alias, from which version to which, in one
compare-and-swap. An apply that moves an alias (a promotion after its gates, a held one
released) journals the move beside the job's own result.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from providers import base
from reconciler.diagnostics import PipeformError
from reconciler.plan.planner import Providers
from reconciler.state.backend import StateBackend
from reconciler.state.model import JournalEntry, LockInfo, ResourceState, State, now

_REF = re.compile(r"^(?P<model>[^@\s]+)@(?P<version>\d+)$")


def parse_ref(text: str) -> tuple[str, int]:
    """``churn@4`` -> ("churn", 4); anything else is one clear error."""
    found = _REF.match(text)
    if not found:
        raise PipeformError(
            f"{text!r} is not MODEL@VERSION: write the model's name, @, and a version number, "
            "such as expense-model@3"
        )
    return found["model"], int(found["version"])


def _registered_model(resource: ResourceState) -> str | None:
    register = (resource.spec.get("spec") or {}).get("register") or {}
    model = register.get("model")
    return str(model) if model else None


def find_job(state: State, model: str) -> ResourceState:
    """The TrainingJob in state that registers ``model``."""
    jobs = [
        r
        for r in state.resources.values()
        if r.kind == "TrainingJob" and _registered_model(r) == model
    ]
    if len(jobs) == 1:
        return jobs[0]
    if jobs:
        names = ", ".join(sorted(j.address for j in jobs))
        raise PipeformError(f"model {model!r} is registered by several TrainingJobs ({names})")
    known = sorted(
        {
            m
            for r in state.resources.values()
            if r.kind == "TrainingJob" and (m := _registered_model(r))
        }
    )
    raise PipeformError(
        f"no applied TrainingJob registers model {model!r} (models: "
        f"{', '.join(known) or 'none'}); apply the job that registers it first"
    )


def move(
    backend: StateBackend,
    providers: Providers,
    root: Path,
    model: str,
    action: str,
    version: int | None,
    command: str,
) -> tuple[base.AliasResponse, int]:
    """Approve ``model@version`` or roll its alias back; returns the move and the serial."""
    state = backend.read()
    job = find_job(state, model)
    provider = providers.get(job.provider, job.address)
    who = LockInfo.for_this_process(command).who
    ctx = base.ResourceContext.of(job.address, state.lineage, root)
    request = base.AliasRequest(ctx, job.spec, job.outputs, action, version, who)
    started = now()
    try:
        moved = provider.move_alias(request)
    except base.ProviderError as exc:
        raise PipeformError(f"{job.address}: {exc}") from exc
    result = alias_result(job.address, action, moved.model, moved.alias, moved.before, moved.after)
    entry = JournalEntry(
        command, who, started, now(), None, None, state.serial, state.serial, [result]
    )
    serial = backend.put(state.serial, replace(job, outputs=moved.outputs, updated_at=now()), entry)
    return moved, serial


def alias_result(
    address: str, action: str, model: str, alias: str, before: Any, after: Any
) -> dict[str, Any]:
    """One journal result for an alias move."""
    shown = f"v{before}" if before is not None else "none"
    return {
        "address": address,
        "action": action,
        "status": "succeeded",
        "error": None,
        "detail": f"{model} alias {alias}: {shown} -> v{after}",
        "model": model,
        "alias": alias,
        "from": before,
        "to": after,
    }


def apply_moves(before: State, after: State) -> list[dict[str, Any]]:
    """Journal results for the aliases an apply moved (a promotion recorded anew)."""
    moves = []
    for address, resource in sorted(after.resources.items()):
        if resource.kind != "TrainingJob":
            continue
        promotion = resource.outputs.get("promotion")
        prior = before.resources.get(address)
        earlier = prior.outputs.get("promotion") if prior is not None else None
        if not isinstance(promotion, dict) or promotion.get("status") != "promoted":
            continue
        if promotion == earlier or promotion.get("from") == promotion.get("version"):
            continue
        moves.append(
            alias_result(
                address,
                "promote",
                str(promotion.get("model")),
                str(promotion.get("alias")),
                promotion.get("from"),
                promotion.get("version"),
            )
        )
    return moves
