"""What every spec document shares: the model base, metadata, lifecycle, names, references.

Documents follow the Kubernetes resource model (apiVersion, kind, metadata, spec).
Python attributes are snake_case; the YAML and JSON spelling is camelCase (aliases).
Models are frozen and strict about unknown fields so that a typo is an error, not a
silently ignored setting.
"""

from __future__ import annotations

import functools
import re
import typing
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

from reconciler.kinds import API_VERSION  # noqa: F401 - offered here too
from reconciler.kinds.reference import Reference

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DNS_LABEL = re.compile(DNS_LABEL)
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_DNS_SUBDOMAIN = re.compile(DNS_SUBDOMAIN)
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
ADDRESS = r"^[A-Za-z]+/[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class FieldError(ValueError):
    """A check over a whole value that knows which part is wrong: ``path`` is under it.

    Raised from validators of a model or a list, so that the error points at the item
    (``gates[1].metric``) rather than at the enclosing value.
    """

    def __init__(self, message: str, *path: str | int) -> None:
        super().__init__(message)
        self.path = path


#: Marks a Workspace setting that widens what pipeform may read, contact or write (a
#: location outside the tree, an endpoint, the state backend): an untrusted run takes it
#: only from trusted configuration (``reconciler.spec.trust``). Every setting that names an
#: endpoint or a location carries it; ``tests/security`` checks that none is missed.
TRUSTED: dict[str, Any] = {"x-pipeform-trusted": True}


def omitted_when(default: Any) -> Callable[[Any], bool]:
    """``exclude_if`` for a field added after specs were applied: the field is left out of
    the spec's JSON while it holds ``default`` (a callable: the value it makes), so adding
    it changes no spec's hash and nothing re-runs on an upgrade. Readers of the JSON treat
    the missing key as the default."""
    if callable(default):
        return lambda value: bool(value == default())
    return lambda value: bool(value == default)


def empty_list() -> list[Any]:
    """A new empty list, as a model field's default_factory. Not ``list`` itself: pydantic
    inspects every factory's signature when it builds a model, and a builtin's is parsed
    from its text signature with ast, about 1 ms each on every start."""
    return []


class SpecModel(BaseModel):
    """Base of every spec model: camelCase aliases, unknown fields forbidden, frozen, and
    every number finite: NaN and infinities (``.nan``, ``.inf``, ``"1e999"``) are refused
    in every float field, as no bound, price or metric can be compared with them.

    ``PLAIN_METHODS`` names the methods (no arguments) whose results the spec cache keeps
    with the model's fields, so that a ``reconciler.spec.facts.View`` answers them too."""

    PLAIN_METHODS: ClassVar[tuple[str, ...]] = ()

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_enum_values=True,
        validate_default=False,
        allow_inf_nan=False,
        defer_build=True,  # build validators on first use: most commands touch few kinds
    )


def check_dns_label(value: str) -> str:
    if len(value) > 63:
        raise ValueError(f"{value!r} is {len(value)} characters long; names have at most 63")
    if not _DNS_LABEL.fullmatch(value):
        fixed = re.sub(r"[^a-z0-9-]+", "-", value.lower()).strip("-") or "my-name"
        raise ValueError(
            f"{value!r} is not a valid name: use lower-case letters, digits and '-', "
            f"starting and ending with a letter or digit (for example {fixed!r}), "
            "because names become Kubernetes and cloud resource names"
        )
    return value


Name = Annotated[
    str,
    AfterValidator(check_dns_label),
    WithJsonSchema({"type": "string", "pattern": DNS_LABEL, "minLength": 1, "maxLength": 63}),
]


def check_label_key(key: str) -> str:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        raise ValueError(
            f"label key {key!r} has an invalid prefix; use a DNS subdomain such as example.com/"
        )
    if not name or len(name) > 63 or not _LABEL_NAME.fullmatch(name):
        raise ValueError(
            f"label key {key!r} is invalid: at most 63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit"
        )
    return key


def check_label_value(value: str) -> str:
    if len(value) > 63 or not _LABEL_NAME.fullmatch(value):
        raise ValueError(
            f"label value {value!r} is invalid: at most 63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit"
        )
    return value


LabelKey = Annotated[str, AfterValidator(check_label_key)]
LabelValue = Annotated[str, AfterValidator(check_label_value)]
Labels = dict[LabelKey, LabelValue]


