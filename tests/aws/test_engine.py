"""plan and apply a tree with AWS resources through the engine (the CLI, in this process).

The aws provider is registered directly (``providers.base.register``): the console script
finds it through the ``pipeform.providers`` entry point once the package is reinstalled.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner, Result

from providers import base
from providers.aws import AwsProvider
from reconciler import cli
from tests.aws import moto


@pytest.fixture
def registered() -> Iterator[None]:
    base.register(AwsProvider)
    yield
    base.unregister("aws")


def tree(root: Path, server: moto.MotoServer) -> Path:
    files = {
        "pipeform.yaml": f"""
            apiVersion: pipeform/v1
            kind: Workspace
            metadata: {{name: cloud}}
            spec:
              providers:
                aws: {{region: us-east-1, endpointUrl: "{server.url}", budgetSubscribers: [ops@example.com]}}
            """,
        "aws.yaml": """
            apiVersion: pipeform/v1
            kind: Secret
            metadata: {name: api-token}
            spec:
              from: {env: PF_ENGINE_TOKEN}
              targets: [{provider: aws, name: prod/api-token}]
            ---
            apiVersion: pipeform/v1
            kind: Budget
            metadata: {name: ml}
            spec: {provider: aws, amount: 500, thresholds: [80, 100]}
            ---
            apiVersion: pipeform/v1
            kind: Alert
            metadata: {name: ml-burn}
            spec:
              provider: aws
              template: {type: budget-burn, budget: ml, threshold: 80}
            """,
    }
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text).lstrip())
    return root


def run(*args: str) -> Result:
    return CliRunner().invoke(cli.cli, list(args), catch_exceptions=False)


def test_apply_makes_the_aws_objects_and_a_second_plan_changes_nothing(
    aws: moto.MotoServer, tmp_path: Path, registered: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PF_ENGINE_TOKEN", "engine-secret-9f2e")
    root = tree(tmp_path, aws)
    applied = run("apply", "--auto-approve", str(root))
    assert applied.exit_code == 0, applied.output
    boto = {"endpoint_url": aws.url, "region_name": "us-east-1"}
    alarm = boto3.client("cloudwatch", **boto).describe_alarms(AlarmNames=["ml-burn"])
    assert alarm["MetricAlarms"][0]["Threshold"] == 400.0  # 80% of the Budget's 500
    state = (root / ".pipeform" / "state.db").read_bytes()
    assert b"engine-secret-9f2e" not in state

    again = run("plan", "--detailed-exitcode", str(root))
    assert again.exit_code == 0, again.output

    monkeypatch.setenv("PF_ENGINE_TOKEN", "rotated-7c1d")
    planned = run("plan", "--json", str(root))
    changes = {
        c["address"]: c["change"]["actions"]
        for c in json.loads(planned.output)["resource_changes"]
        if c["change"]["actions"] != ["no-op"]
    }
    assert changes == {"Secret/api-token": ["update"]}
    assert "rotated-7c1d" not in planned.output
