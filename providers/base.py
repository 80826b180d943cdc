"""The provider protocol, its errors, and the provider registry.

A provider realises kinds on one platform. Its calls follow Terraform's provider
protocol (one request in, one response out, so fields can be added without breaking
anyone) and Crossplane's external-client contract: every call is idempotent, reading
never mutates, deleting what is gone succeeds, and creating what already exists and is
ours (found by the ownership labels: address and state lineage) adopts it.

Errors a provider raises::

    ProviderError          anything a provider reports; the resource fails
    ├── RetryableError     transient (a timeout, a busy server): the applier retries
    │                      with backoff, after ``delay`` seconds at least
    └── PermanentError     retrying cannot help (bad credentials, invalid request)

Providers are found through the ``pipeform.providers`` entry-point group, so a third
party adds one with ``pip install``; tests may also ``register`` a class directly.
Providers import only this module, never the CLI or the planner.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from reconciler.diagnostics import Diagnostic

OWNER_ADDRESS = "pipeform.dev/address"
OWNER_LINEAGE = "pipeform.dev/lineage"
ENTRY_POINT_GROUP = "pipeform.providers"

JSON = dict[str, Any]


class ProviderError(Exception):
    """A provider call failed; the message is shown to the user as is."""


class RetryableError(ProviderError):
    def __init__(self, message: str, delay: float = 1.0) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentError(ProviderError):
    pass


@dataclass(frozen=True)
class ResourceContext:
    """Who a call is about: the resource, the state it belongs to, where specs live."""

    address: str
    kind: str
    name: str
    lineage: str
    root: Path  # the spec tree, for relative paths

    @classmethod
    def of(cls, address: str, lineage: str, root: Path) -> ResourceContext:
        """The context for ``Kind/name``."""
        kind, name = address.split("/", 1)
        return cls(address, kind, name, lineage, root)

    @property
    def owner_labels(self) -> dict[str, str]:
        """Labels/tags that mark an external object as this resource's, for adoption."""
        return {OWNER_ADDRESS: self.address, OWNER_LINEAGE: self.lineage}


@dataclass(frozen=True)
class ReadRequest:
    ctx: ResourceContext
    spec: JSON | None  # the spec last applied (from state), None on import
    outputs: JSON  # the outputs last recorded
    external_id: str | None


@dataclass(frozen=True)
class ReadResponse:
    exists: bool
    observed: JSON = field(default_factory=dict)  # live attributes, compared for drift
    outputs: JSON = field(default_factory=dict)
    external_id: str | None = None
    #: what could not be checked where this command runs (a Secret's source in a pull
    #: request's CI): shown with the plan, never drift; say what was kept instead
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PlanRequest:
    ctx: ResourceContext
    prior_spec: JSON | None  # None when creating
    desired_spec: JSON
    prior_outputs: JSON
    upstream: Mapping[str, JSON]  # outputs of dependencies, by address (UNKNOWN where pending)
    observed: JSON | None = None  # what refresh read just now; None without refresh or record


@dataclass(frozen=True)
class PlanResponse:
    requires_replace: list[str] = field(default_factory=list)  # changed field paths that force it
    unknown_outputs: list[str] = field(default_factory=list)  # outputs known only after apply
    inputs_fingerprint: str | None = None  # content address of everything the result depends on
    #: why the inputs fingerprint moved, in words (shown as the change's reason), such as
    #: "source changed (sha256:1f2e... -> sha256:9a8b...)"
    reason_detail: str | None = None
    #: set when a create or update would adopt an object that already exists instead of
    #: making one (a run that trained these inputs, which the state never recorded): what
    #: it adopts, in words, such as "run 3f2a1b9c0d12 (no training)". The plan shows the
    #: adoption and estimates no cost for it.
    adopts: str | None = None
    #: a step an earlier apply left waiting that may be taken now although nothing changed
    #: (a held promotion whose condition holds), in words: the plan shows an update with it
    #: as the reason, and the provider's update takes the step
    pending: str | None = None
    #: what a retrain policy saw that decided a retrain (drift over maxPsi, the model's
    #: age), in words: shown after the change's reason
    trigger: str | None = None
    #: what waits on a person or a condition and is not planned (a model version awaiting
    #: approval, a promotion held while an SLO burns), in words: the plan lists it
    waiting: str | None = None
    #: the objects the provider will apply, as it will apply them (secret values masked as
    #: "(sensitive)"): ``plan --json`` shows them in ``change.after.manifests``
    manifests: list[JSON] | None = None


