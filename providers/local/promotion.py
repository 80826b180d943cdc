"""Promotion of a trained model version: the registry alias, approvals, held promotions.

``register.alias`` moves to a new version once its gates pass. With ``register.approval:
required`` the version is registered but the alias stays until ``pipeform approve
MODEL@VERSION``; with ``register.promoteWhen.sloNotBurning`` it stays while one of that
SLO's burn-rate alerts fires in the Prometheus the Workspace names
(``providers.prometheus.url``, a trusted setting), and a later plan and apply move it once
the alert resolved. What happened is the TrainingJob's ``promotion`` output (model, alias,
version, status ``promoted`` | ``awaiting-approval`` | ``held`` | ``not-promoted``, reason,
``from``: the version the alias named before, and ``gate: champion`` when the champion gate
kept the alias, which the next plan lists as waiting); ``aliasHistory`` lists the versions the
alias named, oldest first, which ``pipeform rollback`` walks back.
"""

from __future__ import annotations

from typing import Any

from providers.base import JSON, AliasRequest, AliasResponse, PermanentError, ProviderError
from providers.local.kind import inner_spec
from providers.local.settings import LocalSettings
from providers.local.training_config import registry_target
from reconciler.diagnostics import Diagnostic, error

PROMOTED, AWAITING, HELD, NOT_PROMOTED = "promoted", "awaiting-approval", "held", "not-promoted"
#: the promotion's ``gate`` when the trainer's champion gate kept the alias
CHAMPION_GATE = "champion"
HISTORY_KEPT = 50


def _register(spec: JSON) -> JSON:
    """register of a TrainingJob's spec (the inner spec, as every function here takes)."""
    register: JSON = spec.get("register") or {}
    return register


def _registry(spec: JSON, settings: LocalSettings) -> Any:
    from trainer.registry import open_registry

    return open_registry(registry_target(spec, settings))


def validate(settings: LocalSettings, address: str, spec: JSON) -> list[Diagnostic]:
    """A promotion condition needs somewhere to read it from."""
    slo = (_register(spec).get("promoteWhen") or {}).get("sloNotBurning")
    if slo and not settings.workspace.get("prometheusUrl"):
        return [
            error(
                f"spec.register.promoteWhen.sloNotBurning names SLO/{slo}, but the Workspace "
                "sets no providers.prometheus.url to read its alerts from; set it (a trusted "
                "setting) or remove promoteWhen",
                address=address,
                path="spec.register.promoteWhen.sloNotBurning",
            )
        ]
    return []


def holder(registry: Any, model: str, alias: str) -> int | None:
    """The version the alias names, or None (no such alias, model or registry yet)."""
    from trainer.registry.common import RegistryLookupError

    try:
        return int(registry.get(model, alias=alias).version)
    except RegistryLookupError:
        return None


def slo_burning(settings: LocalSettings, slo: str) -> str | None:
    """Why a promotion held by ``slo`` must keep waiting, or None when it may go ahead.

    Burning means one of the SLO's burn-rate alerts (the rules pipeform writes carry
    ``slo`` and ``slo_alert`` labels) is firing; pending alerts do not hold. When
    Prometheus cannot be read the promotion waits too: better late than on a burning SLO."""
    from providers.prometheus.server import PrometheusServer

    url = settings.workspace.get("prometheusUrl")
    if not url:
        return (
            f"whether SLO/{slo} burns cannot be read: set providers.prometheus.url in the Workspace"
        )
    try:
        alerts = PrometheusServer(str(url)).alerts()
    except ProviderError as exc:
        return f"whether SLO/{slo} burns cannot be read: {exc}"
    firing = sorted(
        {
            str(labels.get("alertname"))
            for alert in alerts
            if alert.get("state") == "firing"
            and isinstance(labels := alert.get("labels"), dict)
            and labels.get("slo") == slo
            and labels.get("slo_alert")
        }
    )
    if firing:
        return f"SLO/{slo} is burning its error budget ({', '.join(firing)} firing)"
    return None


def with_holder(history: list[Any], current: int | None) -> list[int]:
    """The alias history with the current holder last (if it moved since)."""
    kept = [int(v) for v in history if isinstance(v, int)]
    if current is not None and (not kept or kept[-1] != current):
        kept.append(current)
    return kept[-HISTORY_KEPT:]


def after_run(
    settings: LocalSettings,
    spec: JSON,
    prior: JSON,
    version: int | None,
    champion_held: str | None = None,
    trainer_note: str | None = None,
) -> JSON:
    """The ``promotion`` and ``aliasHistory`` outputs once a run finished (or was adopted):
    moves the alias when the job's conditions let it, else says why it waits.
    ``champion_held``: the trainer's champion gate kept the alias, and why (never moved
    here then; ``pipeform approve`` can still move it by hand); ``trainer_note``: what
    the trainer said of a promotion it made (the champion it compared with)."""
    register = _register(spec)
    alias, model = register.get("alias"), register.get("model")
    history = list(prior.get("aliasHistory") or [])
    if not alias or not model or version is None:
        return {"promotion": None, "aliasHistory": history}
    registry = _registry(spec, settings)
    current = holder(registry, model, alias)
    before = history[-1] if history else (current if current != version else None)
    promotion: JSON = {"model": model, "alias": alias, "version": version, "from": before}
    slo = (register.get("promoteWhen") or {}).get("sloNotBurning")
    if current == version:
        promotion.update(status=PROMOTED, reason=trainer_note or "")
    elif champion_held:
        promotion.update(status=NOT_PROMOTED, reason=champion_held, gate=CHAMPION_GATE)
    elif register.get("approval") == "required":
        promotion.update(
            status=AWAITING,
            reason=f"awaits approval: pipeform approve {model}@{version}",
        )
    elif slo and (why := slo_burning(settings, slo)):
        promotion.update(status=HELD, reason=f"held: {why}")
    elif slo:
        registry.set_alias(model, alias, version)
        current = version
        promotion.update(status=PROMOTED, reason=f"SLO/{slo} is not burning")
    else:  # the trainer promotes by itself; it left the alias (a gate said not to)
        promotion.update(status=NOT_PROMOTED, reason="the trainer left the alias where it was")
    return {"promotion": promotion, "aliasHistory": with_holder(history, current)}


