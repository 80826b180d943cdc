"""The s3 backend's calls to AWS: objects under the state's prefix, the DynamoDB lock item,
and AWS's errors in the user's words.

boto3 is imported here and in ``s3.py`` alone, so ``pipeform --help`` never loads it.
Messages name the bucket, prefix, table and region, never a credential or a server's
response body.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from reconciler.state import locking
from reconciler.state.backend import StateError
from reconciler.state.model import LockInfo

#: error codes that mean "these credentials are not valid here"
CREDENTIALS = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidToken",
}
DENIED = {"AccessDenied", "AccessDeniedException", "Forbidden", "403"}


class Conflict(Exception):
    """A conditional put found the object already there (HTTP 412)."""


class Store:
    """One state's objects (``bucket``/``prefix``/...) and its lock item."""

    def __init__(self, config: dict[str, Any]) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = str(config["bucket"])
        self.prefix = str(config.get("key") or "pipeform/state").strip("/")
        self.table = str(config["lock_table"])
        self.region = str(
            config.get("region")
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or "us-east-1"
        )
        self.lock_id = f"{self.bucket}/{self.prefix}"
        self.where = f"s3://{self.bucket}/{self.prefix}/"
        endpoint = config.get("endpoint_url") or None
        settings = Config(
            retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=30
        )
        session = boto3.session.Session(region_name=self.region)
        self.s3 = session.client("s3", endpoint_url=endpoint, config=settings)
        self.dynamodb = session.client("dynamodb", endpoint_url=endpoint, config=settings)

    # -- errors -------------------------------------------------------------------------
    @contextmanager
    def calls(self, what: str) -> Iterator[None]:
        """AWS's errors while doing ``what`` (for the message) as one StateError."""
        from botocore import exceptions

        try:
            yield
        except exceptions.ClientError as exc:
            raise self.explain(exc, what) from None
        except exceptions.NoCredentialsError:
            raise StateError(
                f"cannot {what} ({self.where}): no AWS credentials were found.\n  Set "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run where an "
                "instance or pod role provides them"
            ) from None
        except exceptions.BotoCoreError as exc:  # cannot connect, timeouts, bad endpoint
            raise StateError(f"cannot {what} ({self.where}): {exc}") from None

    def explain(self, exc: Any, what: str) -> StateError:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        if code in CREDENTIALS:
            return StateError(
                f"cannot {what} ({self.where}): AWS refused the credentials ({code}).\n  "
                "Check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) for this "
                "account"
            )
        if code in DENIED:
            return StateError(
                f"cannot {what} ({self.where}): access denied ({code}).\n  Grant the "
                "permissions docs/state-backends.md lists for the s3 backend"
            )
        if code == "NoSuchBucket":
            return StateError(
                f"cannot {what}: the bucket {self.bucket} does not exist (spec.state.bucket, "
                f"region {self.region}).\n  Create it (versioning on is advised) or fix the name"
            )
        if code == "ResourceNotFoundException":
            return StateError(
                f"cannot {what}: the DynamoDB lock table {self.table} does not exist in "
                f"region {self.region} (spec.state.lock_table).\n  Create it with the "
                "partition key LockID (a string), or fix the name"
            )
        return StateError(f"cannot {what} ({self.where}): AWS answered {code or 'an error'}")

    # -- objects ----------------------------------------------------------------------------
    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def get(self, name: str) -> Any | None:
        """An object's JSON, or None where there is none."""
        from botocore import exceptions

        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=self.key(name))["Body"].read()
        except exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        return json.loads(body)

    def put_new(self, name: str, body: Any) -> None:
        """Write an object that must not exist yet (If-None-Match: *); Conflict if it does."""
        from botocore import exceptions

        data = json.dumps(body, separators=(",", ":")).encode()
        try:
            self.s3.put_object(Bucket=self.bucket, Key=self.key(name), Body=data, IfNoneMatch="*")
        except exceptions.ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 412 or exc.response.get("Error", {}).get("Code") in (
                "PreconditionFailed",
                "ConditionalRequestConflict",
            ):
                raise Conflict(name) from None
            raise

    def put(self, name: str, body: Any) -> None:
        data = json.dumps(body, separators=(",", ":")).encode()
        self.s3.put_object(Bucket=self.bucket, Key=self.key(name), Body=data)

    def names(self, folder: str, after: str | None = None) -> list[str]:
        """The object names under prefix/folder/, in order, after ``after`` if given."""
        found: list[str] = []
        args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.key(folder) + "/"}
        if after is not None:
            args["StartAfter"] = self.key(after)
        for page in self.s3.get_paginator("list_objects_v2").paginate(**args):
            found += [o["Key"][len(self.prefix) + 1 :] for o in page.get("Contents", [])]
        return found

    def delete_all(self) -> None:
        """Every object under the prefix (``state migrate`` replacing a state)."""
        names = self.names("log") + self.names("snapshot")
        for start in range(0, len(names), 1000):
            chunk = [{"Key": self.key(n)} for n in names[start : start + 1000]]
            self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": chunk})

    # -- the lock item ------------------------------------------------------------------------
    def lock_put(self, info: LockInfo) -> bool:
        """Take the lock item; False when another holds it."""
        from botocore import exceptions

        try:
            self.dynamodb.put_item(
                TableName=self.table,
                Item={
                    "LockID": {"S": self.lock_id},
                    "ID": {"S": info.id},
                    "Info": {"S": json.dumps(info.__dict__)},
                },
                ConditionExpression="attribute_not_exists(LockID)",
            )
        except exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def lock_delete(self, lock_id: str) -> bool:
        """Remove the lock item if its id is lock_id; False when it is not."""
        from botocore import exceptions

        try:
            self.dynamodb.delete_item(
                TableName=self.table,
                Key={"LockID": {"S": self.lock_id}},
                ConditionExpression="ID = :id",
                ExpressionAttributeValues={":id": {"S": lock_id}},
            )
        except exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def lock_get(self) -> LockInfo | None:
        item = self.dynamodb.get_item(
            TableName=self.table, Key={"LockID": {"S": self.lock_id}}, ConsistentRead=True
        ).get("Item")
        if item is None:
            return None
        lock_id = item.get("ID", {}).get("S", "?")
        where = f"{self.where} (item {self.lock_id} of the DynamoDB table {self.table})"
        return locking.read_holder(item.get("Info", {}).get("S", ""), lock_id, where)
