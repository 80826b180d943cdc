"""Documents as plain facts: what the spec cache keeps instead of models, read back without
pydantic, must be what validation gave."""

from __future__ import annotations

import json
import marshal
from decimal import Decimal
from pathlib import Path

import pytest

from reconciler.diagnostics import Diagnostics
from reconciler.kinds import KINDS
from reconciler.plan.planner import desired_document
from reconciler.spec import cache as speccache
from reconciler.spec import facts as snapshot
from reconciler.spec.facts import Facts, View, freeze, thaw
from reconciler.spec.loader import load_tree
from tests.conftest import CopyExample
from tests.unit.conftest import assert_same_documents
from tests.unit.test_startup import probe

WORKSPACE = {
    "apiVersion": "pipeform/v1",
    "kind": "Workspace",
    "metadata": {"name": "team-a"},
    "spec": {
        "defaults": {"provider": "local", "labels": {"team": "ml"}},
        "pricing": {"currency": "EUR", "cpuHour": "0.04", "gpuHour": {"a100": 2.5}},
        "providers": {"prometheus": {"rulesDir": "rules", "pushgatewayUrl": "http://gw:9091"}},
    },
}


def test_a_workspace_view_reads_as_its_model() -> None:
    model = KINDS["Workspace"].model_validate(WORKSPACE)
    view = thaw(marshal.loads(marshal.dumps(freeze(model))))  # as the spec cache keeps it
    assert isinstance(view, View)
    assert view.metadata.name == "team-a"
    assert view.spec.defaults.labels == {"team": "ml"}
    assert view.spec.defaults.provider == model.spec.defaults.provider
    assert view.spec.pricing.cpu_hour == Decimal("0.04") == model.spec.pricing.cpu_hour
    assert view.spec.pricing.gpu_hour == {"a100": Decimal("2.5")}
    assert view.spec.state.backend == "sqlite" and view.spec.state.path == model.spec.state.path
    assert view.spec.providers.kubernetes is None
    assert view.spec.providers.prometheus.pushgateway_url == "http://gw:9091"
    assert view.spec.defaults.resources.memory == model.spec.defaults.resources.memory
    for include in (None, {"defaults", "pricing", "registry"}):
        assert view.spec.model_dump(mode="json", by_alias=True, include=include) == (
            model.spec.model_dump(mode="json", by_alias=True, include=include)
        )
    # field names, not aliases, choose what to include, as pydantic does
    assert set(view.spec.pricing.model_dump(include={"cpu_hour"})) == {"cpuHour"}


def test_a_view_is_read_only_and_its_dumps_are_copies() -> None:
    view = thaw(freeze(KINDS["Workspace"].model_validate(WORKSPACE)))
    with pytest.raises(AttributeError):
        view.metadata = None  # type: ignore[misc]
    with pytest.raises(AttributeError, match="no_such_field"):
        _ = view.spec.no_such_field
    view.spec.model_dump()["defaults"]["labels"]["team"] = "changed"
    assert view.spec.model_dump()["defaults"]["labels"]["team"] == "ml"
    with pytest.raises(ValueError, match="JSON form"):
        view.spec.model_dump(mode="python")


def test_a_value_without_a_plain_form_is_refused_not_mangled() -> None:
    with pytest.raises(ValueError):
        freeze({1: "an int key"})
    with pytest.raises(ValueError):
        freeze(object())


