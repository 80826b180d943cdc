"""Alert on the aws provider: a CloudWatch metric alarm named after the Alert.

Two conditions map to an alarm, honestly:

- ``spec.cloudwatch``: a metric (namespace, name, dimensions), a statistic over a period,
  a comparison and a threshold; ``for`` becomes the evaluation periods (``for`` / period,
  rounded up, at least 1) and ``missingData`` the alarm's TreatMissingData;
- the ``budget-burn`` template, for a Budget with a known amount in USD (one on the aws
  provider): AWS/Billing ``EstimatedCharges`` (month to date, published in us-east-1 when
  billing alerts are on) at or above ``threshold`` percent of the amount, every 6 hours.

The other templates watch metrics that pipeform publishes to Prometheus, not CloudWatch, and
``expr`` is PromQL: both stay with the prometheus provider. Severity and labels become the
alarm's tags with the ownership tags; ``providers.aws``'s alarm actions are not set, so an
alarm changes state in the console and the API without notifying anyone.
"""

from __future__ import annotations

import math
from typing import Any

from providers.aws.kind import AwsHandler, claim, is_ours
from providers.aws.session import error_code, failure, tag_list, tags_dict
from providers.base import (
    JSON,
    ApplyRequest,
    ApplyResponse,
    DeleteRequest,
    ImportRequest,
    ImportResponse,
    PermanentError,
    ReadRequest,
    ReadResponse,
    ResourceContext,
)
from providers.handlers import inner_spec
from reconciler.diagnostics import Diagnostic, error
from reconciler.kinds.quantities import parse_duration

SERVICE = "cloudwatch"
COMPARISONS = {
    ">": "GreaterThanThreshold",
    ">=": "GreaterThanOrEqualToThreshold",
    "<": "LessThanThreshold",
    "<=": "LessThanOrEqualToThreshold",
}
BILLING_PERIOD = 6 * 3600
#: what an alarm reads back, compared for drift
OBSERVED_KEYS = (
    "Namespace", "MetricName", "Dimensions", "Statistic", "Period", "EvaluationPeriods",
    "ComparisonOperator", "Threshold", "TreatMissingData", "AlarmDescription",
)  # fmt: skip


def condition_problem(spec: JSON) -> str | None:
    """Why an Alert cannot be a CloudWatch alarm (None when it can)."""
    if spec.get("cloudwatch"):
        return None
    template = spec.get("template") or {}
    if template.get("type") == "budget-burn":
        return None
    if spec.get("expr"):
        return "spec.expr is PromQL, which CloudWatch does not evaluate: give spec.cloudwatch (a metric and threshold), or leave the Alert on the prometheus provider"
    return (
        f"the {template.get('type')} template watches metrics pipeform publishes to Prometheus, "
        "not CloudWatch: leave the Alert on the prometheus provider, or give spec.cloudwatch"
    )


def alarm_fields(ctx: ResourceContext, spec: JSON, upstream: Any) -> JSON:
    """The PutMetricAlarm fields of an Alert (upstream: the outputs of what it references)."""
    cw = spec.get("cloudwatch")
    if cw:
        period = int(parse_duration(cw.get("period") or 300))
        fields: JSON = {
            "Namespace": cw["namespace"],
            "MetricName": cw["metric"],
            "Dimensions": [
                {"Name": k, "Value": v} for k, v in sorted((cw.get("dimensions") or {}).items())
            ],
            "Statistic": cw.get("statistic") or "Average",
            "Period": period,
            "ComparisonOperator": COMPARISONS[cw.get("comparison") or ">"],
            "Threshold": float(cw["threshold"]),
            "TreatMissingData": cw.get("missingData") or "missing",
        }
    else:
        fields = _budget_burn(spec["template"], upstream)
    for_ = parse_duration(spec.get("for") or 0)
    fields["EvaluationPeriods"] = max(1, math.ceil(for_ / fields["Period"]))
    summary = (spec.get("annotations") or {}).get("summary") or f"pipeform {ctx.address}"
    fields["AlarmDescription"] = f"[{spec.get('severity') or 'warning'}] {summary}"[:1024]
    return fields


def _budget_burn(template: JSON, upstream: Any) -> JSON:
    budget = f"Budget/{template.get('budget')}"
    outputs = upstream.get(budget) if upstream is not None else None
    amount = outputs.get("amount") if isinstance(outputs, dict) else None
    if amount is None or not isinstance(outputs, dict) or outputs.get("currency") != "USD":
        raise PermanentError(
            f"a budget-burn alarm needs {budget}'s amount in USD (AWS bills in USD): put the "
            "Budget on the aws provider, or give spec.cloudwatch"
        )
    percent = float(template.get("threshold") or 80.0)
    return {
        "Namespace": "AWS/Billing",
        "MetricName": "EstimatedCharges",
        "Dimensions": [{"Name": "Currency", "Value": "USD"}],
        "Statistic": "Maximum",
        "Period": BILLING_PERIOD,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "Threshold": round(float(amount) * percent / 100, 2),
        "TreatMissingData": "missing",
    }