def note(promotion: JSON | None) -> str | None:
    """What apply says about a promotion: "registered expense-model v3; alias champion
    held: ...", or None when the alias simply moved."""
    if not isinstance(promotion, dict):
        return None
    shown = f"registered {promotion['model']} v{promotion['version']}"
    if promotion.get("status") == PROMOTED:
        return f"{shown}, alias {promotion['alias']} -> v{promotion['version']}"
    return f"{shown}; alias {promotion['alias']} not moved: {promotion.get('reason')}"


def release(settings: LocalSettings, spec: JSON, outputs: JSON) -> str | None:
    """For a plan: a held promotion that may go ahead now, in words, or None."""
    promotion = outputs.get("promotion")
    if not isinstance(promotion, dict) or promotion.get("status") != HELD:
        return None
    slo = (_register(spec).get("promoteWhen") or {}).get("sloNotBurning")
    if slo and slo_burning(settings, slo) is not None:
        return None
    why = f"SLO/{slo} is no longer burning" if slo else "its condition was removed"
    return (
        f"promote {promotion['model']} v{promotion['version']} to alias {promotion['alias']}: {why}"
    )


def waiting(settings: LocalSettings, spec: JSON, outputs: JSON) -> str | None:
    """For a plan: the recorded version that waits for an approval or a condition, or
    that the champion gate kept from the alias (an approval promotes it anyway)."""
    promotion = outputs.get("promotion")
    if not isinstance(promotion, dict):
        return None
    status = promotion.get("status")
    champion_held = status == NOT_PROMOTED and promotion.get("gate") == CHAMPION_GATE
    if status not in (AWAITING, HELD) and not champion_held:
        return None
    shown = f"{promotion['model']} v{promotion['version']} -> alias {promotion['alias']}"
    model, version = promotion["model"], promotion["version"]
    if status == AWAITING:
        return f"{shown}: awaits approval (pipeform approve {model}@{version})"
    if champion_held:
        verdict = str(promotion.get("reason") or "").removeprefix("not promoted: ")
        return (
            f"{shown}: not promoted by the champion gate: {verdict} "
            f"(pipeform approve {model}@{version} promotes it anyway)"
        )
    slo = (_register(spec).get("promoteWhen") or {}).get("sloNotBurning")
    why = slo_burning(settings, slo) if slo else None
    return f"{shown}: held: {why}" if why else None


def move_alias(settings: LocalSettings, request: AliasRequest) -> AliasResponse:
    """Approve a version or roll the alias back (``pipeform approve``, ``rollback``)."""
    from trainer.registry.common import RegistryError

    spec = inner_spec(request.spec)
    register = _register(spec)
    model, alias = register.get("model"), register.get("alias")
    if not model or not alias:
        raise PermanentError(
            f"{request.ctx.address} registers no alias (spec.register.alias), so there is "
            "nothing to approve or roll back"
        )
    registry = _registry(spec, settings)
    outputs = dict(request.outputs)
    history = list(outputs.get("aliasHistory") or [])
    current = holder(registry, model, alias)
    history = with_holder(history, current)
    target = request.version
    if request.action == "rollback" and target is None:
        earlier = [v for v in history[:-1] if v != current]
        if not earlier:
            raise PermanentError(
                f"alias {alias} of model {model} has named no earlier version that pipeform "
                f"recorded (now: {_shown(current)}); give one: pipeform rollback {model} "
                "--to VERSION"
            )
        target = earlier[-1]
    assert target is not None
    try:
        registry.get(model, version=target)  # refuses a version that does not exist
    except RegistryError as exc:
        raise PermanentError(f"cannot {request.action} {model}@{target}: {exc}") from None
    registry.set_alias(model, alias, target)
    if request.action == "rollback" and target in history:
        history = history[: len(history) - history[::-1].index(target)]  # back to it
    else:
        history = with_holder(history, target)
    outputs["aliasHistory"] = history
    promotion = outputs.get("promotion")
    if isinstance(promotion, dict) and promotion.get("version") == target:
        verb = "approved" if request.action == "approve" else "rolled back to"
        outputs["promotion"] = {
            **promotion,
            "status": PROMOTED,
            "reason": f"{verb} by {request.actor}",
            "from": current,
        }
    return AliasResponse(outputs, model, alias, current, target)


def _shown(version: int | None) -> str:
    return f"v{version}" if version is not None else "no version"
