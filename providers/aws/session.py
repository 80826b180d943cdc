"""The aws provider's settings, boto3 clients, and its errors in words.

``AwsSettings`` reads the Workspace's ``providers.aws`` block (region, profile, an endpoint
for every service or one per service, so emulators and S3-compatible stores work). Every
client is made from one boto3 session, so the profile's credentials serve every service and
pyarrow's S3 filesystem too (``credentials``). Each client records the API operations it
calls in ``CALLED`` (service, operation), which the IAM policy test reads; ``IAM_ACTIONS``
maps an operation to the IAM action that allows it where the two names differ.

``failure`` turns a botocore exception into a provider error that names the service, the
operation, the AWS error code and the HTTP status, never the response body (the trust
boundary: a remote server's words are not printed).
boto3 is imported here only, when the first client is made.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from providers.base import JSON, PermanentError, ProviderError, RetryableError

DEFAULT_REGION = "us-east-1"

#: (service, operation) pairs called through clients made here, for the IAM policy test
CALLED: set[tuple[str, str]] = set()
_CALLED_LOCK = threading.Lock()

#: the IAM action that allows an API operation, where it is not "<service>:<operation>"
IAM_ACTIONS: dict[tuple[str, str], str] = {
    ("budgets", "CreateBudget"): "budgets:ModifyBudget",
    ("budgets", "DeleteBudget"): "budgets:ModifyBudget",
    ("budgets", "CreateNotification"): "budgets:ModifyBudget",
    ("budgets", "DescribeBudget"): "budgets:ViewBudget",
    ("budgets", "DescribeBudgets"): "budgets:ViewBudget",
    ("budgets", "DescribeNotificationsForBudget"): "budgets:ViewBudget",
    ("s3", "HeadObject"): "s3:GetObject",
    ("s3", "ListObjectsV2"): "s3:ListBucket",
    ("s3", "HeadBucket"): "s3:ListBucket",
    ("monitoring", "PutMetricAlarm"): "cloudwatch:PutMetricAlarm",
    ("monitoring", "DescribeAlarms"): "cloudwatch:DescribeAlarms",
    ("monitoring", "DeleteAlarms"): "cloudwatch:DeleteAlarms",
    ("monitoring", "ListTagsForResource"): "cloudwatch:ListTagsForResource",
    ("monitoring", "TagResource"): "cloudwatch:TagResource",
}
#: operations any identity may call without a policy statement
NO_POLICY_NEEDED = frozenset({("sts", "GetCallerIdentity")})
#: what pyarrow's S3 filesystem calls outside boto3: a snapshot reading an object, and the
#: trainer reading its inputs and writing checkpoints and its package to the artifacts bucket
PYARROW_S3_ACTIONS = ("s3:GetObject", "s3:PutObject", "s3:ListBucket", "s3:DeleteObject")

RETRYABLE_CODES = frozenset(
    {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException",
     "ServiceUnavailable", "InternalFailure", "InternalServerError", "SlowDown"}
)  # fmt: skip


def iam_action(service: str, operation: str) -> str:
    """The IAM action an API operation needs."""
    return IAM_ACTIONS.get((service, operation), f"{service}:{operation}")


@dataclass(frozen=True)
class AwsSettings:
    region: str = DEFAULT_REGION
    profile: str | None = None
    endpoint_url: str | None = None
    endpoints: dict[str, str] = field(default_factory=dict)
    account_id: str | None = None
    budget_subscribers: tuple[str, ...] = ()
    secret_recovery_days: int = 7
    artifacts_bucket: str | None = None
    artifacts_prefix: str = "pipeform"

    @classmethod
    def from_config(cls, config: JSON | None) -> AwsSettings:
        """From the Workspace's providers.aws block (camelCase, as written); None: defaults."""
        config = config or {}
        artifacts = config.get("artifacts") or {}
        return cls(
            region=str(config.get("region") or DEFAULT_REGION),
            profile=config.get("profile") or None,
            endpoint_url=config.get("endpointUrl") or None,
            endpoints=dict(config.get("endpoints") or {}),
            account_id=config.get("accountId") or None,
            budget_subscribers=tuple(config.get("budgetSubscribers") or ()),
            secret_recovery_days=int(config.get("secretRecoveryDays") or 7),
            artifacts_bucket=artifacts.get("bucket") or None,
            artifacts_prefix=str(artifacts.get("prefix", "pipeform")).strip("/"),
        )

    def endpoint(self, service: str) -> str | None:
        """The endpoint for a service: its own, else the shared one, else AWS's."""
        return self.endpoints.get(service) or self.endpoint_url


