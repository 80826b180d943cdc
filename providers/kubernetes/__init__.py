"""The kubernetes provider: pipeform's kinds as objects on a Kubernetes cluster.

Its settings are the Workspace's ``providers.kubernetes`` block (kubeconfig and context, or
in-cluster; the namespace and the allowlist of others; the trainer image; GPU node
mapping; the data volume). Each kind is one module with a handler (``quota``,
``secrets``, ``rules``; TrainingJob in ``training``), each a ``kind.KubeHandler``; Dataset,
FeatureSet and Budget are realised by the local provider's handlers, built from the
Workspace's ``providers.local`` block, so ``defaults: {provider: kubernetes}`` serves a
whole pipeline. Every write is a server-side apply as field manager ``pipeform``; refresh
reads with one LIST per (kind, namespace) by the ownership labels (``read_batch``).
The ``kubernetes`` package loads with the first API call, never at import.
"""

from __future__ import annotations

import importlib
import threading
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

from providers import handlers
from providers.base import (
    JSON,
    AliasRequest,
    AliasResponse,
    ListOwnedRequest,
    ListOwnedResponse,
    OwnedObject,
    PermanentError,
    Provider,
    ReadRequest,
    ReadResponse,
)
from providers.handlers import Dispatching
from providers.kubernetes import objects
from providers.kubernetes.client import RESOURCES, KubeClient, NotFound, Resource
from providers.kubernetes.kind import KubeHandler
from providers.kubernetes.objects import ObjectRef
from providers.kubernetes.settings import KubeSettings
from providers.local import LocalProvider

#: kind -> the module and class of its handler, imported on the first call for the kind
HANDLERS: Mapping[str, str] = {
    "Quota": "providers.kubernetes.quota:QuotaHandler",
    "Secret": "providers.kubernetes.secrets:SecretHandler",
    "Alert": "providers.kubernetes.rules:AlertHandler",
    "SLO": "providers.kubernetes.rules:SloHandler",
    "TrainingJob": "providers.kubernetes.training:TrainingJobHandler",
}
#: kinds realised by the local provider's handlers (their data lives on the shared volume)
DELEGATED = frozenset({"Dataset", "FeatureSet", "Budget"})
#: the resources (``client.RESOURCES`` keys) holding objects that documents became, which
#: ``list_owned`` looks through
OWNED_RESOURCES = (
    "resourcequotas",
    "secrets",
    "prometheusrules.monitoring.coreos.com",
    "jobs.batch",
    "pytorchjobs.kubeflow.org",
)


class KubernetesProvider(Dispatching, Provider):
    name: ClassVar[str] = "kubernetes"
    kinds: ClassVar[frozenset[str]] = frozenset(HANDLERS) | DELEGATED
    concurrent_reads: ClassVar[bool] = True  # every read waits on the API server

    def __init__(self, config: JSON | None = None, root: Path | None = None) -> None:
        super().__init__(config, root)
        self.settings = KubeSettings.from_config(self.config, self.root)
        self.client = KubeClient(self.settings)
        self._handlers: dict[str, handlers.KindHandler] = {}
        self._local: LocalProvider | None = None
        self._loading = threading.RLock()

    def handler(self, kind: str) -> handlers.KindHandler:
        found = self._handlers.get(kind)
        if found is None:
            with self._loading:
                found = self._handlers.get(kind)
                if found is None:
                    found = self._handlers[kind] = self._make(kind)
        return found

    def _make(self, kind: str) -> handlers.KindHandler:
        if kind in DELEGATED:
            return self.local().handler(kind)
        target = HANDLERS.get(kind)
        if target is None:
            raise PermanentError(
                f"the kubernetes provider cannot realise {kind} resources "
                f"(it realises {', '.join(sorted(self.kinds))})"
            )
        module, _, attr = target.partition(":")
        cls: type[KubeHandler] = getattr(importlib.import_module(module), attr)
        return cls(self.settings, self.client)

    def local(self) -> LocalProvider:
        """The local provider the delegated kinds run on, from the Workspace's
        ``providers.local`` block (which the engine passes as ``workspace.local``)."""
        with self._loading:
            if self._local is None:
                self._local = LocalProvider(self.settings.local_config, self.root)
            return self._local

    def move_alias(self, request: AliasRequest) -> AliasResponse:
        """A TrainingJob's model alias lives in the registry its runs register in: the
        local provider's (on the shared volume), or MLflow; moved as the local provider does."""
        if request.ctx.kind != "TrainingJob":
            return super().move_alias(request)
        return self.local().move_alias(request)

    def read_batch(self, requests: Sequence[ReadRequest]) -> list[ReadResponse] | None:
        """One LIST per (resource, namespace) with the state's ownership selector for every
        kind this provider renders; the delegated kinds read one by one."""
        wanted: dict[int, list[ObjectRef]] = {}
        groups: dict[tuple[Resource, str | None, str], set[str]] = defaultdict(set)
        for i, request in enumerate(requests):
            handler = self.handler(request.ctx.kind)
            if isinstance(handler, KubeHandler):
                refs = handler.refs(request)
                wanted[i] = refs
                for ref in refs:
                    groups[(ref.resource, ref.namespace, request.ctx.lineage)].add(ref.name)
        listed: dict[tuple[Resource, str | None, str], dict[str, JSON]] = {}
        for resource, namespace, lineage in sorted(groups, key=_group_order):
            items = self.client.list(resource, namespace, objects.selector(lineage))
            listed[(resource, namespace, lineage)] = {
                str((item.get("metadata") or {}).get("name")): item for item in items
            }
        responses: list[ReadResponse] = []
        for i, request in enumerate(requests):
            handler = self.handler(request.ctx.kind)
            if not isinstance(handler, KubeHandler):
                responses.append(handler.read(request))
                continue
            found: dict[ObjectRef, JSON | None] = {}
            for ref in wanted[i]:
                live = listed[(ref.resource, ref.namespace, request.ctx.lineage)].get(ref.name)
                found[ref] = (
                    live if live is not None and objects.is_ours(live, request.ctx) else None
                )
            responses.append(handler.respond(request, found))
        return responses

    def list_owned(self, request: ListOwnedRequest) -> ListOwnedResponse:
        """Objects with pipeform's marks, of any state, in the namespaces documents may
        use (asked when state is empty, to warn that it may have been lost), and the local
        records of the delegated kinds. A resource the cluster does not serve (no
        Prometheus Operator, no training operator) is skipped; an unreachable cluster
        ends the search (the warning is advice)."""
        found: list[OwnedObject] = []
        for key in OWNED_RESOURCES:
            for namespace in self.settings.allowed_namespaces:
                try:
                    items = self.client.list(
                        RESOURCES[key], namespace, f"{objects.MANAGED_BY}={objects.MANAGER}"
                    )
                except NotFound:
                    break  # not served here: no such objects in any namespace
                for item in items:
                    marks = objects.owner(item)
                    if marks is not None:
                        ref = ObjectRef(RESOURCES[key], namespace, item["metadata"]["name"])
                        where = f"{ref.shown} on {self.client.host}"
                        found.append(OwnedObject(marks[0], marks[1], ref.id, where))
        if self.settings.workspace.get("local") is not None:
            local = self.local().list_owned(request).objects
            found += [o for o in local if o.address.split("/", 1)[0] in DELEGATED]
        return ListOwnedResponse(found)


def _group_order(group: tuple[Resource, str | None, str]) -> tuple[str, str, str]:
    resource, namespace, lineage = group
    return resource.key, namespace or "", lineage


__all__ = ["DELEGATED", "HANDLERS", "KubernetesProvider"]