@pytest.fixture(scope="module")
def quickstart_from_the_cache(copy_example: CopyExample) -> list[tuple[Facts, object]]:
    """Each quickstart document's facts as the spec cache gave them back (a copy of the
    tree loaded twice, the second time from its cache), with its model."""
    root = copy_example()
    (root / ".pipeform").mkdir()  # the spec cache is written only beside state
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(speccache.DISABLE_ENV, raising=False)
        load_tree([root], Diagnostics())
        tree = load_tree([root], Diagnostics())
    assert (root / speccache.CACHE_DIR / speccache.FILE_NAME).is_file()
    assert tree.workspace_source is not None
    return [(d.facts, d.model) for d in [tree.workspace_source, *tree.documents.values()]]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_quickstart_documents_facts_survive_the_cache_and_match_its_model(
    kind: str, quickstart_from_the_cache: list[tuple[Facts, object]]
) -> None:
    documents = [(f, m) for f, m in quickstart_from_the_cache if f.kind == kind]
    assert documents, f"the quickstart has no {kind}"
    for facts, model in documents:
        again = Facts.unpack(marshal.loads(marshal.dumps(facts.pack())))
        assert again == facts, facts.address
        assert facts == Facts.of(model), facts.address
        labels = {"owner": "platform", "team": "default"}
        # what the planner diffs and stores is the model's own JSON, with the default labels
        assert again.desired(labels) == desired_document(model, labels)
        assert again.desired(labels)["spec"] == (
            model.spec.model_dump(mode="json", by_alias=True)  # type: ignore[attr-defined]
        )
        assert again.references == model.references()  # type: ignore[attr-defined]
        kept = again.view()
        assert (kept is not None) == type(model).KEEP_VIEW  # type: ignore[attr-defined]
        _assert_reads_as(kept or thaw(freeze(model, json=False)), model, facts.address)


def test_facts_are_equal_however_marshal_flagged_their_frozen_model() -> None:
    facts = Facts.of(KINDS["Workspace"].model_validate(WORKSPACE))
    packed = facts.pack()
    packed[-1] = marshal.dumps(marshal.loads(packed[-1]))  # same values, other reference flags
    assert packed[-1] != facts.frozen
    assert Facts.unpack(packed) == facts
    other = {**WORKSPACE, "metadata": {"name": "team-b"}}
    assert Facts.of(KINDS["Workspace"].model_validate(other)) != facts


def _assert_reads_as(view: object, model: object, where: str) -> None:
    """Every field of model, at every depth, and every PLAIN_METHODS result, read the same
    through the view."""
    fields = getattr(type(model), "model_fields", None)
    if fields is None:
        if isinstance(model, list | tuple):
            assert isinstance(view, type(model)) and len(view) == len(model), where
            for i, (v, m) in enumerate(zip(view, model, strict=True)):
                _assert_reads_as(v, m, f"{where}[{i}]")
        elif isinstance(model, dict):
            assert isinstance(view, dict) and view.keys() == model.keys(), where
            for key, m in model.items():
                _assert_reads_as(view[key], m, f"{where}.{key}")
        else:
            assert view == model and type(view) is type(model), where
        return
    assert isinstance(view, View), where
    for name in fields:
        _assert_reads_as(getattr(view, name), getattr(model, name), f"{where}.{name}")
    for name in getattr(type(model), "PLAIN_METHODS", ()):
        assert getattr(view, name)() == getattr(model, name)(), f"{where}.{name}()"


def test_desired_labels_merge_the_documents_own_over_the_defaults() -> None:
    data = {
        "apiVersion": "pipeform/v1",
        "kind": "Quota",
        "metadata": {"name": "q", "labels": {"team": "vision"}, "annotations": {"a": "b"}},
        "spec": {"gpus": 2},
    }
    facts = Facts.of(KINDS["Quota"].model_validate(data))
    desired = facts.desired({"team": "ml", "cost-centre": "42"})
    assert desired["metadata"] == {
        "labels": {"team": "vision", "cost-centre": "42"},
        "annotations": {"a": "b"},
    }
    desired["metadata"]["labels"]["x"] = "y"
    assert "x" not in facts.labels, "desired shares the document's labels"
    with pytest.raises(AttributeError, match="cannot assign"):
        facts.kind = "Secret"  # type: ignore[misc]


QUOTAS = "".join(
    f"---\napiVersion: pipeform/v1\nkind: Quota\nmetadata: {{name: q{i}}}\nspec: {{gpus: {i}}}\n"
    for i in range(3)
)


