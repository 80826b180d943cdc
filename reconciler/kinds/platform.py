"""Platform kinds: Quota, Secret and Budget (limits, credentials and spend)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, field_validator, model_validator

from reconciler.kinds.common import (
    DNS_LABEL,
    Document,
    Labels,
    ResourceSpec,
    SpecModel,
    keyed_union,
)
from reconciler.kinds.units import CpuQuantity, MemoryQuantity, Money


class QuotaSpec(ResourceSpec):
    namespace: str | None = Field(
        None,
        pattern=DNS_LABEL,
        description="The Kubernetes namespace or team the quota applies to. Default: the Quota's name.",
    )
    gpus: int | None = Field(None, ge=0, description="Most GPUs in use at once. Default: no limit.")
    gpu_types: list[Annotated[str, Field(pattern=DNS_LABEL)]] | None = Field(
        None, description="GPU models jobs may ask for. Default: any."
    )
    cpu: CpuQuantity | None = Field(
        None, description="Most CPU cores in use at once. Default: no limit."
    )
    memory: MemoryQuantity | None = Field(
        None, description="Most memory in use at once. Default: no limit."
    )
    concurrent_jobs: int | None = Field(
        None, ge=1, description="Most training runs at once. Default: no limit."
    )

    @model_validator(mode="after")
    def _some_limit(self) -> QuotaSpec:
        if (  # runs for every Quota: plain tests, no generator
            self.gpus is None
            and self.cpu is None
            and self.memory is None
            and self.concurrent_jobs is None
        ):
            raise ValueError(
                "a Quota needs at least one limit: gpus, cpu, memory or concurrentJobs"
            )
        return self


class Quota(Document):
    KIND = "Quota"
    kind: Literal["Quota"] = Field(description="Quota. Required.")
    spec: QuotaSpec = Field(description="Resource limits for a namespace or team. Required.")


class EnvSource(SpecModel):
    env: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Environment variable holding the value when pipeform runs. Required.",
    )


class FileSource(SpecModel):
    file: str = Field(
        min_length=1,
        description="A file holding the value (relative to the spec tree); the file is never committed. Required.",
    )


class AwsSecretsManagerSource(SpecModel):
    secret_id: str = Field(
        min_length=1, description="The AWS Secrets Manager secret name or ARN. Required."
    )
    key: str | None = Field(
        None, description="A key inside a JSON secret. Default: the whole secret string."
    )
    region: str | None = Field(
        None, description="AWS region. Default: the Workspace's aws provider region."
    )


class AwsSource(SpecModel):
    aws_secrets_manager: AwsSecretsManagerSource = Field(
        description="Where in AWS Secrets Manager. Required."
    )


class SecretTarget(SpecModel):
    provider: Literal["local", "kubernetes", "aws"] = Field(
        description="Where the secret must exist: local, kubernetes or aws. Required."
    )
    namespace: str | None = Field(
        None,
        pattern=DNS_LABEL,
        description="Kubernetes namespace. Default: the kubernetes provider's namespace.",
    )
    name: str | None = Field(
        None, description="The name it gets there. Default: the Secret's name."
    )


if TYPE_CHECKING:
    SecretSource = EnvSource | FileSource | AwsSource
else:
    SecretSource = keyed_union(
        ("env", EnvSource), ("file", FileSource), ("awsSecretsManager", AwsSource)
    )


class SecretSpec(ResourceSpec):
    from_: SecretSource = Field(
        alias="from",
        description="Where the value is read from: {env: VAR}, {file: path} or "
        "{awsSecretsManager: {secretId: ...}}. The value itself never appears in specs, plans, "
        "logs or state. Required.",
    )
    targets: list[SecretTarget] = Field(
        default_factory=lambda: [SecretTarget(provider="local")],
        description="Where the secret must exist. Default: the local secret store.",
    )

    @field_validator("from_", mode="before")
    @classmethod
    def _no_inline_value(cls, value: object) -> object:
        if isinstance(value, dict) and ({"value", "data", "stringData"} & set(value)):
            raise ValueError(
                "secret values may not be written in specs; read them with "
                "{env: VAR}, {file: path} or {awsSecretsManager: {secretId: ...}}"
            )
        return value


class Secret(Document):
    KIND = "Secret"
    kind: Literal["Secret"] = Field(description="Secret. Required.")
    spec: SecretSpec = Field(
        description="Where the value comes from and where it must exist. Required."
    )


class BudgetScope(SpecModel):
    labels: Labels = Field(
        default_factory=dict,
        description="Resources whose labels include all of these count against the budget. Default: every resource.",
    )


_CURRENCY = re.compile(r"^[A-Z]{3}$")


class BudgetSpec(ResourceSpec):
    amount: Money = Field(
        description='The spend limit per period, such as 1000 or "1,000.50". Required.'
    )
    currency: str = Field(
        "USD",
        description="ISO 4217 currency code; must match the Workspace's pricing. Default: USD.",
    )
    period: Literal["daily", "weekly", "monthly", "quarterly", "yearly"] = Field(
        "monthly", description="Budget period. Default: monthly."
    )
    scope: BudgetScope = Field(
        default_factory=BudgetScope, description="Which resources' cost counts. Default: all."
    )
    thresholds: list[Annotated[float, Field(gt=0, le=1000)]] = Field(
        default_factory=lambda: [50.0, 80.0, 100.0],
        description="Percentages of the amount at which burn alerts fire. Default: 50, 80, 100.",
    )
    enforce: bool = Field(
        False,
        description="Refuse plans whose estimated cost would exceed the budget. Default: false.",
    )

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not _CURRENCY.fullmatch(value):
            raise ValueError(f"{value!r} is not an ISO 4217 currency code such as USD or EUR")
        return value


class Budget(Document):
    KIND = "Budget"
    KEEP_VIEW = True
    kind: Literal["Budget"] = Field(description="Budget. Required.")
    spec: BudgetSpec = Field(description="A spend limit over a period for a scope. Required.")
