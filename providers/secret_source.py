"""Reading a Secret's value from ``spec.from``, for the providers that write secrets (local
and aws): an environment variable or a file in the spec tree, read here, and the sources a
provider reads itself (the aws provider: another AWS Secrets Manager secret). Every failure
is a PermanentError that never holds the value.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from providers.base import JSON, PermanentError, ResourceContext
from providers.local.settings import LocalSettings
from reconciler.diagnostics import Diagnostic, error

MAX_VALUE_BYTES = 1024 * 1024  # as Kubernetes Secrets
#: a source a provider reads itself: its block of spec.from -> the value
Reader = Callable[[JSON], bytes]
NO_SOURCE = "spec.from names no source: use {env: VAR} or {file: path}"


def read(
    source: object, settings: LocalSettings, readers: Mapping[str, Reader] | None = None
) -> bytes:
    """The secret value from spec.from; readers: the provider's own sources by field name."""
    if not isinstance(source, dict):
        raise PermanentError(NO_SOURCE)
    if source.get("env"):
        return _from_env(str(source["env"]))
    if source.get("file"):
        return _from_file(str(source["file"]), settings)
    for field, reader in (readers or {}).items():
        if isinstance(source.get(field), dict):
            return reader(source[field])
    if source.get("awsSecretsManager"):
        raise PermanentError(
            "spec.from.awsSecretsManager needs the aws provider to read AWS Secrets Manager: "
            "the local store takes {env: VAR} or {file: path}; a Secret whose targets are "
            "[{provider: aws}] is realised by the aws provider, which reads it"
        )
    raise PermanentError(NO_SOURCE)


def check(
    ctx: ResourceContext, source: object, value: Callable[[object], bytes]
) -> list[Diagnostic]:
    """The source must be readable before an apply changes anything: its value is read with
    ``value`` and dropped; a failure is shown at the field that names the source."""
    try:
        value(source)
    except PermanentError as exc:
        return [error(str(exc), address=ctx.address, path=field_of(source))]
    return []


def field_of(source: object) -> str:
    """The field of spec.from that names the source (where a reading problem is shown)."""
    if isinstance(source, dict):
        for kind in ("env", "file", "awsSecretsManager"):
            if source.get(kind):
                return f"spec.from.{kind}"
    return "spec.from"


def _from_env(variable: str) -> bytes:
    value = os.environ.get(variable)
    if value is None:
        raise PermanentError(
            f"environment variable {variable} is not set (set it or change spec.from)"
        )
    if value == "":
        # CI systems expand a missing secret to "": storing that would hide the mistake.
        raise PermanentError(
            f"environment variable {variable} is empty (set it to the secret's value "
            "or change spec.from)"
        )
    return os.fsencode(value)


def _from_file(written: str, settings: LocalSettings) -> bytes:
    path = settings.user_path(written, "spec.from.file")
    if not path.is_file():
        raise PermanentError(
            f"spec.from.file {written!r} does not exist (create it, or change spec.from)"
        )
    size = path.stat().st_size
    if size > MAX_VALUE_BYTES:
        raise PermanentError(
            f"spec.from.file {written!r} is {size} bytes; secrets may be at most {MAX_VALUE_BYTES}"
        )
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PermanentError(f"cannot read spec.from.file {written!r}: {exc.strerror}") from None
