"""The dependency graph of a spec tree: edges from references, checks, levels, DOT.

An edge ``A -> B`` means B depends on A (data flows from A to B): a Dataset comes before
the FeatureSet built from it, a Quota, Secret or Budget before the TrainingJob that uses
it, a TrainingJob before the Alert that watches it. Unknown references (with a "did you
mean"), and cycles (printing the cycle) are errors.
"""

from __future__ import annotations

import graphlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from reconciler.diagnostics import Diagnostic, Diagnostics, error, suggestion, warning
from reconciler.spec.loader import LoadedDocument, SpecTree
from reconciler.spec.source import DataPath
from reconciler.spec.validate import format_path

if TYPE_CHECKING:  # imported when a tree holds them (reconciler.kinds is lazy)
    from reconciler.kinds.reference import Reference

_COST_BEARING = ("TrainingJob",)


@dataclass(frozen=True, slots=True)
class Edge:
    dependency: str
    dependent: str
    reason: str  # the field that makes it, such as spec.features


@dataclass
class Graph:
    nodes: list[str] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)

    def _index(self) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        """(dependencies by node, dependents by node), rebuilt when edges were added."""
        cached = self.__dict__.get("_cache")
        if cached is not None and cached[0] == len(self.edges):
            return cached[1], cached[2]
        deps: dict[str, set[str]] = {}
        users: dict[str, set[str]] = {}
        for e in self.edges:
            deps.setdefault(e.dependent, set()).add(e.dependency)
            users.setdefault(e.dependency, set()).add(e.dependent)
        index = ({k: sorted(v) for k, v in deps.items()}, {k: sorted(v) for k, v in users.items()})
        self.__dict__["_cache"] = (len(self.edges), *index)
        return index

    def dependencies(self, address: str) -> list[str]:
        return list(self._index()[0].get(address, ()))

    def dependents(self, address: str) -> list[str]:
        return list(self._index()[1].get(address, ()))

    def _sorter(self) -> graphlib.TopologicalSorter[str]:
        sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
        for node in self.nodes:
            sorter.add(node)
        for edge in self.edges:
            sorter.add(edge.dependent, edge.dependency)
        return sorter

    def _levels(self) -> tuple[list[list[str]], bool]:
        """(levels, acyclic), computed once per set of nodes and edges, in O(N + E).

        Level by level as graphlib's get_ready/done hand them out: a node comes in the
        level after its last dependency. Nodes on or behind a cycle are left out.
        """
        key = (len(self.nodes), len(self.edges))
        cached = self.__dict__.get("_levels_cache")
        if cached is not None and cached[0] == key:
            return cached[1], cached[2]
        waiting: dict[str, int] = dict.fromkeys(self.nodes, 0)
        users: dict[str, list[str]] = {}
        for edge in self.edges:
            dependency, dependent = edge.dependency, edge.dependent
            waiting[dependent] = waiting.get(dependent, 0) + 1
            if dependency not in waiting:
                waiting[dependency] = 0
            dependents = users.get(dependency)
            if dependents is None:
                users[dependency] = [dependent]
            else:
                dependents.append(dependent)
        ready = [node for node, count in waiting.items() if count == 0]
        ready.sort()
        levels: list[list[str]] = []
        placed = 0
        while ready:
            levels.append(ready)
            placed += len(ready)
            following = []
            for node in ready:
                for user in users.get(node, ()):
                    left = waiting[user] - 1
                    waiting[user] = left
                    if not left:
                        following.append(user)
            following.sort()
            ready = following
        acyclic = placed == len(waiting)
        self.__dict__["_levels_cache"] = (key, levels, acyclic)
        return levels, acyclic

    def levels(self) -> list[list[str]]:
        """Nodes in groups that can run in parallel, dependencies first."""
        levels, acyclic = self._levels()
        if not acyclic:
            self._sorter().prepare()  # raises graphlib.CycleError, naming the cycle
        return [list(level) for level in levels]

    def order(self) -> list[str]:
        return [node for level in self.levels() for node in level]

    def closure(self, addresses: Iterable[str]) -> set[str]:
        """The addresses with everything they depend on, transitively (for --target)."""
        wanted, stack = set(), list(addresses)
        while stack:
            node = stack.pop()
            if node not in wanted:
                wanted.add(node)
                stack.extend(self.dependencies(node))
        return wanted

    def find_cycle(self) -> list[str] | None:
        if self._levels()[1]:
            return None
        try:
            self._sorter().prepare()
        except graphlib.CycleError as exc:
            cycle: list[str] = exc.args[1]
            # graphlib lists the cycle from dependent to dependency; show it in data-flow order
            return list(reversed(cycle))
        return None

    def to_dot(self) -> str:
        shapes = {
            "Dataset": "cylinder",
            "FeatureSet": "component",
            "TrainingJob": "box3d",
            "Quota": "octagon",
            "Secret": "note",
            "Alert": "triangle",
            "SLO": "doubleoctagon",
            "Budget": "hexagon",
        }
        lines = ["digraph pipeform {", "  rankdir=LR;", '  node [fontname="Helvetica"];']
        for node in sorted(self.nodes):
            kind = node.split("/", 1)[0]
            lines.append(f'  "{node}" [shape={shapes.get(kind, "box")}];')
        for edge in sorted(self.edges, key=lambda e: (e.dependency, e.dependent)):
            lines.append(f'  "{edge.dependency}" -> "{edge.dependent}" [label="{edge.reason}"];')
        lines.append("}")
        return "\n".join(lines) + "\n"