def test_the_embedded_default_workspace_is_validated_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parses: list[str]
) -> None:
    (tmp_path / ".pipeform").mkdir()
    (tmp_path / "q.yaml").write_text(QUOTAS, encoding="utf-8")
    made: list[str] = []
    real = Facts.of.__func__  # type: ignore[attr-defined]

    def counting(cls: type[Facts], model: object) -> Facts:
        made.append(model.KIND)  # type: ignore[attr-defined]
        return real(cls, model)  # type: ignore[no-any-return]

    monkeypatch.setattr(snapshot.Facts, "of", classmethod(counting))
    fresh = load_tree([tmp_path], Diagnostics())
    assert made == ["Quota", "Quota", "Quota", "Workspace"]
    cached = load_tree([tmp_path], Diagnostics())
    assert made == ["Quota", "Quota", "Quota", "Workspace"], "the second load validated again"
    assert cached.workspace.metadata.name == "default"
    assert_same_documents(fresh, cached)


def test_an_invalid_document_in_a_cached_file_still_gets_its_error(
    tmp_path: Path, parses: list[str]
) -> None:
    (tmp_path / ".pipeform").mkdir()
    bad = "apiVersion: pipeform/v1\nkind: Quota\nmetadata: {name: q9}\nspec: {gpus: -1}\n"
    (tmp_path / "q.yaml").write_text(QUOTAS + "---\n" + bad, encoding="utf-8")
    for _ in range(2):
        diagnostics = Diagnostics()
        tree = load_tree([tmp_path], diagnostics)
        assert len(tree.documents) == 3
        assert [d.render().split(": ", 1)[0] for d in diagnostics] == [f"{tmp_path}/q.yaml:20:14"]
    assert parses == ["q.yaml"], "the file was parsed again"


def test_a_plan_of_an_unchanged_tree_imports_no_pydantic(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    (root / ".pipeform").mkdir()
    workspace = "apiVersion: pipeform/v1\nkind: Workspace\nmetadata: {name: t}\n"
    (root / "pipeform.yaml").write_text(workspace + "spec: {defaults: {provider: fake}}\n")
    (root / "q.yaml").write_text(QUOTAS, encoding="utf-8")
    first = probe(root, "plan", ".")
    assert first["pydantic"] == "True"  # the files were parsed and validated
    again = probe(root, "plan", ".")
    assert "3 to add" in again["stdout"]
    assert again["pydantic"] == "False", "a plan of a cached tree built models"
    assert again["stdout"] == first["stdout"]
    (root / "q.yaml").write_text(QUOTAS.replace("gpus: 2", "gpus: 5"), encoding="utf-8")
    edited = probe(root, "plan", ".")
    assert edited["pydantic"] == "True"  # the changed file is validated
    assert "3 to add" in edited["stdout"]


def test_a_plan_from_the_cache_is_the_plan_from_a_fresh_parse(copy_example: CopyExample) -> None:
    """Costs, quotas, budgets and column checks read views on a cache hit: same plan."""
    root = copy_example()
    (root / ".pipeform").mkdir()
    fresh = probe(root, "plan", "--json", ".", QUICKSTART_METRICS_TOKEN="a-value")
    cached = probe(root, "plan", "--json", ".", QUICKSTART_METRICS_TOKEN="a-value")
    assert (root / ".pipeform" / "cache" / "specs.bin").exists()
    plan, first = json.loads(cached["stdout"]), json.loads(fresh["stdout"])
    assert plan.pop("timestamp") >= first.pop("timestamp")
    assert plan == first
    [training] = [c for c in plan["resource_changes"] if c["kind"] == "TrainingJob"]
    # the estimate read the job's view: its maxDuration, at the Workspace's prices
    assert training["cost"]["basis"] == "maxDuration 30m" and training["cost"]["estimate"] == "0.05"
    assert [p["rule"] for p in plan["policy"]["passed"]].count("quota") == 1
