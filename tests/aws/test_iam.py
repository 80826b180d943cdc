"""The IAM policy in docs/reference/aws.md names every API action the provider calls.

Every boto3 client of the provider records the operations it calls
(``providers.aws.session.CALLED``); this test clears the record, drives every path of
every kind against moto_server (create, adopt, update, read, import, delete, restore, s3://
sources), and compares the IAM actions those operations need with the documented policy:
nothing missing, nothing extra.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

import boto3
import pytest

from providers.aws import AwsProvider, session
from providers.aws.artifacts import artifacts_for
from providers.aws.s3source import open_s3
from providers.base import (
    ApplyRequest,
    DeleteRequest,
    ImportRequest,
    PermanentError,
    ReadRequest,
    ResourceContext,
)
from providers.local.settings import LocalSettings
from reconciler.kinds.data import CsvOptions, DataFormat
from tests.aws import moto
from tests.conformance.cases import document

DOC = Path(__file__).resolve().parents[2] / "docs" / "reference" / "aws.md"
LINEAGE = "5e6f7a8b-0000-4000-8000-000000000003"


def documented_actions() -> set[str]:
    text = DOC.read_text()
    block = re.search(r"## The IAM policy.*?```json\n(.*?)```", text, re.S)
    assert block, "docs/reference/aws.md has no IAM policy block"
    policy = json.loads(block.group(1))
    return {action for statement in policy["Statement"] for action in statement["Action"]}


def drive_every_call(server: moto.MotoServer, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PF_TOKEN", "one")
    settings = {**server.settings(), "budgetSubscribers": ["ops@example.com"]}
    p = AwsProvider(settings, root)
    docs = {
        "Secret/s": document("Secret", "s", {"from": {"env": "PF_TOKEN"}, "targets": [{"provider": "aws"}]}),
        "Budget/b": document("Budget", "b", {"provider": "aws", "amount": 10}),
        "Alert/a": document("Alert", "a", {"cloudwatch": {"namespace": "N", "metric": "M", "threshold": 1}}),
    }  # fmt: skip
    for address, doc in docs.items():
        c = ResourceContext.of(address, LINEAGE, root)
        made = p.create(ApplyRequest(c, doc, None, {}, None, {}))
        monkeypatch.setenv("PF_TOKEN", "two")
        p.update(ApplyRequest(c, doc, doc, made.outputs, made.external_id, {}))
        p.read(ReadRequest(c, doc, made.outputs, made.external_id))
        p.delete(DeleteRequest(c, doc, made.outputs, made.external_id))
        p.create(ApplyRequest(c, doc, None, {}, None, {}))  # a secret: restored
    boto = {"endpoint_url": server.url, "region_name": "us-east-1"}
    boto3.client("secretsmanager", **boto).create_secret(Name="theirs", SecretString="x")
    boto3.client("cloudwatch", **boto).put_metric_alarm(
        AlarmName="theirs", MetricName="M", Namespace="N", Statistic="Average", Period=60,
        EvaluationPeriods=1, Threshold=1.0, ComparisonOperator="GreaterThanThreshold",
    )  # fmt: skip
    p.import_(ImportRequest(ResourceContext.of("Secret/t", LINEAGE, root), "theirs"))
    p.import_(ImportRequest(ResourceContext.of("Alert/t", LINEAGE, root), "theirs"))
    s3 = boto3.client("s3", **boto)
    s3.create_bucket(Bucket="dsrc")
    s3.put_object(Bucket="dsrc", Key="p/t.csv", Body=b"id\n1\n")
    local = LocalSettings.from_config({"workspace": {"aws": server.settings()}}, root)
    for uri in ("s3://dsrc/p/t.csv", "s3://dsrc/p/", "s3://dsrc/missing.csv"):
        with contextlib.suppress(PermanentError):  # the missing one: HeadObject, HeadBucket
            open_s3(uri, DataFormat.CSV, CsvOptions(), local).fingerprint()
    # the artifacts bucket: HeadBucket, HeadObject, PutObject (the trainer's calls go
    # through pyarrow: session.PYARROW_S3_ACTIONS)
    artifacts_settings = {**server.settings(), "artifacts": {"bucket": "dsrc"}}
    store = artifacts_for(
        LocalSettings.from_config({"workspace": {"aws": artifacts_settings}}, root)
    )
    assert store is not None
    table = root / "t.parquet"
    table.write_bytes(b"PAR1")
    store.put_file(table, store.content_uri("features", "ab" * 32, ".parquet"))


def test_the_documented_policy_names_every_action_the_code_calls_and_no_more(
    aws: moto.MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session.CALLED.clear()
    drive_every_call(aws, tmp_path, monkeypatch)
    needed = {
        session.iam_action(service, operation)
        for service, operation in session.CALLED
        if (service, operation) not in session.NO_POLICY_NEEDED
    } | set(session.PYARROW_S3_ACTIONS)
    documented = documented_actions()
    assert needed - documented == set(), "add these to the policy in docs/reference/aws.md"
    assert documented - needed == set(), "the policy grants actions the code never calls"