class Lifecycle(SpecModel):
    """How pipeform may change the resource, as Terraform's lifecycle block."""

    prevent_destroy: bool = Field(
        False,
        description="Refuse any plan that would destroy or replace this resource. "
        "Kept in state, so deleting the document does not drop the protection. Default: false.",
    )
    ignore_changes: list[str] = Field(
        default_factory=empty_list,
        description="Field paths under spec (for example hyperparameters.epochs) whose changes "
        "are not diffed; the value applied first stays. Default: none.",
    )


@functools.cache
def _no_lifecycle() -> Lifecycle:
    """The Lifecycle of every document that writes none: one shared (frozen) instance,
    as building one per document would cost a third of validating its metadata."""
    return Lifecycle()


class Metadata(SpecModel):
    name: Name = Field(
        description="The resource's name: a DNS-1123 label (lower-case letters, digits and '-', "
        "at most 63 characters). Required; unique per kind."
    )
    labels: Labels = Field(
        default_factory=dict,
        description="Key/value labels, as in Kubernetes; budgets and policies select by them. "
        "Default: none (the Workspace's defaults.labels are added).",
    )
    annotations: dict[str, str] = Field(
        default_factory=dict,
        description="Free-form notes for people and tools; never interpreted. Default: none.",
    )
    depends_on: list[Annotated[str, Field(pattern=ADDRESS)]] = Field(
        default_factory=empty_list,
        description="Addresses (Kind/name) this resource must come after, beyond those its "
        "spec refers to, as Terraform's depends_on. Default: none.",
    )
    lifecycle: Lifecycle = Field(
        default_factory=_no_lifecycle,
        description="Lifecycle options (preventDestroy, ignoreChanges). Default: no restrictions.",
    )


class ResourceSpec(SpecModel):
    """Base of every resource's spec: which provider realises it."""

    provider: str | None = Field(
        None,
        pattern=DNS_LABEL,
        description="The provider that realises this resource: local or prometheus (built in), "
        "or an installed plug-in. Default: the Workspace's defaults.provider, local.",
    )

    def references(self) -> list[Reference]:
        """References to other documents; paths are relative to spec."""
        return []


#: Whether a spec type may refer to other documents: a ResourceSpec whose references()
#: is its own (the base's is always empty). Kept by type, as references() asks once per
#: document and issubclass on pydantic's ABC metaclass runs Python code.
_REFERRING_SPECS: dict[type, bool] = {}


def _refers(kind: type) -> bool:
    found = _REFERRING_SPECS.get(kind)
    if found is None:
        found = issubclass(kind, ResourceSpec) and kind.references is not ResourceSpec.references
        _REFERRING_SPECS[kind] = found
    return found


class Document(SpecModel):
    """A spec document: apiVersion, kind, metadata, spec.

    ``KEEP_VIEW``: whether the spec cache keeps the whole model (as a
    ``reconciler.spec.facts.View``) beside the document's facts, for a kind that the engine's
    own checks read on every plan (costs, budgets, columns). Other kinds' views are built
    from their model when asked for, which costs validating it again."""

    KIND: ClassVar[str] = ""
    KEEP_VIEW: ClassVar[bool] = False
    api_version: Literal["pipeform/v1"] = Field(
        alias="apiVersion", description="Always pipeform/v1. Required."
    )
    metadata: Metadata = Field(description="Name, labels, annotations and lifecycle. Required.")

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def address(self) -> str:
        return f"{self.KIND}/{self.metadata.name}"

    def references(self) -> list[Reference]:
        refs = []
        depends_on = self.metadata.depends_on
        if depends_on:
            for i, address in enumerate(depends_on):
                kind, _, name = address.partition("/")
                refs.append(Reference(kind, name, ("metadata", "dependsOn", i)))
        spec: Any = getattr(self, "spec", None)
        if _refers(type(spec)):
            refs.extend(Reference(r.kind, r.name, ("spec", *r.path)) for r in spec.references())
        return refs


def keyed_union(*members: tuple[str, type[SpecModel]]) -> Any:
    """A union told apart by which key is written: ``{env: X}`` vs ``{file: y}``.

    One clear error when no member's key is present, instead of one per member.
    """
    from pydantic import Discriminator, Tag

    keys = [key for key, _ in members]

    def pick(value: Any) -> str | None:
        if isinstance(value, dict):
            for key in keys:
                if key in value:
                    return key
            return None
        for key, model in members:
            if isinstance(value, model):
                return key
        return None

    tagged = tuple(Annotated[model, Tag(key)] for key, model in members)
    return Annotated[
        typing.Union[tagged],  # noqa: UP007 - built from a tuple at run time
        Discriminator(
            pick,
            custom_error_type="missing_key",
            custom_error_message=f"needs one of: {', '.join(keys)}",
        ),
    ]
