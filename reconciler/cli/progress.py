"""Apply's progress lines: each resource as it starts and ends, and the trainer's epochs."""

from __future__ import annotations

from typing import Any


def _out() -> Any:
    from reconciler.render.diagnostics import console

    return console()


def listener() -> Any:
    """Progress lines as each resource starts and ends (called from worker threads)."""
    import threading

    from reconciler.plan.model import Action
    from reconciler.render.diagnostics import plain_stream
    from reconciler.render.lines import Line

    stream = plain_stream()
    out = _out() if stream is None else None
    lock = threading.Lock()
    verbs = {
        "create": "creating",
        "update": "updating",
        "delete": "destroying",
        "delete-then-create": "replacing",
        "create-then-delete": "replacing",
    }

    def emit(line: Line) -> None:
        with lock:
            if out is not None:
                out.print(line.to_rich())
            elif stream is not None:  # plain output skips rich, which costs more than the change
                stream.write(line.plain + "\n")
                stream.flush()

    def progress(address: str, event: dict[str, Any]) -> None:
        line = progress_line(event)
        if line:
            emit(Line(f"{address}: {line}", style="dim"))

    from providers import base

    base.set_progress(progress)

    def listen(event: str, change: Any, outcome: Any) -> None:
        if change.action is Action.NOOP:
            return
        if event == "start":
            verb = verbs.get(change.action.value, change.action.value)
            emit(
                Line(
                    f"{change.address}: {f'adopting {change.adopts}' if change.adopts else verb}..."
                )
            )
        elif outcome.status == "succeeded":
            note = f": {outcome.note}" if outcome.note else ""
            emit(Line(f"{change.address}: done ({outcome.seconds:.1f}s){note}"))
        elif outcome.status == "skipped":
            emit(Line(f"{change.address}: skipped ({outcome.error})", style="yellow"))
        else:
            line = Line(f"{change.address}: {outcome.status}", style="red")
            line.append(f": {outcome.error}")
            emit(line)

    return listen


def progress_line(event: dict[str, Any]) -> str:
    """One line for a provider's progress event, or "" for events not worth a line."""
    kind = event.get("event")
    if kind == "progress":  # a line the trainer printed; "stage" is its own event name
        if event.get("stage") == "epoch":
            return _epoch_line(event)
        if event.get("stage") in ("resumed", "early-stop", "preempted"):
            return str(event["stage"])
        if event.get("stage") == "registered":
            moved = f"; {event['promotion']}" if event.get("promotion") else ""
            return f"registered {event.get('model')} v{event.get('version')}{moved}"
        return ""
    if kind == "started":
        return f"run {str(event.get('runId', ''))[:12]} started (attempt {event.get('attempt', 1)})"
    if kind == "retrying":
        return f"retrying from the newest checkpoint (attempt {event.get('attempt')})"
    if kind == "waiting":
        return str(event.get("message") or "waiting")
    if kind == "validated":
        return str(event.get("summary") or "")
    return ""


def _epoch_line(event: dict[str, Any]) -> str:
    parts = [f"epoch {event.get('epoch')}/{event.get('epochs')}"]
    loss = event.get("loss")
    if isinstance(loss, int | float):
        parts.append(f"loss {loss:.4f}")
    metrics = event.get("metrics") or {}
    for name in ("auc", "accuracy", "rmse", "r2"):
        value = metrics.get(name)
        if isinstance(value, int | float):
            parts.append(f"val {name} {value:.4f}")
    rate = event.get("samples_per_s")
    if isinstance(rate, int | float):
        parts.append(f"{rate:,.0f} samples/s")
    return ", ".join(parts)
