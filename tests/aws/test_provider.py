"""The aws provider against moto_server: what users see of Secrets, Budgets and alarms.

The conformance suite (tests/conformance, case ``aws``) checks the protocol's contract for
Secret and Alert; these tests check each mapping and its errors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from providers.aws import AwsProvider
from providers.base import (
    ApplyRequest,
    ApplyResponse,
    DeleteRequest,
    PermanentError,
    ProviderError,
    ReadRequest,
    ResourceContext,
)
from tests.aws import moto
from tests.conformance.cases import document

LINEAGE = "3f1c2b4a-0000-4000-8000-000000000001"
OTHER = "9a8b7c6d-0000-4000-8000-000000000002"


def provider(server: moto.MotoServer, root: Path, **settings: Any) -> AwsProvider:
    return AwsProvider({**server.settings(), **settings}, root)


def ctx(root: Path, address: str, lineage: str = LINEAGE) -> ResourceContext:
    return ResourceContext.of(address, lineage, root)


def apply(
    p: AwsProvider, c: ResourceContext, doc: dict[str, Any], prior: Any = None, upstream: Any = None
) -> ApplyResponse:
    request = ApplyRequest(
        c, doc, prior[0] if prior else None, prior[1].outputs if prior else {},
        prior[1].external_id if prior else None, upstream or {},
    )  # fmt: skip
    return p.update(request) if prior else p.create(request)


def client(server: moto.MotoServer, service: str) -> Any:
    return boto3.client(service, endpoint_url=server.url, region_name="us-east-1")


# --- Secret ---------------------------------------------------------------------------------


def secret_doc(env: str = "PF_TOKEN", name: str | None = None) -> dict[str, Any]:
    target = {"provider": "aws", **({"name": name} if name else {})}
    return document("Secret", "api-token", {"from": {"env": env}, "targets": [target]})


def test_a_secret_is_written_to_secrets_manager_and_state_holds_only_a_fingerprint(
    aws: moto.MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PF_TOKEN", "s3cr3t-value-81d2")
    p, c = provider(aws, tmp_path), ctx(tmp_path, "Secret/api-token")
    made = apply(p, c, secret_doc(name="prod/api-token"))
    sm = client(aws, "secretsmanager")
    assert sm.get_secret_value(SecretId="prod/api-token")["SecretString"] == "s3cr3t-value-81d2"
    tags = {t["Key"]: t["Value"] for t in sm.describe_secret(SecretId="prod/api-token")["Tags"]}
    assert tags == {"pipeform.dev/address": "Secret/api-token", "pipeform.dev/lineage": LINEAGE}
    recorded = json.dumps([made.outputs, made.observed])
    assert "s3cr3t" not in recorded
    assert made.outputs["fingerprint"].startswith("hmac-sha256:")
    # the fingerprint key lives in Secrets Manager: another machine computes the same one
    again = provider(aws, tmp_path).read(
        ReadRequest(c, secret_doc(name="prod/api-token"), {}, None)
    )
    assert again.observed == made.observed


def test_a_rotated_source_reads_as_a_change_and_the_update_writes_one_new_version(
    aws: moto.MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PF_TOKEN", "first-value")
    p, c, doc = provider(aws, tmp_path), ctx(tmp_path, "Secret/api-token"), secret_doc()
    made = apply(p, c, doc)
    apply(p, c, doc, (doc, made))  # the same value: no new version
    sm = client(aws, "secretsmanager")
    assert len(sm.list_secret_version_ids(SecretId="api-token")["Versions"]) == 1
    monkeypatch.setenv("PF_TOKEN", "rotated-value")
    live = p.read(ReadRequest(c, doc, made.outputs, made.external_id))
    assert live.observed != made.observed  # drift: the plan shows an update
    assert live.observed["source"] != live.observed["stored"]["api-token"]
    updated = apply(p, c, doc, (doc, made))
    assert sm.get_secret_value(SecretId="api-token")["SecretString"] == "rotated-value"
    assert updated.observed["source"] == updated.observed["stored"]["api-token"]


def test_a_deleted_secret_is_restored_by_the_next_create(
    aws: moto.MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PF_TOKEN", "value")
    p, c, doc = provider(aws, tmp_path), ctx(tmp_path, "Secret/api-token"), secret_doc()
    made = apply(p, c, doc)
    p.delete(DeleteRequest(c, doc, made.outputs, made.external_id))
    deleted = client(aws, "secretsmanager").describe_secret(SecretId="api-token")
    assert "DeletedDate" in deleted  # scheduled, restorable for secretRecoveryDays
    assert p.read(ReadRequest(c, doc, made.outputs, made.external_id)).exists is False
    apply(p, c, doc)
    assert "DeletedDate" not in client(aws, "secretsmanager").describe_secret(SecretId="api-token")


def test_a_secret_with_a_local_target_on_the_aws_provider_is_refused_at_plan_time(
    aws: moto.MotoServer, tmp_path: Path
) -> None:
    doc = document("Secret", "t", {"from": {"env": "X"}, "targets": [{"provider": "local"}]})
    problems = provider(aws, tmp_path).validate(ctx(tmp_path, "Secret/t"), doc)
    assert any("writes only to AWS Secrets Manager" in d.message for d in problems)


def test_a_secret_read_from_secrets_manager_is_copied_by_key(
    aws: moto.MotoServer, tmp_path: Path
) -> None:
    client(aws, "secretsmanager").create_secret(
        Name="upstream/creds", SecretString=json.dumps({"token": "from-upstream"})
    )
    source = {"awsSecretsManager": {"secretId": "upstream/creds", "key": "token"}}
    doc = document("Secret", "copy", {"from": source, "targets": [{"provider": "aws"}]})
    apply(provider(aws, tmp_path), ctx(tmp_path, "Secret/copy"), doc)
    copied = client(aws, "secretsmanager").get_secret_value(SecretId="copy")
    assert copied["SecretString"] == "from-upstream"


# --- Budget ---------------------------------------------------------------------------------

SUBSCRIBERS = {"budgetSubscribers": ["finops@example.com"]}


def budget_doc(amount: str = "1000", **spec: Any) -> dict[str, Any]:
    return document(
        "Budget",
        "growth",
        {"provider": "aws", "amount": amount, "thresholds": [50, 90], **spec},
    )


def test_a_budget_gets_its_limit_scope_and_a_notification_per_threshold(
    aws: moto.MotoServer, tmp_path: Path
) -> None:
    p, c = provider(aws, tmp_path, **SUBSCRIBERS), ctx(tmp_path, "Budget/growth")
    made = apply(p, c, budget_doc(scope={"labels": {"team": "growth"}}))
    name = made.external_id
    assert name == "growth.pipeform-3f1c2b4a"
    budgets = client(aws, "budgets")
    live = budgets.describe_budget(AccountId="123456789012", BudgetName=name)["Budget"]
    assert live["BudgetLimit"]["Amount"] in ("1000", "1000.0")
    assert live["TimeUnit"] == "MONTHLY"
    assert live["CostFilters"] == {"TagKeyValue": ["user:team$growth"]}
    notes = budgets.describe_notifications_for_budget(AccountId="123456789012", BudgetName=name)
    assert sorted(n["Threshold"] for n in notes["Notifications"]) == [50.0, 90.0]
    assert made.outputs["amount"] == "1000.0"


def test_a_budget_update_replaces_it_and_a_retried_create_adopts_it(
    aws: moto.MotoServer, tmp_path: Path
) -> None:
    p, c = provider(aws, tmp_path, **SUBSCRIBERS), ctx(tmp_path, "Budget/growth")
    made = apply(p, c, budget_doc())
    assert apply(p, c, budget_doc()).observed == made.observed  # adopted, not duplicated
    updated = apply(p, c, budget_doc("1500", thresholds=[80]), (budget_doc(), made))
    assert updated.observed["limit"] == "1500.0"
    assert updated.observed["thresholds"] == [80.0]
    listed = client(aws, "budgets").describe_budgets(AccountId="123456789012")["Budgets"]
    assert [b["BudgetName"] for b in listed] == [made.external_id]
    p.delete(DeleteRequest(c, budget_doc(), updated.outputs, updated.external_id))
    p.delete(DeleteRequest(c, budget_doc(), updated.outputs, updated.external_id))
    assert p.read(ReadRequest(c, budget_doc(), {}, made.external_id)).exists is False


def test_another_state_gets_a_budget_of_its_own(aws: moto.MotoServer, tmp_path: Path) -> None:
    p = provider(aws, tmp_path, **SUBSCRIBERS)
    ours = apply(p, ctx(tmp_path, "Budget/growth"), budget_doc())
    theirs = apply(p, ctx(tmp_path, "Budget/growth", OTHER), budget_doc("5"))
    assert ours.external_id != theirs.external_id
    again = p.read(ReadRequest(ctx(tmp_path, "Budget/growth"), None, {}, ours.external_id))
    assert again.observed["limit"] == "1000.0"


def test_a_budget_without_subscribers_or_with_a_weekly_period_is_refused(
    aws: moto.MotoServer, tmp_path: Path
) -> None:
    c = ctx(tmp_path, "Budget/growth")
    problems = provider(aws, tmp_path).validate(c, budget_doc(period="weekly"))
    messages = [d.message for d in problems]
    assert any("no weekly period" in m for m in messages)
    assert any("nobody is named to notify" in m for m in messages)


# --- Alert ----------------------------------------------------------------------------------


def test_an_alert_becomes_a_cloudwatch_alarm_with_for_as_evaluation_periods(
    aws: moto.MotoServer, tmp_path: Path
) -> None:
    metric = {"namespace": "AWS/SageMaker", "metric": "GPUUtilization", "threshold": 10,
              "comparison": "<", "period": "5m", "dimensions": {"Host": "algo-1"}}  # fmt: skip
    doc = document("Alert", "gpu-idle", {"provider": "aws", "cloudwatch": metric, "for": "12m",
                                          "severity": "critical"})  # fmt: skip
    apply(provider(aws, tmp_path), ctx(tmp_path, "Alert/gpu-idle"), doc)
    alarm = client(aws, "cloudwatch").describe_alarms(AlarmNames=["gpu-idle"])["MetricAlarms"][0]
    assert alarm["EvaluationPeriods"] == 3  # 12m over 5m periods, rounded up
    assert alarm["ComparisonOperator"] == "LessThanThreshold"
    assert alarm["Dimensions"] == [{"Name": "Host", "Value": "algo-1"}]
    assert alarm["AlarmDescription"].startswith("[critical]")


def test_a_budget_burn_alert_watches_estimated_charges_at_its_share_of_the_budget(
    aws: moto.MotoServer, tmp_path: Path
) -> None:
    template = {"type": "budget-burn", "budget": "growth", "threshold": 80}
    doc = document("Alert", "burn", {"provider": "aws", "template": template})
    upstream = {"Budget/growth": {"amount": "1000.0", "currency": "USD"}}
    apply(provider(aws, tmp_path), ctx(tmp_path, "Alert/burn"), doc, upstream=upstream)
    alarm = client(aws, "cloudwatch").describe_alarms(AlarmNames=["burn"])["MetricAlarms"][0]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/Billing", "EstimatedCharges")
    assert alarm["Threshold"] == 800.0


def test_promql_and_prometheus_templates_stay_with_prometheus(
    aws: moto.MotoServer, tmp_path: Path
) -> None:
    p = provider(aws, tmp_path)
    expr = document("Alert", "a", {"provider": "aws", "expr": "up == 0"})
    failed = document(
        "Alert", "b", {"provider": "aws", "template": {"type": "training-failed", "job": "m"}}
    )
    assert "PromQL" in p.validate(ctx(tmp_path, "Alert/a"), expr)[0].message
    assert "prometheus provider" in p.validate(ctx(tmp_path, "Alert/b"), failed)[0].message


# --- errors ---------------------------------------------------------------------------------


def test_an_endpoint_that_does_not_answer_is_one_clear_error(
    aws: moto.MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.integration.servers import free_port

    monkeypatch.setenv("PF_TOKEN", "value")
    dead = f"http://127.0.0.1:{free_port()}"
    p = AwsProvider({"region": "us-east-1", "endpointUrl": dead}, tmp_path)
    with pytest.raises(ProviderError) as failed:
        apply(p, ctx(tmp_path, "Secret/api-token"), secret_doc())
    assert str(failed.value).startswith("reading secret 'api-token': cannot reach")
    assert dead in str(failed.value)


def test_missing_credentials_are_one_clear_error(
    aws: moto.MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("PF_TOKEN", "value")
    with pytest.raises(PermanentError, match="no AWS credentials were found"):
        apply(provider(aws, tmp_path), ctx(tmp_path, "Secret/api-token"), secret_doc())


def test_an_unknown_profile_is_one_clear_error(
    aws: moto.MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("PF_TOKEN", "value")
    p = provider(aws, tmp_path, profile="nope")
    with pytest.raises(PermanentError, match="AWS profile 'nope'"):
        apply(p, ctx(tmp_path, "Secret/api-token"), secret_doc())
