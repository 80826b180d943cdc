"""Secret on the local provider: read the value from its source, keep it in the local store.

At apply time the value is read from ``spec.from`` (``providers.secret_source``: an
environment variable, or a file relative to the spec tree) and written to the local secret
store, once per local target (``providers.local.secret_store``). Outputs and observed attributes carry only keyed
fingerprints: ``observed.stored`` describes what the store holds and ``observed.source``
what the source holds now, so a rotated source value (or an edited store) reads as drift
and plans an in-place update. Targets on other platforms need their providers.
"""

from __future__ import annotations

from providers import secret_source
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
from providers.local import files
from providers.local.kind import KindHandler, inner_spec
from providers.local.secret_store import SecretStore, fingerprint, value_of
from providers.local.settings import LocalSettings
from reconciler.diagnostics import Diagnostic, error


def target_problems(spec: JSON) -> list[str]:
    """Why this Secret cannot be realised by the local provider (empty when it can)."""
    problems = []
    targets = spec.get("targets") or [{"provider": "local"}]
    for i, target in enumerate(targets):
        provider = target.get("provider")
        if provider != "local":
            problems.append(
                f"spec.targets[{i}] asks for provider {provider}, but this Secret is realised "
                f"by the local provider, which keeps secrets only in its local store (write "
                f"one Secret per provider: a Secret whose targets all name {provider} is "
                f"realised by {provider})"
            )
    source = spec.get("from")
    if isinstance(source, dict) and source.get("awsSecretsManager"):
        problems.append(
            "spec.from.awsSecretsManager needs the aws provider: the local store takes "
            "{env: VAR} or {file: path}"
        )
    return problems


def local_names(ctx: ResourceContext, spec: JSON) -> list[str]:
    """The store names of the Secret's local targets, in order, without repeats."""
    names: list[str] = []
    for target in spec.get("targets") or [{"provider": "local"}]:
        if target.get("provider") == "local":
            name = files.check_name(target.get("name") or ctx.name, "secret target name")
            if name not in names:
                names.append(name)
    return names


class SecretHandler(KindHandler):
    kind = "Secret"

    def __init__(self, settings: LocalSettings) -> None:
        super().__init__(settings)
        self.store = SecretStore(settings)

    def validate(self, ctx: ResourceContext, spec: JSON) -> list[Diagnostic]:
        return [error(p, address=ctx.address) for p in target_problems(inner_spec(spec))]

    def check(self, request: CheckRequest) -> list[Diagnostic]:
        source = inner_spec(request.spec).get("from")
        return secret_source.check(request.ctx, source, self._value)

    def _value(self, source: object) -> bytes:
        return secret_source.read(source, self.settings)

    def _names(self, request: ReadRequest | DeleteRequest) -> list[str]:
        if request.spec is not None:
            return local_names(request.ctx, inner_spec(request.spec))
        return [request.external_id or request.ctx.name]

    def _outputs(self, names: list[str], value_fingerprint: str | None) -> JSON:
        return {
            "files": {n: self.store.shown(n) for n in names},
            "fingerprint": value_fingerprint,
        }

    def owned_records(self) -> tuple[str, ...]:
        return ("secrets/*.json",)

    def read(self, request: ReadRequest) -> ReadResponse:
        names = self._names(request)
        records = {n: self.store.load(n) for n in names}
        present = [n for n, r in records.items() if r is not None]
        if not present:
            return ReadResponse(exists=False)
        key = self.store.key()
        stored = {n: self._stored(key, request.ctx, n, r) for n, r in records.items()}
        observed: JSON = {"stored": stored, "source": None}
        notes: list[str] = []
        if request.spec is not None:
            try:
                value = self._value(inner_spec(request.spec).get("from"))
                if key is not None:
                    observed["source"] = fingerprint(key, request.ctx.address, value)
            except PermanentError as exc:
                # where a plan runs without the source (a pull request's CI), the stored
                # value stands: no drift and no update; apply refuses it up front (check)
                observed["source"] = stored[present[0]]
                notes.append(f"source not readable here: {exc}; stored value kept")
        outputs = self._outputs(names, stored[present[0]])
        return ReadResponse(True, observed, outputs, present[0], notes)

    def _stored(
        self, key: bytes | None, ctx: ResourceContext, name: str, record: JSON | None
    ) -> str | None:
        """The fingerprint of what the store holds under name (None: nothing, or no key)."""
        if key is None or record is None:
            return None
        return fingerprint(key, ctx.address, value_of(record, self.store.shown(name)))

    def _write(self, request: ApplyRequest) -> ApplyResponse:
        ctx, spec = request.ctx, inner_spec(request.spec)
        problems = target_problems(spec)
        if problems:
            raise PermanentError("; ".join(problems))
        names = local_names(ctx, spec)
        for name in names:  # refuse before writing anything
            files.claim(self.store.path(name), ctx, self.store.shown(name), name)
        value = self._value(spec.get("from"))
        key = self.store.ensure_key()
        for name in names:
            self.store.save(name, ctx, value)
        if request.prior_spec is not None:
            dropped = set(local_names(ctx, inner_spec(request.prior_spec))) - set(names)
            for name in sorted(dropped):
                self._remove_ours(ctx, name)
        value_fingerprint = fingerprint(key, ctx.address, value)
        return ApplyResponse(
            self._outputs(names, value_fingerprint),
            names[0],
            {"stored": dict.fromkeys(names, value_fingerprint), "source": value_fingerprint},
        )

    def create(self, request: ApplyRequest) -> ApplyResponse:
        # A record of ours (a create retried after a crash) is adopted and rewritten.
        return self._write(request)

    def update(self, request: ApplyRequest) -> ApplyResponse:
        return self._write(request)

    def _remove_ours(self, ctx: ResourceContext, name: str) -> None:
        record = self.store.load(name)
        if record is None:
            return
        if not files.is_ours(record, ctx):
            raise files.not_ours(ctx, record, self.store.shown(name), name)
        self.store.remove(name)

    def delete(self, request: DeleteRequest) -> None:
        for name in self._names(request):
            self._remove_ours(request.ctx, name)

    def import_(self, request: ImportRequest) -> ImportResponse:
        name = files.check_name(request.id, "secret name")
        value = self.store.value(name)
        if value is None:
            raise PermanentError(
                f"there is no secret {name!r} in the local store "
                f"({self.settings.shown(self.store.directory)}) to import"
            )
        self.store.save(name, request.ctx, value)  # relabel it as ours
        key = self.store.ensure_key()
        value_fingerprint = fingerprint(key, request.ctx.address, value)
        # The source is not known here: assume it holds the stored value; the next plan
        # reads the source and shows a difference as drift.
        observed = {"stored": {name: value_fingerprint}, "source": value_fingerprint}
        return ImportResponse(observed, None, self._outputs([name], value_fingerprint), name)
