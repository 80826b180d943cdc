"""Validated documents as plain data: what every command reads of them, without pydantic.

Validating a document builds a pydantic model, and importing pydantic and building the
kinds' model classes is most of what a command costs on a small tree. So the engine does
not read models: it reads each document's ``Facts`` (kind, name, labels, annotations,
provider, lifecycle, references and the spec in its JSON form, defaults filled in),
worked out once from the validated model. The spec cache keeps them beside the file's
parse (``Facts.pack``), so a command on an unchanged tree validates nothing and imports
no pydantic; the model itself is validated again only when a check that needs one
asks for it (``LoadedDocument.model``), with the same result as the first time.

The Workspace, which commands read field by field, is kept whole: ``freeze`` turns its
model into plain data and ``thaw`` into a ``View``, a read-only object with the model's
attribute names and values (nested models are Views, amounts stay Decimals) and its
JSON form (``model_dump(mode="json", by_alias=True)``).

Nothing here imports pydantic; ``freeze`` and ``Facts.of`` are given models, so it is
loaded already when they run.
"""

from __future__ import annotations

import marshal
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from reconciler.kinds.reference import Reference

# -- the Workspace as a read-only view ----------------------------------------------------

_VIEW = "\0view"  # tags of frozen values: no spec value is a tuple, so none can clash
_DECIMAL = "\0decimal"
_TUPLE = "\0tuple"
_METHOD = "\0method"  # the result of a method in PLAIN_METHODS


