"""The artifacts bucket: where the local provider stores what it makes, content-addressed.

When the Workspace sets ``providers.aws.artifacts: {bucket, prefix}``, Dataset snapshots
and FeatureSet tables are uploaded after they are made locally, under a key made of their
sha256 (``<prefix>/snapshots/sha256/<hex>.parquet``, ``<prefix>/features/sha256/<hex>.parquet``,
``<prefix>/transforms/sha256/<hex>.json``); the trainer writes checkpoints under
``<prefix>/checkpoints/<job>/<run id>/`` and its package under
``<prefix>/packages/sha256/<package digest>/`` itself, through pyarrow's S3 filesystem.

An upload is idempotent: an object already at its key holds those bytes (the key is their
hash), so it is not sent again (one HeadObject). The bucket is looked at once per process,
so a missing bucket or an endpoint that does not answer is one clear, permanent error.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from providers.aws.s3source import clients_for
from providers.aws.session import AwsSettings, Clients, error_code, failure
from providers.base import JSON, PermanentError, RetryableError
from providers.local.settings import LocalSettings

_CHECKED: set[tuple[str, str | None]] = set()  # (bucket, endpoint) found to exist
_CHECKED_LOCK = threading.Lock()


@dataclass(frozen=True)
class Artifacts:
    """The artifacts bucket of one Workspace, and how to reach it."""

    bucket: str
    prefix: str
    clients: Clients

    @property
    def aws(self) -> AwsSettings:
        return self.clients.settings

    def key(self, *parts: str) -> str:
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p.strip("/"))

    def uri(self, *parts: str) -> str:
        return f"s3://{self.bucket}/{self.key(*parts)}"

    def content_uri(self, kind: str, sha256: str, suffix: str) -> str:
        """``s3://bucket/prefix/<kind>/sha256/<hex><suffix>``: the key names the bytes."""
        digest = sha256.removeprefix("sha256:").lower()
        return self.uri(kind, "sha256", digest + suffix)

    def check_bucket(self) -> None:
        """The bucket exists and answers; else one error naming the setting to fix."""
        endpoint = self.aws.endpoint("s3")
        with _CHECKED_LOCK:
            if (self.bucket, endpoint) in _CHECKED:
                return
        doing = f"using the artifacts bucket {self.bucket!r} (providers.aws.artifacts.bucket)"
        try:
            self.clients.client("s3").head_bucket(Bucket=self.bucket)
        except Exception as exc:
            if error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
                raise PermanentError(
                    f"{doing}: the bucket does not exist at {endpoint or 'AWS S3'}; create it, "
                    "or fix providers.aws.artifacts.bucket (or providers.aws.endpointUrl)"
                ) from None
            error = failure(exc, "s3", "HeadBucket", doing)
            if isinstance(error, RetryableError) and "cannot reach" in str(error):
                raise PermanentError(
                    f"{doing}: cannot reach the S3 endpoint {endpoint or 'of AWS'}; fix "
                    "providers.aws.endpointUrl (or endpoints.s3), or start the store"
                ) from None
            raise error from None
        with _CHECKED_LOCK:
            _CHECKED.add((self.bucket, endpoint))

    def exists(self, uri: str) -> bool:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        try:
            self.clients.client("s3").head_object(Bucket=bucket, Key=key)
        except Exception as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise failure(exc, "s3", "HeadObject", f"looking for {uri}") from None
        return True

    def put_file(self, path: Path, uri: str) -> bool:
        """Upload a file to its content-addressed URI unless it is there; True if sent."""
        self.check_bucket()
        if self.exists(uri):
            return False
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        try:
            with path.open("rb") as body:
                self.clients.client("s3").put_object(Bucket=bucket, Key=key, Body=body)
        except Exception as exc:
            raise failure(exc, "s3", "PutObject", f"uploading {path.name} to {uri}") from None
        return True

    def run_config_store(self) -> JSON:
        """The trainer's ``object_store`` (region and endpoint: no credential)."""
        return {"region": self.aws.region, "endpoint_url": self.aws.endpoint("s3")}

    def run_environment(self) -> dict[str, str]:
        """The credentials the trainer's pyarrow S3 filesystem reads from its environment."""
        access, secret, token = self.clients.credentials()
        env = {"AWS_DEFAULT_REGION": self.aws.region, "AWS_REGION": self.aws.region}
        if access and secret:
            env.update(AWS_ACCESS_KEY_ID=access, AWS_SECRET_ACCESS_KEY=secret)
        if token:
            env["AWS_SESSION_TOKEN"] = token
        return env


def artifacts_for(settings: LocalSettings) -> Artifacts | None:
    """The Workspace's artifacts bucket (providers.aws.artifacts), or None when unset."""
    config = settings.workspace.get("aws")
    if not isinstance(config, dict) or not (config.get("artifacts") or {}).get("bucket"):
        return None
    clients = clients_for(config)
    bucket = clients.settings.artifacts_bucket
    assert bucket is not None
    return Artifacts(bucket, clients.settings.artifacts_prefix, clients)


__all__ = ["Artifacts", "artifacts_for"]