class Clients:
    """boto3 clients for one provider instance, made on first use from one session."""

    def __init__(self, settings: AwsSettings) -> None:
        self.settings = settings
        self._session: Any = None
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._account: str | None = settings.account_id

    def session(self) -> Any:
        if self._session is None:
            import boto3
            import botocore.exceptions

            try:
                self._session = boto3.Session(
                    profile_name=self.settings.profile, region_name=self.settings.region
                )
            except botocore.exceptions.ProfileNotFound:
                raise PermanentError(
                    f"AWS profile {self.settings.profile!r} (providers.aws.profile) is not in "
                    "the AWS config files; name another, or remove it for the default chain"
                ) from None
        return self._session

    def client(self, service: str, region: str | None = None) -> Any:
        """The client for a service (``cloudwatch``, ``s3``...) in the settings' region (or
        another), with the endpoint from the settings."""
        region = region or self.settings.region
        with self._lock:
            key = f"{service}@{region}"
            if key not in self._clients:
                from botocore.config import Config

                client = self.session().client(
                    service,
                    region_name=region,
                    endpoint_url=self.settings.endpoint(service),
                    config=Config(retries={"mode": "standard", "max_attempts": 3}),
                )
                client.meta.events.register("before-call", _record)
                self._clients[key] = client
            return self._clients[key]

    def account_id(self) -> str:
        """The account (Budgets needs it): the setting, else the credentials' own."""
        if self._account is None:
            try:
                identity = self.client("sts").get_caller_identity()
            except Exception as exc:
                raise failure(exc, "sts", "GetCallerIdentity", "finding the AWS account") from None
            self._account = str(identity["Account"])
        return self._account

    def credentials(self) -> tuple[str | None, str | None, str | None]:
        """(access key, secret key, session token) of the session, for pyarrow; Nones
        when the chain finds none (pyarrow then tries anonymous access and fails clearly)."""
        found = self.session().get_credentials()
        if found is None:
            return None, None, None
        frozen = found.get_frozen_credentials()
        return frozen.access_key, frozen.secret_key, frozen.token


def _record(model: Any, **_: Any) -> None:
    """botocore's before-call event: remember which operation of which service was called."""
    with _CALLED_LOCK:
        CALLED.add((model.service_model.endpoint_prefix, model.name))


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str((response.get("Error") or {}).get("Code") or "")


def failure(exc: BaseException, service: str, operation: str, doing: str) -> ProviderError:
    """A provider error for a failed call: what was being done, the service and operation,
    the AWS error code and HTTP status (never the response body), and what to do."""
    import botocore.exceptions as be

    if isinstance(exc, ProviderError):
        return exc
    where = f"{service} {operation}"
    if isinstance(exc, be.NoCredentialsError | be.PartialCredentialsError):
        return PermanentError(
            f"{doing}: no AWS credentials were found ({where}); set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or providers.aws.profile"
        )
    if isinstance(exc, be.EndpointConnectionError | be.ConnectTimeoutError | be.ReadTimeoutError):
        endpoint = getattr(exc, "kwargs", {}).get("endpoint_url", "the endpoint")
        return RetryableError(f"{doing}: cannot reach {endpoint} ({where}); is it running?", 2.0)
    if isinstance(exc, be.ClientError):
        code = error_code(exc)
        status = (exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode", "?")
        message = f"{doing}: AWS answered {code or 'an error'} (HTTP {status}) to {where}"
        if code in RETRYABLE_CODES or (isinstance(status, int) and status >= 500):
            return RetryableError(message + "; trying again", 2.0)
        hint = _HINTS.get(code)
        return PermanentError(message + (f"; {hint}" if hint else ""))
    if isinstance(exc, be.BotoCoreError):
        return PermanentError(f"{doing}: {type(exc).__name__} ({where})")
    return PermanentError(f"{doing}: {type(exc).__name__} ({where})")


_HINTS = {
    "AccessDenied": "the credentials lack a permission: see the IAM policy in docs/reference/aws.md",
    "AccessDeniedException": "the credentials lack a permission: see the IAM policy in docs/reference/aws.md",
    "UnrecognizedClientException": "the AWS credentials are not valid; check the access key",
    "InvalidClientTokenId": "the AWS credentials are not valid; check the access key",
    "SignatureDoesNotMatch": "the AWS secret key does not match the access key",
    "ExpiredToken": "the AWS session token has expired; renew the credentials",
    "NoSuchBucket": "create the bucket, or fix the s3:// URI",
    "InvalidAccessKeyId": "the AWS access key does not exist; check the credentials",
}


def tags_dict(tags: list[dict[str, str]] | None) -> dict[str, str]:
    """AWS's [{Key, Value}] as a mapping."""
    return {t["Key"]: t["Value"] for t in tags or []}


def tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]
