"""State: model, backend interface, and the backend a Workspace selects."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.diagnostics import PipeformError

if TYPE_CHECKING:  # the models pull in pydantic; `pipeform --help` must not
    from reconciler.snapshot import View
    from reconciler.state.backend import StateBackend  # not at run time: validate needs none


def open_backend(workspace: View, root: Path) -> StateBackend:
    """The backend the Workspace configures (sqlite unless it says otherwise)."""
    config = workspace.spec.state
    if config.backend == "sqlite":
        from reconciler.state.sqlite import SqliteBackend

        path = Path(config.path)
        return SqliteBackend(path if path.is_absolute() else root / path)
    raise PipeformError(
        f"the {config.backend} state backend is not available yet; use backend: sqlite"
    )
