"""The kubernetes provider's Workspace settings (``providers.kubernetes``), as one value.

The engine hands a provider its block as the Workspace wrote it (camelCase keys). Every
setting here is trusted configuration (docs/security.md): where the cluster is, which
credentials reach it, which namespaces documents may name, which image the Jobs run.
``workspace`` holds the settings every provider receives (the Workspace's name, defaults,
pricing, and the local provider's block, which the delegated kinds are built from).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from providers.base import JSON

DEFAULT_NAMESPACE = "default"
DEFAULT_MOUNT_PATH = "/pipeform"
DEFAULT_TTL_SECONDS = 86400
DEFAULT_POLL_SECONDS = 2.0


@dataclass(frozen=True)
class ImageSettings:
    repository: str
    digest: str | None = None
    pull_policy: str = "IfNotPresent"

    @property
    def reference(self) -> str | None:
        """``repository@sha256:...``, or None without a digest (a Job needs one)."""
        return f"{self.repository}@{self.digest}" if self.digest else None


@dataclass(frozen=True)
class VolumeSettings:
    claim: str
    mount_path: str = DEFAULT_MOUNT_PATH


@dataclass(frozen=True)
class KubeSettings:
    root: Path  # the spec tree, which a relative kubeconfig path is resolved against
    kubeconfig: str | None = None  # as written; ``kubeconfig_path`` resolves it
    context: str | None = None
    in_cluster: bool = False
    namespace: str = DEFAULT_NAMESPACE
    namespaces: tuple[str, ...] = ()  # the allowlist beyond ``namespace``
    image: ImageSettings | None = None
    gpu_types: dict[str, JSON] = field(default_factory=dict)  # {nodeSelector, tolerations}
    volume: VolumeSettings | None = None
    service_account: str | None = None
    ttl_seconds_after_finished: int = DEFAULT_TTL_SECONDS
    poll_seconds: float = DEFAULT_POLL_SECONDS
    dashboards: bool = False
    workspace: JSON = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: JSON | None, root: Path) -> KubeSettings:
        config = config or {}
        image = config.get("image") or None
        volume = config.get("volume") or None
        return cls(
            root=root.absolute(),
            kubeconfig=config.get("kubeconfig") or None,
            context=config.get("context") or None,
            in_cluster=bool(config.get("inCluster", False)),
            namespace=str(config.get("namespace") or DEFAULT_NAMESPACE),
            namespaces=tuple(str(n) for n in config.get("namespaces") or ()),
            image=ImageSettings(
                str(image["repository"]),
                image.get("digest") or None,
                str(image.get("pullPolicy") or "IfNotPresent"),
            )
            if image
            else None,
            gpu_types={str(k): dict(v or {}) for k, v in (config.get("gpuTypes") or {}).items()},
            volume=VolumeSettings(
                str(volume["claim"]), str(volume.get("mountPath") or DEFAULT_MOUNT_PATH)
            )
            if volume
            else None,
            service_account=config.get("serviceAccount") or None,
            ttl_seconds_after_finished=int(
                config.get("ttlSecondsAfterFinished") or DEFAULT_TTL_SECONDS
            ),
            poll_seconds=float(config.get("pollSeconds") or DEFAULT_POLL_SECONDS),
            dashboards=bool(config.get("dashboards", False)),
            workspace=dict(config.get("workspace") or {}),
        )

    @property
    def allowed_namespaces(self) -> tuple[str, ...]:
        """The namespaces documents may name: the Workspace's, then the allowlist."""
        return (self.namespace, *(n for n in self.namespaces if n != self.namespace))

    @property
    def local_config(self) -> JSON:
        """The local provider's configuration (the Workspace's ``providers.local`` block),
        which the delegated kinds and TrainingJob's run records use."""
        return {**(self.workspace.get("local") or {}), "workspace": self.workspace}

    @property
    def workspace_name(self) -> str:
        return str(self.workspace.get("name") or "default")

    def kubeconfig_path(self) -> Path:
        """The kubeconfig file: the setting (relative to the spec tree), else the first
        file in KUBECONFIG, else ~/.kube/config."""
        if self.kubeconfig:
            path = Path(os.path.expanduser(self.kubeconfig))
            return path if path.is_absolute() else self.root / path
        listed = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
        if listed:
            return Path(os.path.expanduser(listed[0]))
        return Path(os.path.expanduser("~/.kube/config"))

    def shown(self, path: Path) -> str:
        """A path as messages show it: relative to the spec tree when inside it."""
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)
