"""Quota on the kubernetes provider: a v1 ResourceQuota in the Quota's namespace.

The ResourceQuota is named after the Quota and lives in ``spec.namespace`` (else the
Workspace's namespace; either must be one the Workspace allows). Its ``spec.hard`` holds
what the Quota limits: cpu as ``requests.cpu`` and ``limits.cpu``, memory as
``requests.memory`` and ``limits.memory``, gpus as ``requests.nvidia.com/gpu``, and
concurrentJobs as ``count/jobs.batch``. (``gpuTypes`` has no ResourceQuota form: the
plan-time quota check applies it.) The outputs carry ``status.used`` as ``used``, which
the cluster keeps current, so the plan-time check of a TrainingJob reads what is in use
now: ``live_quota`` reads it for one Quota.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from providers.base import JSON, ResourceContext
from providers.handlers import inner_spec
from providers.kubernetes.client import RESOURCES, KubeClient
from providers.kubernetes.kind import KubeHandler

#: Quota field -> the ResourceQuota ``hard`` keys it sets
HARD_KEYS: Mapping[str, tuple[str, ...]] = {
    "cpu": ("requests.cpu", "limits.cpu"),
    "memory": ("requests.memory", "limits.memory"),
    "gpus": ("requests.nvidia.com/gpu",),
    "concurrentJobs": ("count/jobs.batch",),
}


def hard(spec: JSON) -> dict[str, str]:
    """The ResourceQuota's ``spec.hard`` for a Quota's spec (quantities as strings)."""
    out: dict[str, str] = {}
    for field, keys in HARD_KEYS.items():
        value = spec.get(field)
        if value is not None:
            out.update(dict.fromkeys(keys, str(value)))
    return out


def namespace_of(spec: JSON, default: str) -> str:
    """The namespace a Quota applies to: its own, else the Workspace's."""
    return str(spec.get("namespace") or default)


def live_quota(client: KubeClient, namespace: str, name: str) -> JSON | None:
    """One ResourceQuota as the cluster holds it now: ``{"hard": {...}, "used": {...}}``
    (status.hard, else spec.hard; status.used, empty until the quota controller counts),
    or None when there is none."""
    live = client.get(RESOURCES["resourcequotas"], namespace, name)
    if live is None:
        return None
    return _usage(live)


def _usage(live: JSON) -> JSON:
    status = live.get("status") or {}
    spec = live.get("spec") or {}
    return {
        "hard": dict(status.get("hard") or spec.get("hard") or {}),
        "used": dict(status.get("used") or {}),
    }


class QuotaHandler(KubeHandler):
    kind = "Quota"
    primary: ClassVar[str] = "resourcequotas"

    def manifests(
        self, ctx: ResourceContext, document: JSON, upstream: Mapping[str, JSON]
    ) -> list[JSON]:
        spec = inner_spec(document)
        return [
            {
                "apiVersion": "v1",
                "kind": "ResourceQuota",
                "metadata": {
                    "name": ctx.name,
                    "namespace": namespace_of(spec, self.settings.namespace),
                },
                "spec": {"hard": hard(spec)},
            }
        ]

    def namespace_paths(self, document: JSON) -> Mapping[str, str | None]:
        return {"spec.namespace": inner_spec(document).get("namespace")}

    def spec_of(self, ctx: ResourceContext, live: Sequence[JSON]) -> JSON | None:
        """An imported ResourceQuota in spec terms, shaped as the spec model writes it."""
        found = (live[0].get("spec") or {}).get("hard") or {}
        namespace = (live[0].get("metadata") or {}).get("namespace")

        def first(field: str) -> str | None:
            return next((str(found[k]) for k in HARD_KEYS[field] if k in found), None)

        def count(field: str) -> int | None:
            value = first(field)
            return int(value) if value is not None and value.isdigit() else None

        return {
            "provider": None,
            "namespace": None if namespace == self.settings.namespace else namespace,
            "gpus": count("gpus"),
            "gpuTypes": None,
            "cpu": first("cpu"),
            "memory": first("memory"),
            "concurrentJobs": count("concurrentJobs"),
        }

    def outputs(self, ctx: ResourceContext, live: Sequence[JSON]) -> JSON:
        if not live:
            return {}
        metadata = live[0].get("metadata") or {}
        return {
            "namespace": metadata.get("namespace"),
            "name": metadata.get("name"),
            **_usage(live[0]),
        }
