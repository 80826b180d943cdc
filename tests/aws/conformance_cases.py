"""The aws provider's entry for the conformance suite (tests/conformance), against moto.

Budget is not here: its ownership mark is its name (``<name>.pipeform-<lineage>``: AWS
Budgets keeps no tags an emulator reads back), so a second state makes a budget of its own
instead of being refused; tests/aws/test_budgets.py checks what holds for it.
"""

from __future__ import annotations

from pathlib import Path

from providers.aws import AwsProvider
from tests.aws import moto
from tests.conformance.cases import KindSample, ProviderCase, _secret_env, document


def _provider(root: Path) -> AwsProvider:
    (server,) = moto.RUNNING  # the `aws` fixture started and emptied it
    return AwsProvider(server.settings(), root)


SECRET = KindSample(
    "Secret",
    "api-token",
    document(
        "Secret",
        "api-token",
        {"from": {"env": "CONFORMANCE_TOKEN"}, "targets": [{"provider": "aws"}]},
    ),
    document(
        "Secret",
        "api-token",
        {"from": {"env": "CONFORMANCE_TOKEN_NEXT"}, "targets": [{"provider": "aws"}]},
    ),
    _secret_env,
)
CPU = {"namespace": "AWS/EC2", "metric": "CPUUtilization", "threshold": 90}
ALARM = KindSample(
    "Alert",
    "trainer-cpu",
    document("Alert", "trainer-cpu", {"provider": "aws", "cloudwatch": CPU}),
    document(
        "Alert",
        "trainer-cpu",
        {"provider": "aws", "cloudwatch": {**CPU, "threshold": 95}, "for": "15m"},
    ),
)

CASE = ProviderCase("aws", _provider, (SECRET, ALARM), fixture="aws")
