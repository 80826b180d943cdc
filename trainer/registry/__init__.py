"""Model registries: where a trained package becomes a registered model version.

``open_registry(target)`` returns the registry a ``RegistryTarget`` names: the local
registry (SQLite plus content-addressed artifact files in the workspace) by default, or
the MLflow Model Registry. Both subclass ``Registry``, whose ``register`` checks the
model name and run id once for both and hands a ``Registration`` to the registry's
``_register``. ``register`` is idempotent by run id: registering the same run again (a
retry after a crash) returns the version the first call made instead of adding another.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.config import RegistryTarget
from trainer.registry.common import check_model_name, check_run_id


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


@dataclass(frozen=True)
class Registration:
    """One ``register`` call, its names already checked."""

    package_dir: Path
    model: str
    run_id: str
    tags: dict[str, str]
    lineage: dict[str, Any]


class Registry(abc.ABC):
    def register(
        self,
        package_dir: Path,
        model: str,
        *,
        run_id: str,
        tags: dict[str, str],
        lineage: dict[str, Any],
    ) -> ModelVersion:
        """Register a package as the model's next version, or return the run's version."""
        check_model_name(model)
        check_run_id(run_id)
        return self._register(Registration(Path(package_dir), model, run_id, tags, lineage))

    @abc.abstractmethod
    def _register(self, request: Registration) -> ModelVersion: ...

    @abc.abstractmethod
    def set_alias(self, model: str, alias: str, version: int) -> None: ...

    @abc.abstractmethod
    def get(
        self, model: str, version: int | None = None, alias: str | None = None
    ) -> ModelVersion: ...

    @abc.abstractmethod
    def versions(self, model: str) -> list[ModelVersion]: ...

    def package_path(self, version: ModelVersion, scratch: Path) -> Path:
        """A local directory holding the version's package (downloaded into scratch when
        the registry keeps it remotely); the local registry's artifacts are directories."""
        return Path(version.uri)


def open_registry(target: RegistryTarget) -> Registry:
    if target.type == "mlflow":
        from trainer.registry.mlflow import MlflowRegistry

        return MlflowRegistry(target.uri)
    from trainer.registry.local import LocalRegistry

    return LocalRegistry(Path(target.uri))
