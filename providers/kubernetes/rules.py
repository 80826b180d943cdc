"""Alert and SLO on the kubernetes provider: monitoring.coreos.com/v1 PrometheusRule objects.

Each Alert or SLO becomes one PrometheusRule in the Workspace's namespace, named
``<kind>-<name>`` in lower case (``alert-model-failed``), holding one rule group made by
``providers.rules``, the generator the prometheus provider writes rule files with, so a
rule is the same wherever it lands. The Prometheus Operator loads it when its
``ruleSelector`` matches the object's labels: the document's labels (and the Workspace's
``defaults.labels``) are set on the object, so a label such as ``release: prometheus``
there is how to match a selector. With ``providers.kubernetes.dashboards: true``, the
Workspace's Grafana dashboards follow the rules as ConfigMaps (``dashboards``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from providers import rules
from providers.base import (
    JSON,
    ApplyRequest,
    ApplyResponse,
    DeleteRequest,
    PermanentError,
    ResourceContext,
)
from providers.kubernetes.kind import KubeHandler


def rule_object_name(ctx: ResourceContext) -> str:
    """``alert-model-failed`` for Alert/model-failed."""
    return f"{ctx.kind.lower()}-{ctx.name}"


class RuleHandler(KubeHandler):
    """Alert and SLO alike: one PrometheusRule with the document's rule group."""

    primary: ClassVar[str] = "prometheusrules.monitoring.coreos.com"

    def manifests(
        self, ctx: ResourceContext, document: JSON, upstream: Mapping[str, JSON]
    ) -> list[JSON]:
        try:
            group = rules.rule_group(ctx.address, document)
        except rules.RuleError as exc:
            raise PermanentError(str(exc).removeprefix(f"{ctx.address}: ")) from None
        return [
            {
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "PrometheusRule",
                "metadata": {"name": rule_object_name(ctx), "namespace": self.settings.namespace},
                "spec": {"groups": [group]},
            }
        ]

    def outputs(self, ctx: ResourceContext, live: Sequence[JSON]) -> JSON:
        if not live:
            return {}
        metadata = live[0].get("metadata") or {}
        groups = (live[0].get("spec") or {}).get("groups") or []
        rule_list = [r for g in groups for r in g.get("rules") or [] if isinstance(r, dict)]
        return {
            "namespace": metadata.get("namespace"),
            "name": metadata.get("name"),
            "group": ctx.address,
            "rules": len(rule_list),
            "alerts": sorted({str(r["alert"]) for r in rule_list if r.get("alert")}),
        }

    def _apply(self, request: ApplyRequest, manifests: list[JSON]) -> ApplyResponse:
        if not self.settings.dashboards:
            return super()._apply(request, manifests)
        from providers.kubernetes import dashboards

        with dashboards.SYNC:  # the rules and the dashboards change together
            response = super()._apply(request, manifests)
            dashboards.sync(self.client, self.settings, request.ctx.lineage)
        return response

    def delete(self, request: DeleteRequest) -> None:
        if not self.settings.dashboards:
            return super().delete(request)
        from providers.kubernetes import dashboards

        with dashboards.SYNC:  # so that the last rule deleted also removes the dashboards
            super().delete(request)
            dashboards.sync(self.client, self.settings, request.ctx.lineage)
        return None


class AlertHandler(RuleHandler):
    kind = "Alert"


class SloHandler(RuleHandler):
    kind = "SLO"
