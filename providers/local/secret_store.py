"""The local secret store: secret values on disk outside the state, and keyed fingerprints.

``<dataDir>/secrets/`` (mode 0700) holds one JSON record per secret, ``<name>.json``
(mode 0600, written atomically), with the value and the owner labels, and
``.fingerprint-key`` (0600): 32 random bytes made on first use. A value is only ever
described by its fingerprint, HMAC-SHA256 under that key (over the resource address and
the value), so state, plans and logs can show that a value changed without holding the
value or a plain hash of it that could be guessed back.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from pathlib import Path

from providers.base import JSON, PermanentError, ResourceContext
from providers.local import files
from providers.local.settings import LocalSettings

DIR_MODE = 0o700
FILE_MODE = 0o600
KEY_FILE = ".fingerprint-key"
KEY_BYTES = 32
FINGERPRINT_PREFIX = "hmac-sha256:"
RECORD_KIND = "pipeform.local/Secret"


class SecretStore:
    def __init__(self, settings: LocalSettings) -> None:
        self.settings = settings
        self.directory = settings.data_dir / "secrets"

    def path(self, name: str) -> Path:
        return self.directory / f"{files.check_name(name, 'secret name')}.json"

    def shown(self, name: str) -> str:
        return self.settings.shown(self.path(name))

    def load(self, name: str) -> JSON | None:
        """The stored record (value included: never return it to the engine), or None."""
        return files.read_json(self.path(name), self.shown(name))

    def value(self, name: str) -> bytes | None:
        """The stored value, for consumers on this machine (the local executor)."""
        record = self.load(name)
        return None if record is None else value_of(record, self.shown(name))

    def save(self, name: str, ctx: ResourceContext, value: bytes) -> None:
        files.ensure_dir(self.directory, DIR_MODE)
        try:
            text, encoding = value.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            text, encoding = base64.b64encode(value).decode("ascii"), "base64"
        record = {
            "kind": RECORD_KIND,
            "name": name,
            "encoding": encoding,
            "value": text,
            files.LABELS: ctx.owner_labels,
        }
        files.write_json(self.path(name), record, FILE_MODE)

    def remove(self, name: str) -> None:
        files.remove(self.path(name))

    def ensure_key(self) -> bytes:
        """The fingerprint key, made on first use (by one process, even when several race)."""
        path = self.directory / KEY_FILE
        if not path.exists():
            files.ensure_dir(self.directory, DIR_MODE)
            files.create_exclusive(path, secrets.token_bytes(KEY_BYTES), FILE_MODE)
        key = self.key()
        if key is None:
            raise PermanentError(f"{self.settings.shown(path)} vanished while it was being made")
        return key

    def key(self) -> bytes | None:
        """The fingerprint key, or None when there is none yet (reading never makes one)."""
        path = self.directory / KEY_FILE
        try:
            key = path.read_bytes()
        except FileNotFoundError:
            return None
        if len(key) != KEY_BYTES:
            raise PermanentError(
                f"{self.settings.shown(path)} is damaged (not {KEY_BYTES} bytes); delete it "
                "and apply again: every local secret then gets a new fingerprint"
            )
        return key


def fingerprint(key: bytes, address: str, value: bytes) -> str:
    """HMAC-SHA256 of the value under the store's key, bound to the resource address."""
    message = b"pipeform-secret\0" + address.encode("utf-8") + b"\0" + value
    return FINGERPRINT_PREFIX + hmac.new(key, message, hashlib.sha256).hexdigest()


def value_of(record: JSON, shown: str) -> bytes:
    text = record.get("value")
    if not isinstance(text, str):
        raise PermanentError(f"{shown} holds no value; delete it and apply again")
    if record.get("encoding") != "base64":
        return text.encode("utf-8")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise PermanentError(f"{shown} holds a damaged value; delete it and apply again") from None
