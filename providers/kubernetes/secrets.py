"""Secret on the kubernetes provider: a v1 Secret per target, filled from the Secret's source.

The value is read from ``spec.from`` (an environment variable, or a file in the spec
tree) by the local provider's reader (``providers.local.secrets.read_source``) and written
under the data key ``value`` of an Opaque Secret for each ``{provider: kubernetes}``
target (``name``, default the Secret's; ``namespace``, default the Workspace's). A Secret
with no kubernetes target (the default ``targets: [{provider: local}]``) becomes one
Secret named after it in the Workspace's namespace: on this provider, the cluster is
where its consumers (the training pods) read it. ``aws`` targets are refused.

The value never leaves the apply: plans show ``"(sensitive)"`` in its place, and state
keeps only keyed fingerprints (HMAC-SHA256, ``providers.local.secret_store.fingerprint``)
under a 32-byte key that pipeform keeps in the cluster itself, the Secret
``pipeform-fingerprint-key`` in the Workspace's namespace (made on the first write), so
every machine that plans against the cluster computes the same fingerprints.
``observed`` holds the fingerprint of what each Secret holds and of what the source
holds now: a rotated source, or a value edited by hand, reads as drift.
"""

from __future__ import annotations

import base64
import contextlib
import secrets as random
import threading
from collections.abc import Mapping, Sequence
from typing import ClassVar

from providers.base import (
    JSON,
    ApplyRequest,
    ApplyResponse,
    CheckRequest,
    PermanentError,
    ReadRequest,
    ReadResponse,
    ResourceContext,
)
from providers.handlers import inner_spec
from providers.kubernetes import objects
from providers.kubernetes.client import RESOURCES, Call, Conflict, KubeClient
from providers.kubernetes.kind import Found, KubeHandler
from providers.kubernetes.settings import KubeSettings
from providers.local.secret_store import fingerprint
from providers.local.secrets import read_source, source_path
from providers.local.settings import LocalSettings
from reconciler.diagnostics import Diagnostic, error

DATA_KEY = "value"
KEY_SECRET = "pipeform-fingerprint-key"
KEY_BYTES = 32


def targets(ctx: ResourceContext, spec: JSON, default_namespace: str) -> list[tuple[str, str]]:
    """(namespace, name) of each kubernetes target, in order, without repeats."""
    found: list[tuple[str, str]] = []
    for target in spec.get("targets") or []:
        if target.get("provider") == "kubernetes":
            place = (
                str(target.get("namespace") or default_namespace),
                str(target.get("name") or ctx.name),
            )
            if place not in found:
                found.append(place)
    return found or [(default_namespace, ctx.name)]


