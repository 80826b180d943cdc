"""The local provider's Workspace settings, resolved against the spec tree.

The engine hands a provider its settings as the Workspace wrote them (camelCase keys:
``dataDir``, ``maxConcurrentJobs``, ``allowExternalPaths``); this module turns them into
paths and flags every kind module shares, and decides which user-given paths are allowed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from providers.base import JSON, PermanentError

DEFAULT_DATA_DIR = ".pipeform/data"


@dataclass(frozen=True)
class LocalSettings:
    root: Path  # the spec tree
    data_dir: Path  # absolute: where everything the local provider realises lives
    max_concurrent_jobs: int = 1
    allow_external_paths: bool = False
    #: providers.local.executor: "process" (python -m trainer) or "container" (podman)
    executor: str = "process"
    #: the trainer image the container executor runs
    image: str = "pipeform-trainer:0.1.0"
    #: providers.local.engine as written ({type: spark, master: ...}); None: this process
    engine: JSON | None = None
    #: Workspace-wide settings the engine passes every provider: name, defaults, pricing,
    #: registry (camelCase, as written), pushgatewayUrl
    workspace: JSON = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: JSON, root: Path) -> LocalSettings:
        root = root.absolute()
        data_dir = Path(str(config.get("dataDir") or DEFAULT_DATA_DIR)).expanduser()
        executor = config.get("executor") or {}
        return cls(
            root=root,
            data_dir=data_dir if data_dir.is_absolute() else root / data_dir,
            max_concurrent_jobs=int(config.get("maxConcurrentJobs") or 1),
            allow_external_paths=bool(config.get("allowExternalPaths", False)),
            executor=str(executor.get("type") or "process"),
            image=str(executor.get("image") or "pipeform-trainer:0.1.0"),
            engine=dict(config["engine"]) if config.get("engine") else None,
            workspace=dict(config.get("workspace") or {}),
        )

    @property
    def has_artifacts_bucket(self) -> bool:
        """providers.aws.artifacts is set: what is made here is stored in that bucket too
        (``providers.aws.artifacts``; boto3 loads only then)."""
        aws = self.workspace.get("aws")
        return isinstance(aws, dict) and bool((aws.get("artifacts") or {}).get("bucket"))

    def engine_note(self, work: str) -> str | None:
        """Where ``work`` runs, as a plan shows it after the change's reason (None: here)."""
        return f"{work} on spark ({self.engine.get('master')})" if self.engine else None

    def shown(self, path: Path) -> str:
        """A path as messages and outputs show it: relative to the spec tree when inside it."""
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def user_path(self, written: str, what: str) -> Path:
        """A path a spec names, relative to the spec tree; refused outside it unless allowed.

        Outside means an absolute path, a '..' that climbs out, or a symlink that leads out:
        specs come from pull requests, so they may not read arbitrary files on the machine
        that applies them unless the Workspace says so (providers.local.allowExternalPaths).
        """
        path = Path(os.path.expanduser(written)) if written.startswith("~") else Path(written)
        full = path if path.is_absolute() else self.root / path
        if self.allow_external_paths:
            return full
        real_root = self.root.resolve()
        if path.is_absolute() or not full.resolve().is_relative_to(real_root):
            raise PermanentError(
                f"{what} {written!r} is outside the spec tree; move it into the tree, or set "
                "providers.local.allowExternalPaths: true in the Workspace to allow it"
            )
        return full
