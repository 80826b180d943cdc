"""quick_init: the records made for every resource stay frozen dataclasses, only faster to make."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import FrozenInstanceError, InitVar, dataclass, field
from pathlib import Path

import pytest

from providers import base
from reconciler import graph
from reconciler.frozen import quick_init
from reconciler.kinds import common
from reconciler.plan import model as plan
from reconciler.state import model


@quick_init
@dataclass(frozen=True)
class Sample:
    name: str
    count: int = 1
    tags: list[str] = field(default_factory=list)
    note: str | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class Plain:  # the same class without quick_init, to compare against
    name: str
    count: int = 1
    tags: list[str] = field(default_factory=list)
    note: str | None = field(default=None, kw_only=True)


def test_same_signature_defaults_and_fresh_factories() -> None:
    assert str(inspect.signature(Sample)) == str(inspect.signature(Plain))
    a, b = Sample("a"), Sample("b", 2, ["x"], note="n")
    assert (a.name, a.count, a.tags, a.note) == ("a", 1, [], None)
    assert (b.name, b.count, b.tags, b.note) == ("b", 2, ["x"], "n")
    assert Sample("a").tags is not a.tags  # a new list per instance, as default_factory gives
    with pytest.raises(TypeError):
        Sample("a", 1, [], "positional note")  # type: ignore[call-arg]  # kw_only stays keyword-only
    with pytest.raises(TypeError):
        Sample()  # type: ignore[call-arg]


def test_still_frozen_equal_hashable_and_replaceable() -> None:
    a = Sample("a", tags=["t"])
    with pytest.raises(FrozenInstanceError):
        a.name = "b"  # type: ignore[misc]
    assert a == Sample("a", tags=["t"]) and a != Sample("b")
    ctx = base.ResourceContext.of("Quota/q", "lineage", Path("."))
    assert hash(ctx) == hash(base.ResourceContext.of("Quota/q", "lineage", Path(".")))
    moved = dataclasses.replace(a, count=5)
    assert (moved.name, moved.count, moved.tags) == ("a", 5, ["t"])
    assert repr(Sample("a")) == repr(Plain("a")).replace("Plain", "Sample")
    assert dataclasses.asdict(Sample("a")) == dataclasses.asdict(Plain("a"))


def test_the_records_round_trip() -> None:
    for cls in (base.ResourceContext, base.PlanRequest, base.ReadResponse, plan.ResourceChange):
        assert cls.__init__.__qualname__ == f"{cls.__qualname__}.__init__"
    change = plan.ResourceChange("Quota/q", "Quota", "fake", plan.Action.NOOP, after={"a": 1})
    assert plan.from_dict(plan.to_dict(_plan_of(change))).changes == [change]
    record = model.ResourceState("Quota/q", "Quota", "fake", {}, "sha256:x")
    assert model.ResourceState.from_dict(record.to_dict()) == record


def _plan_of(change: plan.ResourceChange) -> plan.Plan:
    return plan.Plan(
        lineage="l", serial=1, specs_digest="d", created_at="t", mode="normal", changes=[change]
    )


def test_classes_it_cannot_copy_are_refused() -> None:
    @dataclass
    class Mutable:
        a: int

    @dataclass(frozen=True)
    class WithPost:
        a: int

        def __post_init__(self) -> None:
            pass

    @dataclass(frozen=True)
    class WithInitVar:
        a: int
        b: InitVar[int] = 0

    @dataclass(frozen=True)
    class WithoutInit:
        a: int
        b: int = field(default=0, init=False)

    for cls in (Mutable, WithPost, WithInitVar, WithoutInit):
        with pytest.raises(TypeError, match="quick_init"):
            quick_init(cls)


@quick_init
@dataclass(frozen=True, slots=True)
class Slotted:
    name: str
    tags: list[str] = field(default_factory=list)


def test_a_slotted_class_sets_each_field_through_its_slot() -> None:
    a = Slotted("a")
    assert (a.name, a.tags) == ("a", []) and Slotted("a").tags is not a.tags
    assert not hasattr(a, "__dict__")
    with pytest.raises(FrozenInstanceError):
        a.name = "b"  # type: ignore[misc]
    assert a == Slotted("a") and dataclasses.replace(a, name="b").name == "b"
    edge = graph.Edge("Dataset/d", "FeatureSet/f", "spec.source")
    assert hash(edge) == hash(graph.Edge("Dataset/d", "FeatureSet/f", "spec.source"))
    assert common.Reference("Dataset", "d", ("spec",)).address == "Dataset/d"
