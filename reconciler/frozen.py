"""Frozen dataclasses that are cheap to create, for the records made once per resource.

A frozen dataclass's generated ``__init__`` sets each field with ``object.__setattr__``
(one call per field, to get past the frozen ``__setattr__``). For the records a plan
makes for every resource (provider requests and responses, resource changes) that is
most of what making one costs: 6.5 us for a ResourceChange, a tenth of a no-op plan's
per-resource work. ``quick_init`` gives such a class an ``__init__`` with the same
signature, defaults and default factories that fills the instance's ``__dict__`` in one
step (a slotted class: each field through its slot's descriptor); everything else
(frozen assignment, eq, hash, repr, ``dataclasses.replace``) is the dataclass's own.
Classes it cannot copy faithfully (not frozen, ``__post_init__``, ``InitVar`` or
``init=False`` fields) are refused when decorated.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


class _Factory:
    """The default of a field with a default factory when no argument is given; shown as
    dataclasses shows it."""

    def __repr__(self) -> str:
        return "<factory>"


_MISSING = _Factory()


def quick_init(cls: type[T]) -> type[T]:
    """Replace a frozen dataclass's ``__init__`` (apply above ``@dataclass(frozen=True)``)."""
    _check(cls)
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    namespace: dict[str, Any] = {"_set": object.__setattr__, "_MISSING": _MISSING}
    positional: list[str] = []
    keyword: list[str] = []
    values: list[tuple[str, str]] = []  # (field, the expression that gives its value)
    for i, f in enumerate(fields):
        if f.default is not dataclasses.MISSING:
            namespace[f"_d{i}"] = f.default
            param, value = f"{f.name}=_d{i}", f.name
        elif f.default_factory is not dataclasses.MISSING:
            namespace[f"_f{i}"] = f.default_factory
            param, value = f"{f.name}=_MISSING", f"_f{i}() if {f.name} is _MISSING else {f.name}"
        else:
            param, value = f.name, f.name
        (keyword if f.kw_only else positional).append(param)
        values.append((f.name, value))
    if "__slots__" in cls.__dict__:  # no __dict__: each field through its slot's descriptor
        for i, f in enumerate(fields):
            namespace[f"_s{i}"] = getattr(cls, f.name).__set__
        body = "\n".join(f"    _s{i}(self, {value})" for i, (_, value) in enumerate(values))
    else:
        items = ", ".join(f"{name!r}: {value}" for name, value in values)
        body = f"    _set(self, '__dict__', {{{items}}})"
    params = ", ".join(["self", *positional, *(["*", *keyword] if keyword else [])])
    exec(f"def __init__({params}):\n{body}\n", namespace)  # from the class's own field names
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__doc__ = cls.__init__.__doc__
    init.__annotations__ = dict(cls.__init__.__annotations__)  # the same signature, as shown
    cls.__init__ = init  # type: ignore[method-assign]
    return cls


def _check(cls: type) -> None:
    params = getattr(cls, "__dataclass_params__", None)
    problem = (
        "is not a dataclass"
        if params is None
        else "is not frozen"
        if not params.frozen
        else "has __post_init__"
        if hasattr(cls, "__post_init__")
        else None
    )
    if problem is None:  # InitVar and init=False fields make the two signatures differ
        import inspect

        wanted = [f.name for f in dataclasses.fields(cls)]
        if list(inspect.signature(cls.__dict__["__init__"]).parameters)[1:] != wanted:
            problem = "has InitVar or init=False fields"
    if problem is not None:
        raise TypeError(f"quick_init: {cls.__qualname__} {problem}")
