"""Secret on the aws provider: an AWS Secrets Manager secret per aws target.

The value is read from ``spec.from`` (an environment variable, a file in the spec tree, or
another Secrets Manager secret, optionally one key of its JSON) and written as the secret
``targets[].name`` (default: the Secret's name), tagged with the ownership tags. A value
equal to the stored one writes no new version. Outputs and observed attributes carry only
keyed fingerprints, HMAC-SHA256 under a 32-byte key that pipeform keeps in Secrets Manager
itself (``pipeform/fingerprint-key``, made on the first write), so every machine that
plans the same account computes the same fingerprints; a rotated source reads as drift and
plans an in-place update. Deleting schedules the secret's deletion with a recovery window
(``providers.aws.secretRecoveryDays``); a create that finds its own secret scheduled for
deletion restores it.
"""

from __future__ import annotations

import json
import secrets as random
from typing import Any

from providers import secret_source
from providers.aws.kind import AwsHandler, claim, is_ours
from providers.aws.session import error_code, failure, tag_list, tags_dict
from providers.base import (
    JSON,
    ApplyRequest,
    ApplyResponse,
    CheckRequest,
    DeleteRequest,
    ImportRequest,
    ImportResponse,
    PermanentError,
    ReadRequest,
    ReadResponse,
    ResourceContext,
)
from providers.handlers import inner_spec
from providers.local.secret_store import fingerprint
from providers.local.settings import LocalSettings
from reconciler.diagnostics import Diagnostic, error

KEY_NAME = "pipeform/fingerprint-key"
KEY_TAG = "pipeform.dev/fingerprint-key"
KEY_BYTES = 32
SERVICE = "secretsmanager"


def aws_names(ctx: ResourceContext, spec: JSON) -> list[str]:
    """The Secrets Manager names of the Secret's aws targets, in order, without repeats."""
    names: list[str] = []
    for target in spec.get("targets") or []:
        if target.get("provider") == "aws":
            name = str(target.get("name") or ctx.name)
            if name not in names:
                names.append(name)
    return names


def target_problems(spec: JSON) -> list[str]:
    problems = []
    for i, target in enumerate(spec.get("targets") or []):
        if target.get("provider") != "aws":
            problems.append(
                f"spec.targets[{i}] asks for provider {target.get('provider')}, but this Secret "
                "is realised by the aws provider, which writes only to AWS Secrets Manager: "
                "use provider: aws, or write one Secret per provider"
            )
    if not any(t.get("provider") == "aws" for t in spec.get("targets") or []):
        problems.append("a Secret on the aws provider needs a target: targets: [{provider: aws}]")
    return problems