@dataclass(frozen=True)
class ApplyRequest:
    ctx: ResourceContext
    spec: JSON
    prior_spec: JSON | None
    prior_outputs: JSON
    external_id: str | None
    upstream: Mapping[str, JSON]
    #: take ownership of fields another field manager holds (``apply --force-conflicts``)
    force_conflicts: bool = False
    #: wait for what the change starts (a training Job) to finish; False: record it as
    #: running and let a later plan or refresh pick up the outcome (``apply --no-wait``)
    wait: bool = True


@dataclass(frozen=True)
class ApplyResponse:
    outputs: JSON = field(default_factory=dict)
    external_id: str | None = None
    observed: JSON = field(default_factory=dict)  # live attributes right after the change
    #: a word on the result the user should see beside "done" (a promotion held back)
    note: str | None = None


@dataclass(frozen=True)
class CheckRequest:
    """A create or update an apply is about to make, asked about before any change starts."""

    ctx: ResourceContext
    spec: JSON  # the document the change will write: {metadata, spec}
    prior_spec: JSON | None  # the document last applied, None when creating


@dataclass(frozen=True)
class DeleteRequest:
    ctx: ResourceContext
    spec: JSON | None
    outputs: JSON
    external_id: str | None


@dataclass(frozen=True)
class ImportRequest:
    ctx: ResourceContext
    id: str


@dataclass(frozen=True)
class ImportResponse:
    observed: JSON
    spec: JSON | None = None  # the live object's document (metadata, spec) in spec terms, if known
    outputs: JSON = field(default_factory=dict)
    external_id: str | None = None
    #: the content address of what the object was made from (as PlanResponse's), so the
    #: next plan tells whether the specs still describe it
    inputs_fingerprint: str | None = None


@dataclass(frozen=True)
class AliasRequest:
    """Move a registered model's alias by hand: ``pipeform approve`` and ``rollback``."""

    ctx: ResourceContext
    spec: JSON  # the document last applied (metadata, spec)
    outputs: JSON  # the outputs last recorded
    action: str  # approve | rollback
    version: int | None  # approve: the version; rollback: --to VERSION, or None: the previous
    actor: str  # who asked (user@host), as the journal records it


@dataclass(frozen=True)
class AliasResponse:
    outputs: JSON  # the resource's outputs after the move, to record in state
    model: str
    alias: str
    before: int | None  # the version the alias named before (None: none)
    after: int


@dataclass(frozen=True)
class ListOwnedRequest:
    root: Path  # the spec tree
    lineage: str  # the state's lineage ("" when there is no state yet)


@dataclass(frozen=True)
class OwnedObject:
    """A live object carrying pipeform's ownership labels."""

    address: str  # its pipeform.dev/address label
    lineage: str  # its pipeform.dev/lineage label: the state that made it
    id: str  # the id `pipeform import ADDRESS ID` takes
    where: str  # where it lives, as messages show it (a file, a URL)


@dataclass(frozen=True)
class ListOwnedResponse:
    objects: list[OwnedObject] = field(default_factory=list)


