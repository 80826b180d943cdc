"""The Workspace's Grafana dashboards as ConfigMaps, for the Grafana sidecar
(``providers.kubernetes.dashboards: true``).

The dashboards are the prometheus provider's (``providers.prometheus.dashboards.render``:
executive, on-call, debug), one ConfigMap each, ``pipeform-<workspace>-<view>`` in the
Workspace's namespace, labelled ``grafana_dashboard: "1"`` (the sidecar's default
selector) and with pipeform's ownership marks under the address ``Workspace/<name>``.
They follow the PrometheusRules as the dashboard files follow the rules file: written
after each Alert or SLO is, removed once the state has no PrometheusRule left. A
ConfigMap of that name that is not this state's is left alone.
"""

from __future__ import annotations

import logging
import threading

from providers.base import JSON, ResourceContext
from providers.kubernetes import objects
from providers.kubernetes.client import RESOURCES, KubeClient
from providers.kubernetes.settings import KubeSettings

log = logging.getLogger("pipeform.kubernetes")
SIDECAR_LABEL = "grafana_dashboard"
#: held while an Alert or SLO and the dashboards after it are written or deleted, so that
#: two rules deleted at once cannot each see the other and both keep the dashboards
SYNC = threading.Lock()


def manifests(settings: KubeSettings, lineage: str) -> list[JSON]:
    """One ConfigMap per dashboard, with its JSON under the file's name."""
    from providers.prometheus import dashboards  # grafana-foundation-sdk loads only here

    workspace = settings.workspace_name
    ctx = ResourceContext.of(f"Workspace/{workspace}", lineage, settings.root)
    return [
        objects.owned(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": file_name.removesuffix(".json"),
                    "namespace": settings.namespace,
                    "labels": {SIDECAR_LABEL: "1"},
                },
                "data": {file_name: content.decode("utf-8")},
            },
            ctx,
        )
        for file_name, content in sorted(dashboards.render(workspace, lineage).items())
    ]


def _ours(live: JSON, lineage: str) -> bool:
    labels = (live.get("metadata") or {}).get("labels") or {}
    return bool(
        labels.get(objects.MANAGED_BY) == objects.MANAGER
        and labels.get(objects.LINEAGE_LABEL) == lineage
    )


def sync(client: KubeClient, settings: KubeSettings, lineage: str) -> None:
    """Apply the dashboards while this state has PrometheusRules; delete them after."""
    rules = client.list(
        RESOURCES["prometheusrules.monitoring.coreos.com"],
        settings.namespace,
        objects.selector(lineage),
    )
    resource = RESOURCES["configmaps"]
    for manifest in manifests(settings, lineage):
        name = manifest["metadata"]["name"]
        live = client.get(resource, settings.namespace, name)
        if live is not None and not _ours(live, lineage):
            log.warning(
                "warning: ConfigMap %s/%s exists but is not a dashboard of this pipeform "
                "state, so it is left alone",
                settings.namespace,
                name,
            )
        elif rules:
            client.apply(manifest)
        elif live is not None:
            client.delete(resource, settings.namespace, name)