class View:
    """A validated model, read only: ``view.spec.defaults.labels`` as on the model."""

    __slots__ = ("_aliases", "_fields", "_json")

    def __init__(
        self, fields: dict[str, Any], json: dict[str, Any] | None, aliases: dict[str, str]
    ) -> None:
        object.__setattr__(self, "_fields", fields)
        object.__setattr__(self, "_json", json)
        object.__setattr__(self, "_aliases", aliases)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # a slot not set yet (copy, pickle): never a field
            raise AttributeError(name)
        try:
            return self._fields[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __eq__(self, other: object) -> bool:
        if self._json is None:  # no JSON form to compare: only the same view is equal
            return self is other
        return isinstance(other, View) and self._json == other._json

    def __hash__(self) -> int:
        return hash(marshal.dumps(self._json))

    def __repr__(self) -> str:
        return f"View({self._json if self._json is not None else sorted(self._fields)!r})"

    def model_dump(
        self,
        *,
        mode: str = "json",
        by_alias: bool = True,
        include: Iterable[str] | None = None,
    ) -> dict[str, Any]:
        """The model's JSON form, as ``model_dump(mode="json", by_alias=True)``: a new copy.
        ``include`` names fields as the model does (snake_case)."""
        if mode != "json" or not by_alias or self._json is None:
            raise ValueError(
                "a View keeps only the JSON form: model_dump(mode='json', by_alias=True)"
            )
        data: dict[str, Any] = marshal.loads(marshal.dumps(self._json))  # a deep copy
        if include is None:
            return data
        wanted = {self._aliases.get(name, name) for name in include}
        return {k: v for k, v in data.items() if k in wanted}


def freeze(value: Any, json: bool = True) -> Any:
    """A validated model (or a value in one) as plain marshal data; ``thaw`` reverses it.

    A model keeps its fields and the results of the methods its class names in
    ``PLAIN_METHODS`` (which take no argument), and, when ``json``, its JSON form (for
    ``View.model_dump``). ValueError for a value that has no plain form."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, Decimal):
        return (_DECIMAL, str(value))
    if isinstance(value, list):
        return [freeze(v, json) for v in value]
    if isinstance(value, tuple):
        return (_TUPLE, [freeze(v, json) for v in value])
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise ValueError("only string keys have a plain form")
        return {k: freeze(v, json) for k, v in value.items()}
    fields = getattr(type(value), "model_fields", None)
    if fields is None:
        raise ValueError(f"a {type(value).__name__} has no plain form")
    frozen = {name: freeze(getattr(value, name), json) for name in fields}
    for name in getattr(type(value), "PLAIN_METHODS", ()):
        frozen[name] = (_METHOD, freeze(getattr(value, name)(), json))
    return (
        _VIEW,
        frozen,
        value.model_dump(mode="json", by_alias=True) if json else None,
        {name: info.alias for name, info in fields.items() if info.alias and info.alias != name},
    )


def _returns(value: Any) -> Any:
    return lambda: value


def thaw(value: Any) -> Any:
    """Plain data from ``freeze`` as Views, Decimals, tuples, lists and dicts."""
    if isinstance(value, tuple):
        tag = value[0]
        if tag == _DECIMAL:
            return Decimal(value[1])
        if tag == _TUPLE:
            return tuple(thaw(v) for v in value[1])
        if tag == _METHOD:
            return _returns(thaw(value[1]))
        _, fields, json, aliases = value
        return View({k: thaw(v) for k, v in fields.items()}, json, aliases)
    if isinstance(value, list):
        return [thaw(v) for v in value]
    if isinstance(value, dict):
        return {k: thaw(v) for k, v in value.items()}
    return value


# -- what the engine reads of a document --------------------------------------------------


_UNSET: Any = object()  # a lazy part of Facts not worked out yet


@dataclass(frozen=True, slots=True, eq=False)
class Facts:
    """What the engine reads of one validated document, as plain data. Read-only.

    ``spec`` is the spec's JSON form with defaults filled in, as diffed and kept in state;
    ``frozen`` the whole model frozen and marshalled, for a kind that keeps a view;
    ``workspace`` is set for the Workspace only (its model as a View). Facts made from a
    model (``of``) work out ``spec`` and ``frozen`` when first read: validating a tree
    needs neither, only planning and the spec cache do.
    """

    kind: str
    name: str
    address: str  # kind/name
    labels: dict[str, str]
    annotations: dict[str, str]
    provider: str | None
    prevent_destroy: bool
    ignore_changes: list[str]
    references: list[Reference]
    workspace: View | None
    _spec: Any = field(repr=False)  # _UNSET until read, for facts made from a model
    _frozen: Any = field(repr=False)
    _model: Any = field(default=None, repr=False)

    def __eq__(self, other: object) -> bool:
        """Equal when every part decodes to the same values: ``frozen``'s marshal bytes are
        not canonical (a value's reference flag depends on how many references it had
        when dumped), so they are compared loaded, not byte for byte."""
        return isinstance(other, Facts) and self._decoded() == other._decoded()

    def _decoded(self) -> list[Any]:
        packed = self.pack()
        if packed[-1] is not None:
            packed[-1] = marshal.loads(packed[-1])
        return packed

    __hash__ = None  # type: ignore[assignment]  # holds dicts, as a model does

    @property
    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = self._spec
        if spec is _UNSET:
            model_spec: Any = getattr(self._model, "spec", None)
            if hasattr(model_spec, "model_dump"):  # dump the spec alone: metadata is apart
                spec = model_spec.model_dump(mode="json", by_alias=True)
            else:
                spec = self._model.model_dump(mode="json", by_alias=True).get("spec", {})
            object.__setattr__(self, "_spec", spec)
        return spec

    @property
    def frozen(self) -> bytes | None:
        frozen: bytes | None = self._frozen
        if frozen is _UNSET:
            model = self._model
            kept = getattr(type(model), "KEEP_VIEW", False)
            frozen = marshal.dumps(freeze(model, json=False)) if kept else None
            object.__setattr__(self, "_frozen", frozen)
        return frozen

    def view(self) -> View | None:
        """The document's model as a read-only View: what its kind's own checks read (cost,
        budgets, columns), without building the model. None when the kind keeps no view
        (its class does not set ``KEEP_VIEW``)."""
        frozen = self.frozen
        if frozen is None:
            return None
        view: View = thaw(marshal.loads(frozen))
        return view

    @classmethod
    def of(cls, model: Any) -> Facts:
        """The facts of a validated document model."""
        metadata = model.metadata
        lifecycle = metadata.lifecycle
        workspace = None
        frozen = _UNSET
        if model.KIND == "Workspace":  # read field by field on every command: thawed now
            plain = freeze(model)  # with its JSON, for providers' settings
            frozen, workspace = marshal.dumps(plain), thaw(plain)
        return cls(
            model.KIND,
            metadata.name,
            f"{model.KIND}/{metadata.name}",
            dict(metadata.labels),
            dict(metadata.annotations),
            getattr(getattr(model, "spec", None), "provider", None),
            lifecycle.prevent_destroy,
            list(lifecycle.ignore_changes),
            model.references(),
            workspace,
            _UNSET,
            frozen,
            model,
        )

    def pack(self) -> list[Any]:
        """Plain data for the spec cache (``unpack`` reverses it); lists, so that the
        cache's string sharing reaches into them."""
        return [
            self.kind,
            self.name,
            self.labels,
            self.annotations,
            self.provider,
            self.prevent_destroy,
            self.ignore_changes,
            self.spec,
            [[r.kind, r.name, list(r.path)] for r in self.references],
            self.frozen,
        ]

    @classmethod
    def unpack(cls, packed: list[Any]) -> Facts:
        kind, name, labels, annotations, provider, prevent, ignore, spec, refs, frozen = packed
        return cls(
            kind,
            name,
            f"{kind}/{name}",
            labels,
            annotations,
            provider,
            prevent,
            ignore,
            [Reference(k, n, tuple(p)) for k, n, p in refs] if refs else [],
            thaw(marshal.loads(frozen)) if kind == "Workspace" and frozen is not None else None,
            spec,
            frozen,
        )

    def desired(self, default_labels: Mapping[str, str]) -> dict[str, Any]:
        """What is diffed and stored: effective labels and annotations, and the full spec.

        The spec is this document's own JSON (never changed by the engine, which copies
        before it edits, as for ignoreChanges)."""
        return {
            "metadata": {
                "labels": {**default_labels, **self.labels}
                if default_labels
                else dict(self.labels),
                "annotations": dict(self.annotations),
            },
            "spec": self.spec,
        }