class Provider(abc.ABC):
    """Base class of providers. Subclasses set ``name`` and ``kinds``."""

    name: ClassVar[str] = ""
    kinds: ClassVar[frozenset[str]] = frozenset()
    #: spec fields (dotted, under spec) whose change forces replacement, per kind
    replace_on: ClassVar[Mapping[str, frozenset[str]]] = {}
    #: outputs that only a create or update can tell, per kind
    computed_outputs: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    #: True when read() mostly waits on a server (an HTTP API): refresh then reads up to
    #: --parallelism objects at once. Leave False for reads that are CPU or local-disk work.
    concurrent_reads: ClassVar[bool] = False

    def __init__(self, config: JSON | None = None, root: Path | None = None) -> None:
        """config: this provider's Workspace settings; root: the spec tree."""
        self.config: JSON = dict(config or {})
        self.root = root or Path(".")

    def validate(self, ctx: ResourceContext, spec: JSON) -> list[Diagnostic]:
        """Provider-specific checks beyond the spec model; no I/O against live things."""
        return []

    @abc.abstractmethod
    def read(self, request: ReadRequest) -> ReadResponse:
        """Observe the live object; never change anything."""

    def read_batch(self, requests: Sequence[ReadRequest]) -> list[ReadResponse] | None:
        """Optional: observe many objects at once, one response per request in its order
        (the kubernetes provider reads with one LIST per kind and namespace instead of a
        GET per object). The planner's refresh asks every provider first; None (the
        default) means "read each alone": it then calls ``read`` per object."""
        return None

    def plan(self, request: PlanRequest) -> PlanResponse:
        """Which changed fields force a replacement and which outputs become unknown."""
        return default_plan(
            request,
            self.replace_on.get(request.ctx.kind, frozenset()),
            self.computed_outputs.get(request.ctx.kind, ()),
        )

    def check(self, request: CheckRequest) -> list[Diagnostic]:
        """Whether what this change needs from outside the specs can be had now (a secret's
        source, a credential, a file): asked for every create and update of an apply before
        the first change starts, so one error refuses the whole apply and nothing changes.
        Read only and quick. A diagnostic's ``path`` (dotted, such as ``spec.from.env``)
        says which field is at fault: the engine turns it into the file:line:col."""
        return []

    @abc.abstractmethod
    def create(self, request: ApplyRequest) -> ApplyResponse:
        """Make the object; if one that is ours already exists, adopt it."""

    @abc.abstractmethod
    def update(self, request: ApplyRequest) -> ApplyResponse:
        """Change the object in place."""

    @abc.abstractmethod
    def delete(self, request: DeleteRequest) -> None:
        """Remove the object; succeed when it is already gone."""

    def import_(self, request: ImportRequest) -> ImportResponse:
        """Adopt the existing object ``request.id`` as the resource (mark it ours)."""
        raise PermanentError(
            f"provider {self.name} cannot import resources of any kind: write the document "
            "and apply it to make the object anew"
        )

    def move_alias(self, request: AliasRequest) -> AliasResponse:
        """Point the resource's registered-model alias at another version (an approval, a
        rollback); refuses a version the registry does not hold."""
        raise PermanentError(
            f"provider {self.name} cannot move a model alias ({request.ctx.address})"
        )

    def list_owned(self, request: ListOwnedRequest) -> ListOwnedResponse:
        """The objects carrying ownership labels that this provider finds for the spec tree
        at request.root, whatever their lineage (the local provider: every record under its
        data directory). The engine asks when state is empty, to warn that a state may have
        been lost. Reads only; optional: the default finds nothing."""
        return ListOwnedResponse()


def default_plan(
    request: PlanRequest, forcing: frozenset[str], computed: tuple[str, ...]
) -> PlanResponse:
    """The plan of a kind that is not content-addressed: fields in ``forcing`` (dotted, under
    the document) force a replacement when they change; ``computed`` outputs are unknown."""
    if not request.prior_spec or request.prior_spec == request.desired_spec:
        return PlanResponse(unknown_outputs=list(computed))  # a create, or nothing to replace
    changed = changed_paths(request.prior_spec, request.desired_spec)
    replace = sorted(p for p in changed if any(p == f or p.startswith(f + ".") for f in forcing))
    return PlanResponse(requires_replace=replace, unknown_outputs=list(computed))


def changed_paths(before: JSON, after: JSON, prefix: str = "") -> set[str]:
    """Dotted paths whose values differ between two JSON-like mappings."""
    out: set[str] = set()
    for key in set(before) | set(after):
        path = f"{prefix}{key}"
        a, b = before.get(key), after.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out |= changed_paths(a, b, path + ".")
        elif a != b:
            out.add(path)
    return out


#: (address, event) -> None. Events are JSON objects with an "event" key: "progress"
#: (a training epoch: epoch, epochs, loss, metrics, samples_per_s), "waiting", "started",
#: "retrying", "validated" (a Dataset's summary)...
ProgressCallback = Callable[[str, JSON], None]
_progress: ProgressCallback | None = None


def set_progress(callback: ProgressCallback | None) -> None:
    """Where providers' progress goes while they work (the CLI's apply output); None: nowhere."""
    global _progress
    _progress = callback


def report_progress(address: str, event: JSON) -> None:
    """Tell whoever watches how a long call is going; a display failure never fails a call."""
    callback = _progress
    if callback is not None:
        with contextlib.suppress(Exception):  # progress is best effort
            callback(address, event)


_registry: dict[str, type[Provider]] = {}


def register(provider: type[Provider]) -> None:
    """Make a provider class available by its name (tests, embedded plug-ins)."""
    _registry[provider.name] = provider


def unregister(name: str) -> None:
    _registry.pop(name, None)


def available() -> dict[str, type[Provider]]:
    """Every provider: registered classes, then entry points not shadowed by them."""
    from providers import discovery

    found = dict(_registry)
    for name, value in discovery.group_entries(ENTRY_POINT_GROUP).items():
        if name not in found:
            found[name] = discovery.load_entry(value)
    return found


def load(name: str) -> type[Provider] | None:
    if name in _registry:
        return _registry[name]
    from providers import discovery

    provider: type[Provider] | None = discovery.load(ENTRY_POINT_GROUP, name)
    return provider
