"""Model registries: where a trained package becomes a registered model version.

``open_registry(target)`` returns the registry a ``RegistryTarget`` names: the local
registry (SQLite plus content-addressed artifact files in the workspace) by default, or
the MLflow Model Registry. Both implement ``Registry``. ``register`` is idempotent by
run id: registering the same run again (a retry after a crash) returns the version the
first call made instead of adding another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from trainer.config import RegistryTarget


@dataclass(frozen=True)
class ModelVersion:
    model: str
    version: int
    run_id: str
    uri: str  # where the package lives (a directory, or an MLflow models:/ URI)
    package_sha256: str
    created_at: str  # ISO 8601, UTC
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    lineage: dict[str, Any] = field(default_factory=dict)


class Registry(Protocol):
    def register(
        self,
        package_dir: Path,
        model: str,
        *,
        run_id: str,
        tags: dict[str, str],
        lineage: dict[str, Any],
    ) -> ModelVersion: ...

    def set_alias(self, model: str, alias: str, version: int) -> None: ...

    def get(
        self, model: str, version: int | None = None, alias: str | None = None
    ) -> ModelVersion: ...

    def versions(self, model: str) -> list[ModelVersion]: ...


def open_registry(target: RegistryTarget) -> Registry:
    if target.type == "mlflow":
        from trainer.registry.mlflow import MlflowRegistry

        return MlflowRegistry(target.uri)
    from trainer.registry.local import LocalRegistry

    return LocalRegistry(Path(target.uri))