class SecretHandler(AwsHandler):
    kind = "Secret"

    def validate(self, ctx: ResourceContext, spec: JSON) -> list[Diagnostic]:
        return [error(p, address=ctx.address) for p in target_problems(inner_spec(spec))]

    def check(self, request: CheckRequest) -> list[Diagnostic]:
        source = inner_spec(request.spec).get("from")
        return secret_source.check(
            request.ctx, source, lambda s: self._source_value(s, request.ctx)
        )

    # --- the value and its fingerprint ------------------------------------------------------

    def _source_value(self, source: object, ctx: ResourceContext) -> bytes:
        settings = LocalSettings.from_config({}, ctx.root)
        return secret_source.read(
            source, settings, {"awsSecretsManager": self._from_secrets_manager}
        )

    def _from_secrets_manager(self, where: JSON) -> bytes:
        secret_id = str(where.get("secretId"))
        doing = f"reading spec.from.awsSecretsManager {secret_id!r}"
        client = self.clients.client(SERVICE, where.get("region"))
        try:
            found = client.get_secret_value(SecretId=secret_id)
        except Exception as exc:
            if error_code(exc) == "ResourceNotFoundException":
                raise PermanentError(f"{doing}: there is no such secret") from None
            raise failure(exc, SERVICE, "GetSecretValue", doing) from None
        value = _value(found)
        key = where.get("key")
        if not key:
            return value
        try:
            document = json.loads(value)
            return str(document[key]).encode("utf-8")
        except (ValueError, KeyError, TypeError):
            raise PermanentError(f"{doing}: the secret is not JSON holding key {key!r}") from None

    def _key(self, create: bool) -> bytes | None:
        """The fingerprint key from Secrets Manager; made only when ``create`` (a write)."""
        client = self.clients.client(SERVICE)
        try:
            return _value(client.get_secret_value(SecretId=KEY_NAME))
        except Exception as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise failure(
                    exc, SERVICE, "GetSecretValue", "reading the fingerprint key"
                ) from None
        if not create:
            return None
        try:
            client.create_secret(
                Name=KEY_NAME,
                SecretBinary=random.token_bytes(KEY_BYTES),
                Description="pipeform: the key of secret fingerprints (never the secrets)",
                Tags=tag_list({KEY_TAG: "1"}),
            )
        except Exception as exc:  # another process made it first: read theirs
            if error_code(exc) != "ResourceExistsException":
                raise failure(exc, SERVICE, "CreateSecret", "making the fingerprint key") from None
        return self._key(create=False)

    # --- live secrets -----------------------------------------------------------------------

    def _describe(self, name: str) -> JSON | None:
        """The secret's description, None when there is none (or it is scheduled for deletion
        and ``pending`` is False)."""
        try:
            found: JSON = self.clients.client(SERVICE).describe_secret(SecretId=name)
        except Exception as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return None
            raise failure(exc, SERVICE, "DescribeSecret", f"reading secret {name!r}") from None
        return found

    def _stored(self, name: str) -> bytes:
        try:
            return _value(self.clients.client(SERVICE).get_secret_value(SecretId=name))
        except Exception as exc:
            raise failure(exc, SERVICE, "GetSecretValue", f"reading secret {name!r}") from None

    def _names(self, request: ReadRequest | DeleteRequest) -> list[str]:
        if request.spec is not None:
            return aws_names(request.ctx, inner_spec(request.spec))
        return [request.external_id or request.ctx.name]

    def read(self, request: ReadRequest) -> ReadResponse:
        names = self._names(request)
        live = {n: d for n in names if (d := self._describe(n)) and not d.get("DeletedDate")}
        if not live:
            return ReadResponse(exists=False)
        key = self._key(create=False)
        stored = {
            n: (
                fingerprint(key, request.ctx.address, self._stored(n))
                if key and n in live
                else None
            )
            for n in names
        }
        observed: JSON = {"stored": stored, "source": None}
        if request.spec is not None and key is not None:
            try:
                value = self._source_value(inner_spec(request.spec).get("from"), request.ctx)
                observed["source"] = fingerprint(key, request.ctx.address, value)
            except PermanentError as exc:  # shown as drift; the update then reports it
                observed["sourceError"] = str(exc)
        first = next(n for n in names if n in live)
        outputs = {"arns": {n: d["ARN"] for n, d in live.items()}, "fingerprint": stored[first]}
        return ReadResponse(True, observed, outputs, first)

    def _write(self, request: ApplyRequest) -> ApplyResponse:
        ctx, spec = request.ctx, inner_spec(request.spec)
        problems = target_problems(spec)
        if problems:
            raise PermanentError("; ".join(problems))
        names = aws_names(ctx, spec)
        found = {n: self._describe(n) for n in names}
        for name, described in found.items():  # refuse before writing anything
            if described is not None:
                claim(tags_dict(described.get("Tags")), ctx, f"secret {name!r}", name)
        value = self._source_value(spec.get("from"), ctx)
        key = self._key(create=True)
        assert key is not None
        arns = {n: self._put(ctx, n, found[n], value) for n in names}
        if request.prior_spec is not None:
            for name in sorted(set(aws_names(ctx, inner_spec(request.prior_spec))) - set(names)):
                self._remove_ours(ctx, name)
        value_fingerprint = fingerprint(key, ctx.address, value)
        return ApplyResponse(
            {"arns": arns, "fingerprint": value_fingerprint},
            names[0],
            {"stored": dict.fromkeys(names, value_fingerprint), "source": value_fingerprint},
        )

    def _put(self, ctx: ResourceContext, name: str, described: JSON | None, value: bytes) -> str:
        """Write the value as secret ``name`` (made, restored or given a new version); its ARN."""
        client = self.clients.client(SERVICE)
        doing = f"writing secret {name!r}"
        payload: dict[str, Any] = _payload(value)
        try:
            if described is None:
                made = client.create_secret(
                    Name=name,
                    Description=f"pipeform {ctx.address}",
                    Tags=tag_list(ctx.owner_labels),
                    **payload,
                )
                return str(made["ARN"])
            if described.get("DeletedDate"):
                client.restore_secret(SecretId=name)
            if self._stored(name) != value:
                client.put_secret_value(SecretId=name, **payload)
            return str(described["ARN"])
        except Exception as exc:
            operation = "CreateSecret" if described is None else "PutSecretValue"
            raise failure(exc, SERVICE, operation, doing) from None

    def create(self, request: ApplyRequest) -> ApplyResponse:
        # a secret of ours (a create retried after a crash) is adopted and rewritten
        return self._write(request)

    def update(self, request: ApplyRequest) -> ApplyResponse:
        return self._write(request)

    def _remove_ours(self, ctx: ResourceContext, name: str) -> None:
        described = self._describe(name)
        if described is None or described.get("DeletedDate"):
            return
        tags = tags_dict(described.get("Tags"))
        if not is_ours(tags, ctx):
            claim(tags, ctx, f"secret {name!r}", name)  # raises, naming the owner
        try:
            self.clients.client(SERVICE).delete_secret(
                SecretId=name, RecoveryWindowInDays=self.settings.secret_recovery_days
            )
        except Exception as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise failure(exc, SERVICE, "DeleteSecret", f"deleting secret {name!r}") from None

    def delete(self, request: DeleteRequest) -> None:
        for name in self._names(request):
            self._remove_ours(request.ctx, name)

    def import_(self, request: ImportRequest) -> ImportResponse:
        name = request.id
        described = self._describe(name)
        if described is None or described.get("DeletedDate"):
            raise PermanentError(f"there is no secret {name!r} in AWS Secrets Manager to import")
        try:
            self.clients.client(SERVICE).tag_resource(
                SecretId=name, Tags=tag_list(request.ctx.owner_labels)
            )
        except Exception as exc:
            raise failure(exc, SERVICE, "TagResource", f"importing secret {name!r}") from None
        key = self._key(create=True)
        assert key is not None
        value_fingerprint = fingerprint(key, request.ctx.address, self._stored(name))
        # the source is not known here: the next plan reads it and shows a difference as drift
        observed = {"stored": {name: value_fingerprint}, "source": value_fingerprint}
        outputs = {"arns": {name: described["ARN"]}, "fingerprint": value_fingerprint}
        return ImportResponse(observed, None, outputs, name)


def _value(found: JSON) -> bytes:
    if found.get("SecretBinary") is not None:
        return bytes(found["SecretBinary"])
    return str(found.get("SecretString") or "").encode("utf-8")


def _payload(value: bytes) -> dict[str, Any]:
    """SecretString for UTF-8 text (what consoles and SDKs read), else SecretBinary."""
    try:
        return {"SecretString": value.decode("utf-8")}
    except UnicodeDecodeError:
        return {"SecretBinary": value}


__all__ = ["KEY_NAME", "SecretHandler"]
