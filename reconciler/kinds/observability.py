"""Observability kinds: Alert (alerting rules) and SLO (objectives with burn-rate alerts)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from reconciler.kinds.common import Document, Name, ResourceSpec, SpecModel, omitted_when
from reconciler.kinds.reference import Reference
from reconciler.kinds.units import Duration


def check_promql(expr: str) -> str:
    """A cheap structural check; promtool checks the full grammar when rules are written."""
    text = expr.strip()
    if not text:
        raise ValueError("the PromQL expression is empty")
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    quote: str | None = None
    for ch in text:
        if quote:
            if ch == quote:
                quote = None
            continue
        if ch in "\"'`":
            quote = ch
        elif ch in "([{":
            stack.append(ch)
        elif ch in ")]}" and (not stack or stack.pop() != pairs[ch]):
            raise ValueError(f"unbalanced {ch!r} in PromQL expression {text!r}")
    if quote or stack:
        raise ValueError(
            f"unclosed {'quote' if quote else repr(stack[-1])} in PromQL expression {text!r}"
        )
    return expr


PromQL = Annotated[str, Field(min_length=1)]


class TrainingFailed(SpecModel):
    type: Literal["training-failed"] = Field(
        description="training-failed selects this variant. Required."
    )
    job: Name = Field(description="The TrainingJob watched. Required.")


class TrainingNotSucceeded(SpecModel):
    type: Literal["training-not-succeeded"] = Field(
        description="training-not-succeeded selects this variant. Required."
    )
    job: Name = Field(description="The TrainingJob watched. Required.")
    within: Duration = Field(
        description="Fire when the job has not succeeded for this long. Required."
    )


class ValidationFailed(SpecModel):
    type: Literal["validation-failed"] = Field(
        description="validation-failed selects this variant. Required."
    )
    dataset: Name = Field(description="The Dataset watched. Required.")


class DataStale(SpecModel):
    type: Literal["data-stale"] = Field(description="data-stale selects this variant. Required.")
    dataset: Name = Field(description="The Dataset watched. Required.")
    max_age: Duration = Field(
        description="Fire when the newest snapshot is older than this. Required."
    )


class BudgetBurn(SpecModel):
    type: Literal["budget-burn"] = Field(description="budget-burn selects this variant. Required.")
    budget: Name = Field(description="The Budget watched. Required.")
    threshold: float = Field(
        80.0, gt=0, le=1000, description="Percent of the budget spent. Default: 80."
    )


AlertTemplate = Annotated[
    TrainingFailed | TrainingNotSucceeded | ValidationFailed | DataStale | BudgetBurn,
    Field(discriminator="type"),
]

_TEMPLATE_TARGETS = {"job": "TrainingJob", "dataset": "Dataset", "budget": "Budget"}


def template_references(template: SpecModel | None, at: tuple[str | int, ...]) -> list[Reference]:
    if template is None:
        return []
    refs = []
    for field_name, kind in _TEMPLATE_TARGETS.items():
        name = getattr(template, field_name, None)
        if name:
            refs.append(Reference(kind, name, (*at, field_name)))
    return refs


class CloudWatchCondition(SpecModel):
    namespace: str = Field(
        min_length=1, description="The metric's namespace, such as AWS/SageMaker. Required."
    )
    metric: str = Field(min_length=1, description="The metric's name. Required.")
    dimensions: dict[str, str] = Field(
        default_factory=dict, description="The metric's dimensions. Default: none."
    )
    statistic: Literal["Average", "Sum", "Minimum", "Maximum", "SampleCount"] = Field(
        "Average", description="Average, Sum, Minimum, Maximum or SampleCount. Default: Average."
    )
    period: Duration = Field(
        300.0,
        ge=60,
        description="The period the statistic is taken over (a multiple of 60s). Default: 5m.",
    )
    comparison: Literal[">", ">=", "<", "<="] = Field(
        ">", description="How the statistic is compared with the threshold. Default: >."
    )
    threshold: float = Field(description="The value the statistic is compared with. Required.")
    missing_data: Literal["missing", "notBreaching", "breaching", "ignore"] = Field(
        "missing",
        description="How a period without data counts: missing, notBreaching, breaching or "
        "ignore. Default: missing.",
    )

    @field_validator("period")
    @classmethod
    def _whole_minutes(cls, period: float) -> float:
        if period % 60:
            raise ValueError("a CloudWatch alarm's period is a whole number of minutes")
        return period


class AlertSpec(ResourceSpec):
    template: AlertTemplate | None = Field(
        None,
        description="A built-in alert: training-failed, training-not-succeeded, validation-failed, "
        "data-stale or budget-burn. Default: none (give expr instead).",
    )
    expr: PromQL | None = Field(
        None,
        description="A PromQL expression that fires when it returns series. Default: none (give template instead).",
    )
    cloudwatch: CloudWatchCondition | None = Field(
        None,
        description="A CloudWatch metric and threshold, for an Alert on the aws provider "
        "(a CloudWatch alarm). Default: none (give template or expr instead).",
        exclude_if=omitted_when(None),
    )
    for_: Duration = Field(
        0.0, alias="for", description="How long the condition must hold before firing. Default: 0s."
    )
    severity: Literal["critical", "warning", "info"] = Field(
        "warning", description="critical, warning or info. Default: warning."
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="Labels added to the alert. Default: none."
    )
    annotations: dict[str, str] = Field(
        default_factory=dict,
        description="Annotations such as summary, description, runbook_url. Default: generated summary.",
    )

    @field_validator("expr")
    @classmethod
    def _expr(cls, expr: str | None) -> str | None:
        return check_promql(expr) if expr is not None else None

    @model_validator(mode="after")
    def _one_condition(self) -> AlertSpec:
        given = [self.template, self.expr, self.cloudwatch]
        if sum(condition is not None for condition in given) != 1:
            raise ValueError("an Alert needs exactly one of template, expr or cloudwatch")
        return self

    def references(self) -> list[Reference]:
        return template_references(self.template, ("template",))


class Alert(Document):
    KIND = "Alert"
    kind: Literal["Alert"] = Field(description="Alert. Required.")
    spec: AlertSpec = Field(description="When to fire, how urgently. Required.")


class TrainingSuccessRate(SpecModel):
    type: Literal["training-success-rate"] = Field(
        description="training-success-rate selects this variant. Required."
    )
    job: Name = Field(description="The TrainingJob measured. Required.")


class DataFreshness(SpecModel):
    type: Literal["data-freshness"] = Field(
        description="data-freshness selects this variant. Required."
    )
    dataset: Name = Field(description="The Dataset measured. Required.")
    max_age: Duration = Field(description="A snapshot younger than this is good. Required.")


class RegistrationLatency(SpecModel):
    type: Literal["registration-latency"] = Field(
        description="registration-latency selects this variant. Required."
    )
    job: Name = Field(description="The TrainingJob measured. Required.")
    threshold: Duration = Field(description="A registration faster than this is good. Required.")


SliTemplate = Annotated[
    TrainingSuccessRate | DataFreshness | RegistrationLatency,
    Field(discriminator="type"),
]


class Sli(SpecModel):
    template: SliTemplate | None = Field(
        None, description="A built-in SLI. Default: none (give good and total)."
    )
    good: PromQL | None = Field(None, description="PromQL rate of good events. Default: none.")
    total: PromQL | None = Field(None, description="PromQL rate of all events. Default: none.")

    @field_validator("good", "total")
    @classmethod
    def _expr(cls, expr: str | None) -> str | None:
        return check_promql(expr) if expr is not None else None

    @model_validator(mode="after")
    def _one(self) -> Sli:
        custom = self.good is not None or self.total is not None
        if self.template is not None and custom:
            raise ValueError("an SLI takes a template or good/total, not both")
        if self.template is None and (self.good is None or self.total is None):
            raise ValueError("an SLI needs a template, or both good and total")
        return self


class SloSpec(ResourceSpec):
    sli: Sli = Field(description="What is measured. Required.")
    objective: float = Field(
        gt=0, lt=100, description="Target percentage of good events, such as 99.5. Required."
    )
    window: Duration = Field(
        2419200.0, description="The rolling window, such as 28d or 30d. Default: 28d."
    )
    page_severity: Literal["critical", "warning"] = Field(
        "critical", description="Severity of the fast-burn (page) alerts. Default: critical."
    )
    ticket_severity: Literal["warning", "info"] = Field(
        "warning", description="Severity of the slow-burn (ticket) alerts. Default: warning."
    )
    description: str = Field("", description="What the objective promises. Default: empty.")

    @field_validator("window")
    @classmethod
    def _window(cls, seconds: float) -> float:
        if seconds < 3600:
            raise ValueError(
                "an SLO window shorter than 1h cannot carry burn-rate alerts; use 28d or 30d"
            )
        return seconds

    def references(self) -> list[Reference]:
        return template_references(self.sli.template, ("sli", "template"))


class SLO(Document):
    KIND = "SLO"
    kind: Literal["SLO"] = Field(description="SLO. Required.")
    spec: SloSpec = Field(description="An objective over a window for an SLI. Required.")
