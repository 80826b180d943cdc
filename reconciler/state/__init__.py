"""State: model, backend interface, and the backend a Workspace selects."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.diagnostics import PipeformError

if TYPE_CHECKING:  # the models pull in pydantic; `pipeform --help` must not
    from reconciler.state.backend import (  # not at run time: validate needs none
        Access,
        StateBackend,
    )


def open_backend(config: Mapping[str, Any], root: Path, access: Access = "create") -> StateBackend:
    """The backend a Workspace's ``spec.state`` block (its JSON form) configures, opened
    for access (see ``reconciler.state.backend``: read-only commands never create it)."""
    config = {_snake(k): v for k, v in config.items()}  # the models' aliases are camelCase
    backend = config.get("backend", "sqlite")
    if backend == "sqlite":
        from reconciler.state.sqlite import SqliteBackend

        path = Path(config.get("path", ".pipeform/state.db"))
        return SqliteBackend(path if path.is_absolute() else root / path, access)
    if backend == "postgres":
        from reconciler.state.postgres import open_postgres

        return open_postgres(config, access)
    if backend == "s3":
        from reconciler.state.s3 import open_s3

        return open_s3(config, root, access)
    raise PipeformError(f"unknown state backend {backend!r}; use sqlite, postgres or s3")


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)
