"""The dependency graph: edges, unknown references, cycles, levels."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.graph import Edge, Graph
from reconciler.spec.checks import check
from tests.conftest import CopyExample

HEAD = "apiVersion: pipeform/v1\n"


def test_quickstart_levels_put_data_before_training_before_alerts(
    copy_example: CopyExample,
) -> None:
    levels = check([copy_example()]).graph.levels()
    flat = {address: i for i, level in enumerate(levels) for address in level}
    assert (
        flat["Dataset/rand-hie"]
        < flat["FeatureSet/hie-features"]
        < flat["TrainingJob/expense-model"]
    )
    assert flat["Secret/metrics-token"] < flat["TrainingJob/expense-model"]
    assert flat["Quota/growth-cpu"] < flat["TrainingJob/expense-model"]
    assert flat["Budget/growth-monthly"] < flat["TrainingJob/expense-model"]
    assert flat["TrainingJob/expense-model"] < flat["Alert/expense-model-failed"]


def test_dot_output_names_every_edge(copy_example: CopyExample) -> None:
    dot = check([copy_example()]).graph.to_dot()
    assert dot.startswith("digraph pipeform {")
    assert '"Dataset/rand-hie" -> "FeatureSet/hie-features" [label="spec.dataset"];' in dot
    assert '"Secret/metrics-token" -> "TrainingJob/expense-model"' in dot


def test_unknown_reference_names_file_line_and_suggests(write_tree: Any) -> None:
    root = write_tree(
        **{
            "specs__data.yaml": HEAD + "kind: Dataset\nmetadata: {name: rand-hie}\n"
            "spec: {source: {uri: 'file://d.csv'}}\n",
            "specs__features.yaml": HEAD + "kind: FeatureSet\nmetadata: {name: visits}\nspec:\n"
            "  dataset: rand-hei\n  entity: id\n  label: {column: y}\n  features: [{name: x}]\n",
        }
    )
    [err] = check([root]).diagnostics.errors
    assert err.render().endswith(
        "FeatureSet/visits: spec.dataset refers to Dataset/rand-hei, which does not exist "
        "(did you mean Dataset/rand-hie?)"
    )
    assert err.position is not None and err.position.file.endswith("features.yaml")
    assert (err.position.line, err.position.column) == (5, 12)


def test_a_document_with_a_mistyped_field_is_reported_once_not_by_its_references(
    write_tree: Any,
) -> None:
    root = write_tree(
        **{
            "data.yaml": HEAD + "kind: Dataset\nmetadata: {name: rand-hie}\n"
            "spec: {source: {uri: 'file://d.csv'}, strictColumn: true}\n",
            "features.yaml": HEAD + "kind: FeatureSet\nmetadata: {name: visits}\nspec:\n"
            "  dataset: rand-hie\n  entity: id\n  label: {column: y}\n  features: [{name: x}]\n",
            "alerts.yaml": HEAD + "kind: Alert\nmetadata: {name: stale}\nspec:\n"
            "  template: {type: data-stale, dataset: rand-hie, maxAge: 1d}\n",
        }
    )
    rendered = [d.render() for d in check([root]).diagnostics.errors]
    assert len(rendered) == 1, rendered  # the references to it are not errors of their own
    assert rendered[0].endswith(
        "Dataset/rand-hie: spec.strictColumn is not a known field (did you mean strictColumns?)"
    )


def test_cycles_are_printed(write_tree: Any) -> None:
    quota = HEAD + "kind: Quota\nmetadata: {name: %s, dependsOn: [Quota/%s]}\nspec: {gpus: 1}\n"
    root = write_tree(
        **{
            "a.yaml": quota % ("a", "b")
            + "---\n"
            + quota % ("b", "c")
            + "---\n"
            + quota % ("c", "a")
        }
    )
    [err] = check([root]).diagnostics.errors
    assert err.message.startswith("dependency cycle: ")
    cycle = err.message.removeprefix("dependency cycle: ").split(" -> ")
    assert cycle[0] == cycle[-1] and sorted(set(cycle)) == ["Quota/a", "Quota/b", "Quota/c"]


def test_budget_scope_selects_jobs_by_label(write_tree: Any, copy_example: CopyExample) -> None:
    quickstart = copy_example()
    root = write_tree(**{"a.yaml": (quickstart / "training.yaml").read_text()})
    for name in ("features.yaml", "data.yaml", "platform.yaml", "pipeform.yaml"):
        (root / name).write_text((quickstart / name).read_text())
    graph = check([root]).graph
    assert "Budget/growth-monthly" in graph.dependencies("TrainingJob/expense-model")


def test_feature_columns_must_exist_in_the_dataset_schema(write_tree: Any) -> None:
    root = write_tree(
        **{
            "a.yaml": HEAD
            + "kind: Dataset\nmetadata: {name: d}\nspec:\n  source: {uri: 'file://d.csv'}\n"
            "  schema: [{name: id, type: int}, {name: age, type: float}, {name: y, type: int}]\n"
            "---\n"
            + HEAD
            + "kind: FeatureSet\nmetadata: {name: f}\nspec:\n  dataset: d\n  entity: id\n"
            "  label: {column: y}\n  features: [{name: agee}]\n"
        }
    )
    [err] = check([root]).diagnostics.errors
    assert "reads column 'agee', which Dataset/d does not declare" in err.message
    assert err.hint == "did you mean age?"
    assert err.position is not None and err.position.line == 15


@st.composite
def dags(draw: Any) -> Graph:
    n = draw(st.integers(min_value=1, max_value=30))
    nodes = [f"Quota/n{i}" for i in range(n)]
    edges = [
        Edge(nodes[a], nodes[b], "x") for b in range(n) for a in range(b) if draw(st.booleans())
    ]
    return Graph(nodes=nodes, edges=edges)


@settings(max_examples=60)
@given(dags())
def test_levels_respect_every_edge_and_cover_every_node(graph: Graph) -> None:
    levels = graph.levels()
    where = {node: i for i, level in enumerate(levels) for node in level}
    assert sorted(where) == sorted(graph.nodes)
    for edge in graph.edges:
        assert where[edge.dependency] < where[edge.dependent]
    assert graph.find_cycle() is None


@given(dags())
def test_closure_holds_every_transitive_dependency(graph: Graph) -> None:
    target = graph.nodes[-1]
    closure = graph.closure([target])
    for node in closure:
        assert set(graph.dependencies(node)) <= closure
