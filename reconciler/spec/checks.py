"""Whole-tree validation: load, check each document, build the graph, cross-check.

The one entry point commands use to turn a spec tree into checked models and a graph,
with every problem collected as a diagnostic.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reconciler.diagnostics import Diagnostics, error, suggestion
from reconciler.graph import Graph, build_graph, check_columns, check_jobs, check_segments
from reconciler.spec.loader import SpecTree, load_tree
from reconciler.spec.trust import TRUSTED, Trust, check_locations, check_settings
from reconciler.spec.validate import known_fields


@dataclass
class CheckedTree:
    tree: SpecTree
    graph: Graph
    diagnostics: Diagnostics

    @property
    def ok(self) -> bool:
        return not self.diagnostics.has_errors


def check_ignore_changes(tree: SpecTree, diagnostics: Diagnostics) -> None:
    """Every lifecycle.ignoreChanges path must name a field of the kind's spec."""
    with_ignored = [(a, d) for a, d in tree.documents.items() if d.facts.ignore_changes]
    for address, doc in sorted(with_ignored):  # the models are loaded only for these
        ignored = doc.facts.ignore_changes
        spec_model = type(doc.model).model_fields["spec"].annotation
        data = doc.raw.data.get("spec") if isinstance(doc.raw.data, dict) else None
        for i, dotted in enumerate(ignored):
            parts = dotted.removeprefix("spec.").split(".")
            for depth, part in enumerate(parts):
                known = known_fields(spec_model, tuple(parts[:depth]), data)
                if not known:  # a free-form map (labels, env, gpuHour): any key is fine
                    break
                if part not in known:
                    where = ("metadata", "lifecycle", "ignoreChanges", i)
                    diagnostics.add(
                        error(
                            f"metadata.lifecycle.ignoreChanges[{i}]: {dotted!r} is not a field of the {doc.facts.kind} spec",
                            doc.position(where),
                            address=address,
                            hint=suggestion(part, known)
                            or f"fields here: {', '.join(sorted(known))}",
                        )
                    )
                    break


def check(paths: list[Path], trust: Trust = TRUSTED) -> CheckedTree:
    """Load and check a spec tree; every problem is in the returned diagnostics.

    In an untrusted run the spec files are read only inside the tree, and the Workspace's
    trusted settings are checked against the trusted configuration before anything else
    (``reconciler.spec.trust``): a command refuses to go on when any differs."""
    diagnostics = Diagnostics()
    tree = load_tree(paths, diagnostics, confined=trust.untrusted)
    if trust.untrusted:
        workspace = tree.workspace.model_dump()["spec"]
        refused = check_settings(
            trust, workspace, tree.workspace_source.raw if tree.workspace_source else None
        )
        diagnostics.extend(refused if refused.has_errors else check_locations(tree.root, workspace))
    graph = build_graph(tree, diagnostics)
    check_columns(tree, diagnostics)
    check_segments(tree, diagnostics)
    check_ignore_changes(tree, diagnostics)
    check_jobs(tree, diagnostics)
    if not tree.documents and not diagnostics.has_errors:
        where = tree.workspace_source.position() if tree.workspace_source else None
        diagnostics.add(
            error(
                "the spec tree holds no resources, only a Workspace",
                where,
                hint="add Dataset, FeatureSet, TrainingJob or other documents",
            )
        )
    return CheckedTree(tree, graph, diagnostics)
