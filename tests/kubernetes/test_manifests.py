"""Every manifest the kubernetes provider renders is one the API server accepts.

Built-in kinds validate with ``kubernetes-validate`` (the official OpenAPI schemas,
offline, strict: unknown fields fail) for the Kubernetes version of the installed client
(client 37 <-> Kubernetes 1.37). PrometheusRule, a CRD, validates with jsonschema against
tests/kubernetes/schemas/prometheusrule.schema.json, written from the Prometheus
Operator CRD's field names and types. The renderings are the provider's own (no
cluster needed): plan shows them, apply sends them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from providers.base import ApplyRequest, ResourceContext
from providers.kubernetes import KubernetesProvider
from providers.kubernetes.kind import KubeHandler
from tests.conformance.sample import document

SCHEMAS = Path(__file__).parent / "schemas"
LINEAGE = "0f3c9a52-6d1e-4b8f-9c2a-7e5d4b3a2c10"


def kubernetes_version() -> str:
    """The Kubernetes version the installed client speaks: client 37.x is 1.37."""
    from importlib.metadata import version

    return f"1.{version('kubernetes').split('.')[0]}.0"


SAMPLES: list[tuple[str, str, dict[str, Any]]] = [
    ("Quota", "team-a", {"cpu": 4, "memory": "8Gi", "gpus": 2, "concurrentJobs": 3}),
    ("Quota", "half-cpu", {"cpu": "500m", "namespace": "research"}),
    ("Quota", "mem", {"memory": "1.5Gi", "gpuTypes": ["a100"]}),
    ("Quota", "jobs", {"concurrentJobs": 1}),
    ("Secret", "api-token", {"from": {"env": "PF_MANIFEST_TOKEN"}}),
    (
        "Secret",
        "two-places",
        {
            "from": {"env": "PF_MANIFEST_TOKEN"},
            "targets": [
                {"provider": "kubernetes"},
                {"provider": "kubernetes", "namespace": "research", "name": "token.v2"},
            ],
        },
    ),
    ("Alert", "failed", {"template": {"type": "training-failed", "job": "m"}}),
    (
        "Alert",
        "stale",
        {
            "template": {"type": "data-stale", "dataset": "d", "maxAge": "2h"},
            "for": "5m",
            "severity": "critical",
            "labels": {"team": "growth"},
            "annotations": {"runbook_url": "https://example.com/r"},
        },
    ),
    ("Alert", "late", {"template": {"type": "training-not-succeeded", "job": "m", "within": "1d"}}),
    ("Alert", "invalid", {"template": {"type": "validation-failed", "dataset": "d"}}),
    ("Alert", "burn", {"template": {"type": "budget-burn", "budget": "b", "threshold": 90}}),
    ("Alert", "expr", {"expr": "up == 0", "for": "90s"}),
    (
        "SLO",
        "success",
        {"sli": {"template": {"type": "training-success-rate", "job": "m"}}, "objective": 99},
    ),
    (
        "SLO",
        "fresh",
        {
            "sli": {"template": {"type": "data-freshness", "dataset": "d", "maxAge": "1h"}},
            "objective": 95,
            "window": "7d",
        },
    ),
    (
        "SLO",
        "latency",
        {
            "sli": {"template": {"type": "registration-latency", "job": "m", "threshold": "10m"}},
            "objective": 90,
        },
    ),
    (
        "SLO",
        "ratio",
        {
            "sli": {
                "good": 'sum(rate(http_requests_total{code="200"}[{{window}}]))',
                "total": "sum(rate(http_requests_total[{{window}}]))",
            },
            "objective": 99.9,
        },
    ),
]


def rendered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Every manifest of every sample, as apply sends it (secret values filled)."""
    monkeypatch.setenv("PF_MANIFEST_TOKEN", "manifest-token-value")
    provider = KubernetesProvider({"namespace": "ml", "namespaces": ["research"]}, tmp_path)
    for kind, name, spec in SAMPLES:
        handler = provider.handler(kind)
        assert isinstance(handler, KubeHandler)
        doc = document(kind, name, spec)
        ctx = ResourceContext(f"{kind}/{name}", kind, name, LINEAGE, tmp_path)
        assert handler.validate(ctx, doc) == [], f"{kind}/{name}"
        request = ApplyRequest(ctx, doc, None, {}, None, {})
        yield from handler.fill(request, handler.rendered(ctx, doc, {}))


def test_every_built_in_manifest_validates_against_the_official_schemas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = kubernetes_version()
    kinds = set()
    for manifest in rendered(tmp_path, monkeypatch):
        if manifest["apiVersion"] == "monitoring.coreos.com/v1":
            continue
        kinds.add(manifest["kind"])
        kubernetes_validate.validate(manifest, version, strict=True)
    assert kinds == {"ResourceQuota", "Secret"}


def test_every_prometheus_rule_validates_against_the_crd_fields(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = json.loads((SCHEMAS / "prometheusrule.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    checked = 0
    for manifest in rendered(tmp_path, monkeypatch):
        if manifest["kind"] == "PrometheusRule":
            jsonschema.validate(manifest, schema, cls=jsonschema.Draft202012Validator)
            checked += 1
    assert checked == sum(1 for kind, _, _ in SAMPLES if kind in ("Alert", "SLO"))


def test_the_schemas_refuse_what_the_server_would(tmp_path: Path) -> None:
    """The validators are not vacuous: a misspelt field and a wrong type fail."""
    version = kubernetes_version()
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "q", "namespace": "ml"},
        "spec": {"hardd": {"requests.cpu": "1"}},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(quota, version, strict=True)
    schema = json.loads((SCHEMAS / "prometheusrule.schema.json").read_text())
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "r"},
        "spec": {
            "groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up", "for": "5 min"}]}]
        },
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(rule, schema)
    rule["spec"]["groups"][0]["rules"][0] = {"alert": "A", "record": "r", "expr": "up"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(rule, schema)
