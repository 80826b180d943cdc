"""Which provider realises a document: aws for Secrets that target it and CloudWatch Alerts."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.kinds import KINDS
from reconciler.plan.planner import Providers
from reconciler.spec.facts import Facts


def facts(kind: str, spec: dict[str, Any]) -> Facts:
    model = KINDS[kind].model_validate(
        {"apiVersion": "pipeform/v1", "kind": kind, "metadata": {"name": "x"}, "spec": spec}
    )
    return Facts.of(model)


@pytest.mark.parametrize(
    ("kind", "spec", "provider"),
    [
        ("Secret", {"from": {"env": "V"}, "targets": [{"provider": "aws"}]}, "aws"),
        ("Secret", {"from": {"env": "V"}}, "local"),
        (
            "Secret",
            {"from": {"env": "V"}, "targets": [{"provider": "local"}, {"provider": "aws"}]},
            "local",
        ),
        ("Alert", {"cloudwatch": {"namespace": "N", "metric": "M", "threshold": 1}}, "aws"),
        ("Alert", {"expr": "up == 0"}, "prometheus"),
        ("Budget", {"amount": 5, "provider": "aws"}, "aws"),
    ],
)
def test_documents_go_to_the_provider_their_spec_implies(
    kind: str, spec: dict[str, Any], provider: str
) -> None:
    assert Providers({}, "local").for_document(facts(kind, spec)) == provider