class AlarmHandler(AwsHandler):
    kind = "Alert"

    def validate(self, ctx: ResourceContext, spec: JSON) -> list[Diagnostic]:
        problem = condition_problem(inner_spec(spec))
        return [error(problem, address=ctx.address)] if problem else []

    def _client(self) -> Any:
        return self.clients.client(SERVICE)

    def _describe(self, name: str) -> JSON | None:
        try:
            found = self._client().describe_alarms(AlarmNames=[name], AlarmTypes=["MetricAlarm"])
        except Exception as exc:
            raise failure(exc, SERVICE, "DescribeAlarms", f"reading alarm {name!r}") from None
        alarms = found.get("MetricAlarms") or []
        return alarms[0] if alarms else None

    def _tags(self, arn: str) -> dict[str, str]:
        try:
            return tags_dict(self._client().list_tags_for_resource(ResourceARN=arn).get("Tags"))
        except Exception as exc:
            raise failure(exc, SERVICE, "ListTagsForResource", f"reading tags of {arn}") from None

    def read(self, request: ReadRequest) -> ReadResponse:
        name = request.external_id or request.ctx.name
        alarm = self._describe(name)
        if alarm is None:
            return ReadResponse(exists=False)
        return ReadResponse(True, _observed(alarm), _outputs(alarm), name)

    def _write(self, request: ApplyRequest) -> ApplyResponse:
        ctx, spec = request.ctx, inner_spec(request.spec)
        problem = condition_problem(spec)
        if problem:
            raise PermanentError(problem)
        name = request.external_id or ctx.name
        existing = self._describe(name)
        if existing is not None:
            claim(self._tags(existing["AlarmArn"]), ctx, f"CloudWatch alarm {name!r}", name)
        fields = alarm_fields(ctx, spec, request.upstream)
        tags = {**dict(spec.get("labels") or {}), "severity": spec.get("severity") or "warning"}
        try:
            self._client().put_metric_alarm(
                AlarmName=name,
                ActionsEnabled=False,
                Tags=tag_list({**tags, **ctx.owner_labels}),
                **fields,
            )
        except Exception as exc:
            raise failure(exc, SERVICE, "PutMetricAlarm", f"writing alarm {name!r}") from None
        alarm = self._describe(name)
        if alarm is None:
            raise PermanentError(f"alarm {name!r} was written but cannot be read back")
        return ApplyResponse(_outputs(alarm), name, _observed(alarm))

    def create(self, request: ApplyRequest) -> ApplyResponse:
        return self._write(request)  # an alarm of ours (a retried create) is adopted

    def update(self, request: ApplyRequest) -> ApplyResponse:
        return self._write(request)

    def delete(self, request: DeleteRequest) -> None:
        name = request.external_id or request.ctx.name
        alarm = self._describe(name)
        if alarm is None:
            return
        tags = self._tags(alarm["AlarmArn"])
        if not is_ours(tags, request.ctx):
            claim(tags, request.ctx, f"CloudWatch alarm {name!r}", name)  # raises
        try:
            self._client().delete_alarms(AlarmNames=[name])
        except Exception as exc:
            if error_code(exc) != "ResourceNotFound":
                raise failure(exc, SERVICE, "DeleteAlarms", f"deleting alarm {name!r}") from None

    def import_(self, request: ImportRequest) -> ImportResponse:
        alarm = self._describe(request.id)
        if alarm is None:
            raise PermanentError(f"there is no CloudWatch alarm {request.id!r} to import")
        try:
            self._client().tag_resource(
                ResourceARN=alarm["AlarmArn"], Tags=tag_list(request.ctx.owner_labels)
            )
        except Exception as exc:
            raise failure(exc, SERVICE, "TagResource", f"importing alarm {request.id!r}") from None
        return ImportResponse(_observed(alarm), None, _outputs(alarm), request.id)


def _observed(alarm: JSON) -> JSON:
    observed = {k: alarm.get(k) for k in OBSERVED_KEYS}
    observed["Dimensions"] = sorted(
        ({"Name": d["Name"], "Value": d["Value"]} for d in alarm.get("Dimensions") or []),
        key=lambda d: d["Name"],
    )
    observed["Threshold"] = float(alarm.get("Threshold") or 0)
    return observed


def _outputs(alarm: JSON) -> JSON:
    return {"alarmName": alarm["AlarmName"], "arn": alarm["AlarmArn"]}
