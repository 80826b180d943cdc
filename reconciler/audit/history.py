"""``pipeform history`` filters: the applies that touched an address, since a date."""

from __future__ import annotations

from datetime import UTC, datetime

from reconciler.diagnostics import PipeformError
from reconciler.state.backend import StateBackend
from reconciler.state.journal import ApplyRecord, fold

#: journal rows read when a filter needs the whole journal
_ALL = 1 << 62


def parse_since(text: str) -> datetime:
    """A date (2026-12-01) or a date and time (2026-12-01T10:00, UTC unless given)."""
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise PipeformError(
            f"--since {text!r} is not a date: give one as YYYY-MM-DD or YYYY-MM-DDTHH:MM"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _at(text: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def filtered(
    backend: StateBackend, address: str | None, since: datetime | None, limit: int
) -> list[ApplyRecord]:
    """The newest ``limit`` applies that changed ``address`` (its changes only) and
    started at or after ``since``, oldest first."""
    records = fold(backend.journal(_ALL))
    out: list[ApplyRecord] = []
    for record in records:
        started = _at(record.started_at)
        if since is not None and (started is None or started < since):
            continue
        if address is not None:
            changes = [c for c in record.changes if c.get("address") == address]
            if not changes:
                continue
            record = ApplyRecord(**{**record.__dict__, "changes": changes})
        out.append(record)
    return out[-limit:]