class SecretHandler(KubeHandler):
    kind = "Secret"
    primary: ClassVar[str] = "secrets"
    name_path: ClassVar[str] = "spec.targets"

    def __init__(self, settings: KubeSettings, client: KubeClient) -> None:
        super().__init__(settings, client)
        local = settings.workspace.get("local") or {}
        self.local_settings = LocalSettings.from_config(dict(local), settings.root)
        self._key: bytes | None = None
        self._key_lock = threading.Lock()

    # --- rendering ----------------------------------------------------------------------

    def manifests(
        self, ctx: ResourceContext, document: JSON, upstream: Mapping[str, JSON]
    ) -> list[JSON]:
        spec = inner_spec(document)
        return [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name, "namespace": namespace},
                "type": "Opaque",
                "data": {DATA_KEY: objects.SENSITIVE},
            }
            for namespace, name in targets(ctx, spec, self.settings.namespace)
        ]

    def fill(self, request: ApplyRequest, manifests: list[JSON]) -> list[JSON]:
        value = read_source(inner_spec(request.spec).get("from"), self.local_settings)
        encoded = base64.b64encode(value).decode("ascii")
        return [{**m, "data": {DATA_KEY: encoded}} for m in manifests]

    def namespace_paths(self, document: JSON) -> Mapping[str, str | None]:
        return {
            f"spec.targets[{i}].namespace": t.get("namespace")
            for i, t in enumerate(inner_spec(document).get("targets") or [])
            if t.get("provider") == "kubernetes"
        }

    def validate(self, ctx: ResourceContext, spec: JSON) -> list[Diagnostic]:
        found = []
        listed = inner_spec(spec).get("targets") or []
        on_cluster = any(t.get("provider") == "kubernetes" for t in listed)
        for i, target in enumerate(listed):
            if target.get("provider") == "local" and on_cluster:
                found.append(
                    error(
                        f"spec.targets[{i}] asks for provider local beside kubernetes targets, "
                        "but this Secret is realised by the kubernetes provider, which "
                        "writes only Kubernetes Secrets",
                        address=ctx.address,
                        path=f"spec.targets[{i}].provider",
                        hint="write one Secret per provider; a Secret with only local "
                        "targets becomes one Kubernetes Secret in the Workspace's namespace",
                    )
                )
            if target.get("provider") == "aws":
                found.append(
                    error(
                        f"spec.targets[{i}] asks for provider aws, but this Secret is realised "
                        "by the kubernetes provider, which writes only Kubernetes Secrets",
                        address=ctx.address,
                        path=f"spec.targets[{i}].provider",
                        hint="write one Secret per provider: a Secret whose targets all name "
                        "aws, with provider: aws",
                    )
                )
        source = inner_spec(spec).get("from")
        if isinstance(source, dict) and source.get("awsSecretsManager"):
            found.append(
                error(
                    "spec.from.awsSecretsManager needs the aws provider: the kubernetes "
                    "provider reads {env: VAR} or {file: path}",
                    address=ctx.address,
                    path="spec.from.awsSecretsManager",
                )
            )
        return found or super().validate(ctx, spec)

    def check(self, request: CheckRequest) -> list[Diagnostic]:
        source = inner_spec(request.spec).get("from")
        try:
            read_source(source, self.local_settings)
        except PermanentError as exc:
            return [error(str(exc), address=request.ctx.address, path=source_path(source))]
        return super().check(request)

    # --- fingerprints -------------------------------------------------------------------

    def key(self, create: bool) -> bytes | None:
        """The fingerprint key from the cluster; made only when ``create`` (a write)."""
        with self._key_lock:
            if self._key is None:
                self._key = self._read_key()
                if self._key is None and create:
                    self._key = self._make_key()
            return self._key

    def _read_key(self) -> bytes | None:
        live = self.client.get(RESOURCES["secrets"], self.settings.namespace, KEY_SECRET)
        if live is None:
            return None
        try:
            key = base64.b64decode(str((live.get("data") or {}).get("key") or ""), validate=True)
        except ValueError:
            key = b""
        if len(key) != KEY_BYTES:
            raise PermanentError(
                f"Secret {self.settings.namespace}/{KEY_SECRET} holds no {KEY_BYTES}-byte key; "
                "delete it and apply again: every Secret then gets a new fingerprint"
            )
        return key

    def _make_key(self) -> bytes:
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": KEY_SECRET,
                "namespace": self.settings.namespace,
                "labels": {objects.MANAGED_BY: objects.MANAGER},
            },
            "type": "Opaque",
            "data": {"key": base64.b64encode(random.token_bytes(KEY_BYTES)).decode("ascii")},
        }
        call = Call("create", RESOURCES["secrets"], self.settings.namespace)
        with contextlib.suppress(Conflict):  # another apply made it first: use theirs
            self.client.request("POST", call, query=[("fieldManager", "pipeform")], body=body)
        key = self._read_key()
        if key is None:
            raise PermanentError(f"Secret {self.settings.namespace}/{KEY_SECRET} vanished")
        return key

    def _fingerprint(self, ctx: ResourceContext, live: JSON) -> str | None:
        key = self.key(create=False)
        encoded = (live.get("data") or {}).get(DATA_KEY)
        if key is None or not isinstance(encoded, str):
            return None
        try:
            value = base64.b64decode(encoded, validate=True)
        except ValueError:
            return None
        return fingerprint(key, ctx.address, value)

    # --- reading back -------------------------------------------------------------------

    def observe(self, ctx: ResourceContext, manifest: JSON, live: JSON) -> JSON:
        shown = objects.observed_of({k: v for k, v in manifest.items() if k != "data"}, live)
        return {**shown, "stored": self._fingerprint(ctx, live)}

    def outputs(self, ctx: ResourceContext, live: Sequence[JSON]) -> JSON:
        places = [
            {
                "namespace": (o.get("metadata") or {}).get("namespace"),
                "name": (o.get("metadata") or {}).get("name"),
                "key": DATA_KEY,
            }
            for o in live
        ]
        first = places[0] if places else {}
        return {
            **first,
            "secrets": places,
            "fingerprint": self._fingerprint(ctx, live[0]) if live else None,
        }

    def respond(self, request: ReadRequest, found: Found) -> ReadResponse:
        response = super().respond(request, found)
        if not response.exists:
            return response
        stored = response.outputs.get("fingerprint")
        notes: list[str] = []
        source: str | None = stored
        key = self.key(create=False)
        if request.spec is not None and key is not None:
            try:
                value = read_source(inner_spec(request.spec).get("from"), self.local_settings)
                source = fingerprint(key, request.ctx.address, value)
            except PermanentError as exc:
                # where a plan runs without the source (a pull request's CI), the stored
                # value stands: no drift and no update; apply refuses it up front (check)
                notes.append(f"source not readable here: {exc}; stored value kept")
        observed = {**response.observed, "source": source}
        return ReadResponse(True, observed, response.outputs, response.external_id, notes)

    def _apply(self, request: ApplyRequest, manifests: list[JSON]) -> ApplyResponse:
        self.key(create=True)  # before the value is written, so fingerprints can be made
        response = super()._apply(request, manifests)
        return ApplyResponse(
            response.outputs,
            response.external_id,
            {**response.observed, "source": response.outputs.get("fingerprint")},
            response.note,
        )