def _labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def build_graph(tree: SpecTree, diagnostics: Diagnostics) -> Graph:
    """Edges from every reference and budget scope; unknown references and cycles reported."""
    documents = tree.documents
    graph = Graph(nodes=sorted(documents))
    edges = graph.edges
    reasons: dict[DataPath, str] = {}  # format_path by path: most paths repeat
    names_by_kind: dict[str, list[str]] | None = None  # built on the first unknown reference
    cost_bearing: list[str] | None = None  # built on the first Budget
    for address in graph.nodes:
        doc = documents[address]
        facts = doc.facts
        for ref in facts.references:
            dependency = ref.address
            if dependency in documents:
                reason = reasons.get(ref.path)
                if reason is None:
                    reason = reasons[ref.path] = format_path(ref.path)
                edges.append(Edge(dependency, address, reason))
                continue
            if dependency in tree.invalid:  # it exists: its own errors say what to fix
                continue
            if names_by_kind is None:
                names_by_kind = {}
                for other in documents.values():
                    names_by_kind.setdefault(other.facts.kind, []).append(other.facts.name)
            diagnostics.add(_unknown_reference(ref, address, doc, names_by_kind))
        if facts.kind == "Budget":
            if cost_bearing is None:
                cost_bearing = [a for a in graph.nodes if documents[a].facts.kind in _COST_BEARING]
            selector = (facts.spec.get("scope") or {}).get("labels") or {}  # spec.scope.labels
            default_labels = tree.workspace.spec.defaults.labels
            for other_address in cost_bearing:
                labels = documents[other_address].facts.labels
                if _labels_match(selector, {**default_labels, **labels}):
                    edges.append(Edge(address, other_address, "spec.scope"))
    cycle = graph.find_cycle()
    if cycle:
        first = documents[cycle[0]]
        diagnostics.add(
            error(
                "dependency cycle: " + " -> ".join(cycle),
                first.position(),
                address=cycle[0],
                hint="remove one of these references",
            )
        )
    return graph


def _unknown_reference(
    ref: Reference, address: str, doc: LoadedDocument, names_by_kind: dict[str, list[str]]
) -> Diagnostic:
    candidates = names_by_kind.get(ref.kind, [])
    hint = suggestion(ref.name, candidates)
    hint = (
        hint.replace("did you mean ", f"did you mean {ref.kind}/")
        if hint
        else (
            f"define a {ref.kind} named {ref.name}"
            if not candidates
            else f"{ref.kind} documents here: {', '.join(sorted(candidates))}"
        )
    )
    return error(
        f"{format_path(ref.path)} refers to {ref.address}, which does not exist",
        doc.position(ref.path),
        address=address,
        hint=hint,
        path=format_path(ref.path),
    )


def check_columns(tree: SpecTree, diagnostics: Diagnostics) -> None:
    """A FeatureSet may only read columns its Dataset declares (when it declares a schema)."""
    for address, doc in tree.sorted_of_kind("FeatureSet"):
        spec = doc.feature_set().spec
        dataset = tree.documents.get(f"Dataset/{spec.dataset}")
        columns = dataset.dataset().spec.column_names() if dataset else []
        if not columns:
            continue
        for column, where in spec.column_uses():
            if column not in columns:
                path = ("spec", *where)
                diagnostics.add(
                    error(
                        f"{format_path(path)} reads column {column!r}, which Dataset/{spec.dataset} does not declare",
                        doc.position(path),
                        address=address,
                        path=format_path(path),
                        hint=suggestion(column, columns) or "add it to the Dataset's schema",
                    )
                )


def check_segments(tree: SpecTree, diagnostics: Diagnostics) -> None:
    """A TrainingJob's evaluation may only slice by, or check fairness over, segment
    columns its FeatureSet carries (``FeatureSet.spec.segments``)."""
    for address, doc in tree.sorted_of_kind("TrainingJob"):
        spec = doc.training_job().spec
        features = tree.documents.get(f"FeatureSet/{spec.features}")
        if features is None:  # reported as an unknown reference
            continue
        segments = list(features.feature_set().spec.segments)
        for column, where in spec.segment_uses():
            if column in segments:
                continue
            path = ("spec", *where)
            carried = f"it carries {', '.join(segments)}" if segments else "it carries none"
            diagnostics.add(
                error(
                    f"{format_path(path)} names {column!r}, which is not a segment of "
                    f"FeatureSet/{spec.features} ({carried})",
                    doc.position(path),
                    address=address,
                    path=format_path(path),
                    hint=suggestion(column, segments)
                    or f"add {column!r} to FeatureSet/{spec.features}'s spec.segments",
                )
            )


def check_jobs(tree: SpecTree, diagnostics: Diagnostics) -> None:
    """Warn about secret-looking environment variables written as plain values; a
    promoteWhen.sloNotBurning must name an SLO of the tree (not a graph edge: the SLO
    usually measures the job itself)."""
    slos = sorted(name for _, name in (a.split("/", 1) for a in tree.documents) if _ == "SLO")
    for address, doc in tree.sorted_of_kind("TrainingJob"):
        slo = doc.training_job().spec.promotion_slo()
        if slo is not None and slo not in slos:
            where: DataPath = ("spec", "register", "promoteWhen", "sloNotBurning")
            diagnostics.add(
                error(
                    f"{format_path(where)} refers to SLO/{slo}, which does not exist",
                    doc.position(where),
                    address=address,
                    hint=suggestion(slo, slos) or f"SLOs in the tree: {', '.join(slos) or 'none'}",
                )
            )
        for var in doc.training_job().spec.plain_secret_like_env():
            path = ("spec", "env", var)
            diagnostics.add(
                warning(
                    f"{format_path(path)} looks like a secret but its value is written in the spec",
                    doc.position(path),
                    address=address,
                    hint=f"define a Secret and write {var}: {{secret: NAME}}",
                )
            )
