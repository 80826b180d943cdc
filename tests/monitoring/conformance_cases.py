"""The prometheus provider's entry for the conformance suite (tests/conformance).

Run with ``PIPEFORM_CONFORMANCE_CASES=tests.monitoring.conformance_cases:CASE pytest
tests/conformance`` until ``tests/conformance/cases.py`` lists it; test_provider.py runs
the suite that way, so the contract is checked either way.
"""

from __future__ import annotations

from pathlib import Path

from providers.prometheus import PrometheusProvider
from tests.conformance.cases import KindSample, ProviderCase, document


def _provider(root: Path) -> PrometheusProvider:
    return PrometheusProvider(
        {"rulesDir": ".pipeform/rules", "workspace": {"name": "conformance"}}, root
    )


ALERT = KindSample(
    "Alert",
    "model-failed",
    document("Alert", "model-failed", {"template": {"type": "training-failed", "job": "m"}}),
    document(
        "Alert",
        "model-failed",
        {"template": {"type": "training-failed", "job": "m"}, "for": "10m", "severity": "critical"},
    ),
)
SLO = KindSample(
    "SLO",
    "model-success",
    document(
        "SLO",
        "model-success",
        {"sli": {"template": {"type": "training-success-rate", "job": "m"}}, "objective": 95},
    ),
    document(
        "SLO",
        "model-success",
        {
            "sli": {"template": {"type": "training-success-rate", "job": "m"}},
            "objective": 99,
            "window": "30d",
        },
    ),
)

CASE = ProviderCase("prometheus", _provider, (ALERT, SLO))
