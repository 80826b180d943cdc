"""Properties of the engine over random spec trees, random edits and random state histories.

In process (reconciler.engine with the fake provider), so that Hypothesis can try many
trees quickly: random DAGs of Datasets, FeatureSets, Quotas, Secrets, TrainingJobs and
Alerts with valid references, then random pull requests (change a field, add a
document, remove a leaf). After every apply the next plan is a no-op; each plan changes
exactly the edited resource and what consumes its data, in dependency order; and the
state round-trips exactly through its dict form and the SQLite backend, history too.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler import engine
from reconciler.plan.model import Action, Plan
from reconciler.plan.planner import PlanOptions
from reconciler.state.backend import StateConflict
from reconciler.state.model import ResourceState, State, Status
from reconciler.state.sqlite import SqliteBackend
from tests.engine.harness import live_objects

DATA_KINDS = ("Dataset", "FeatureSet", "TrainingJob")
WORKSPACE = {
    "apiVersion": "pipeform/v1",
    "kind": "Workspace",
    "metadata": {"name": "properties"},
    "spec": {"defaults": {"provider": "fake"}},
}

# -- a spec tree as plain data ----------------------------------------------------------------


@dataclass
class Doc:
    kind: str
    name: str
    spec: dict[str, Any]
    refs: list[str] = field(default_factory=list)  # addresses it depends on

    @property
    def address(self) -> str:
        return f"{self.kind}/{self.name}"

    def document(self) -> dict[str, Any]:
        return {
            "apiVersion": "pipeform/v1",
            "kind": self.kind,
            "metadata": {"name": self.name},
            "spec": self.spec,
        }


Tree = dict[str, Doc]

gpus = st.integers(0, 64)
column_min = st.integers(-1000, 1000)
severities = st.sampled_from(["critical", "warning", "info"])
hyperparameters = st.fixed_dictionaries(
    {
        "epochs": st.integers(1, 200),
        "learningRate": st.floats(1e-6, 10, allow_nan=False),
        "batchSize": st.integers(1, 4096),
        "seed": st.integers(0, 2**31),
    }
)


def dataset(name: str, low: int) -> Doc:
    schema = [
        {"name": "id", "type": "int", "nullable": False},
        {"name": "label", "type": "int", "allowed": [0, 1]},
        {"name": "x", "type": "float", "min": low},
    ]
    return Doc("Dataset", name, {"source": {"uri": f"file://data/{name}.csv"}, "schema": schema})


def feature_set(name: str, data: str, standardize: bool) -> Doc:
    feature = {"name": "x", **({"transforms": ["standardize"]} if standardize else {})}
    spec = {"dataset": data, "entity": ["id"], "label": {"column": "label"}, "features": [feature]}
    return Doc("FeatureSet", name, spec, [f"Dataset/{data}"])


def quota(name: str, count: int) -> Doc:
    return Doc("Quota", name, {"gpus": count})


def secret(name: str) -> Doc:
    env = "TOKEN_" + name.upper().replace("-", "_")
    return Doc("Secret", name, {"from": {"env": env}, "targets": [{"provider": "local"}]})


def job(
    name: str, features: str, hp: dict[str, Any], quota_name: str | None, secret_name: str | None
) -> Doc:
    spec: dict[str, Any] = {
        "features": features,
        "model": {"type": "mlp", "task": "binary-classification"},
        "hyperparameters": hp,
    }
    refs = [f"FeatureSet/{features}"]
    if quota_name:
        spec["quota"] = quota_name
        refs.append(f"Quota/{quota_name}")
    if secret_name:
        spec["env"] = {"TOKEN": {"secret": secret_name}}
        refs.append(f"Secret/{secret_name}")
    return Doc("TrainingJob", name, spec, refs)


def alert(name: str, target: str, severity: str) -> Doc:
    kind, watched = target.split("/", 1)
    template = (
        {"type": "training-failed", "job": watched}
        if kind == "TrainingJob"
        else {"type": "data-stale", "dataset": watched, "maxAge": "24h"}
    )
    return Doc("Alert", name, {"template": template, "severity": severity}, [target])


def names(tree: Tree, kind: str) -> list[str]:
    return [d.name for d in tree.values() if d.kind == kind]


def fresh_name(tree: Tree, kind: str) -> str:
    n = 0
    while f"{kind}/{kind.lower()}-{n}" in tree:
        n += 1
    return f"{kind.lower()}-{n}"


def add_document(draw: Callable[..., Any], tree: Tree, kind: str) -> Doc:
    """A new document of kind whose references name documents already in tree."""
    name = fresh_name(tree, kind)
    if kind == "Dataset":
        return dataset(name, draw(column_min))
    if kind == "FeatureSet":
        return feature_set(name, draw(st.sampled_from(names(tree, "Dataset"))), draw(st.booleans()))
    if kind == "Quota":
        return quota(name, draw(gpus))
    if kind == "Secret":
        return secret(name)
    if kind == "TrainingJob":
        return job(
            name,
            draw(st.sampled_from(names(tree, "FeatureSet"))),
            draw(hyperparameters),
            draw(st.none() | st.sampled_from(names(tree, "Quota")))
            if names(tree, "Quota")
            else None,
            draw(st.none() | st.sampled_from(names(tree, "Secret")))
            if names(tree, "Secret")
            else None,
        )
    targets = [a for a, d in tree.items() if d.kind in ("TrainingJob", "Dataset")]
    return alert(name, draw(st.sampled_from(sorted(targets))), draw(severities))


def addable(tree: Tree) -> list[str]:
    needs = {"FeatureSet": "Dataset", "TrainingJob": "FeatureSet", "Alert": "Dataset"}
    return [
        kind
        for kind in ("Dataset", "FeatureSet", "Quota", "Secret", "TrainingJob", "Alert")
        if kind not in needs or names(tree, needs[kind])
    ]


@st.composite
def trees(draw: Callable[..., Any]) -> Tree:
    """A random DAG: the kinds in dependency order, each referring to earlier documents."""
    tree: Tree = {}
    plan = [
        ("Dataset", draw(st.integers(1, 3))),
        ("Quota", draw(st.integers(0, 2))),
        ("Secret", draw(st.integers(0, 1))),
        ("FeatureSet", draw(st.integers(0, 3))),
        ("TrainingJob", draw(st.integers(0, 3))),
        ("Alert", draw(st.integers(0, 2))),
    ]
    for kind, count in plan:
        for _ in range(count):
            if kind in addable(tree):
                doc = add_document(draw, tree, kind)
                tree[doc.address] = doc
    return tree


def edit_field(draw: Callable[..., Any], doc: Doc) -> Doc:
    """The same document with one field changed to a different value."""
    spec = json.loads(json.dumps(doc.spec))
    if doc.kind == "Dataset":
        spec["schema"][2]["min"] = draw(column_min.filter(lambda v: v != spec["schema"][2]["min"]))
    elif doc.kind == "FeatureSet":
        feature = spec["features"][0]
        if feature.pop("transforms", None) is None:
            feature["transforms"] = ["standardize"]
    elif doc.kind == "Quota":
        spec["gpus"] = draw(gpus.filter(lambda v: v != spec["gpus"]))
    elif doc.kind == "Secret":
        spec["from"]["env"] += "_NEW"
    elif doc.kind == "TrainingJob":
        key = draw(st.sampled_from(sorted(spec["hyperparameters"])))
        values = hyperparameters.map(lambda hp: hp[key])
        spec["hyperparameters"][key] = draw(
            values.filter(lambda v: v != spec["hyperparameters"][key])
        )
    else:
        spec["severity"] = draw(severities.filter(lambda v: v != spec["severity"]))
    return Doc(doc.kind, doc.name, spec, doc.refs)


def expected_changes(tree: Tree, edited: str) -> dict[str, Action]:
    """The edited resource updates, and so does everything consuming its data, transitively.

    A data-bearing resource (Dataset, FeatureSet, TrainingJob) gets new outputs when it
    changes, so the data-bearing resources built from it are re-applied; a Quota, Secret or
    Alert has no such outputs, and an Alert watching a job does not change when the job is
    retrained.
    """
    changed = {edited: Action.UPDATE}
    grew = True
    while grew:
        grew = False
        for address, doc in tree.items():
            if (
                address not in changed
                and doc.kind in DATA_KINDS
                and any(r in changed and r.split("/", 1)[0] in DATA_KINDS for r in doc.refs)
            ):
                changed[address] = Action.UPDATE
                grew = True
    return changed


# -- driving the engine in this process --------------------------------------------------------


def write(root: Path, tree: Tree) -> None:
    (root / "pipeform.yaml").write_text(yaml.safe_dump(WORKSPACE, sort_keys=False))
    documents = [doc.document() for doc in tree.values()]
    (root / "specs.yaml").write_text(yaml.safe_dump_all(documents, sort_keys=False))


def plan_and_apply(root: Path, parallelism: int) -> tuple[Plan, list[str], State]:
    """`pipeform apply`: returns the plan, the order resources finished in, the new state."""
    session = engine.open_session([root])
    try:
        with engine.locked(session.backend, 0, "pipeform apply"):
            plan = engine.plan(session, PlanOptions())
            report = engine.apply(session, plan, "pipeform apply", parallelism)
        assert not report.failed and not report.count("skipped"), report.outcomes
        return plan, [o.address for o in report.outcomes], session.backend.read()
    finally:
        session.backend.close()


def next_plan(root: Path) -> Plan:
    session = engine.open_session([root])
    try:
        return engine.plan(session, PlanOptions())
    finally:
        session.backend.close()


def check_cycle(root: Path, tree: Tree, expected: dict[str, Action], parallelism: int) -> State:
    write(root, tree)
    plan, finished, state = plan_and_apply(root, parallelism)
    assert {c.address: c.action for c in plan.actionable} == expected
    # dependencies finish first; a deletion waits for its dependents' deletions
    for change in plan.actionable:
        after = finished.index(change.address)
        for dep in change.dependencies:
            if dep in expected and expected[dep] is not Action.DELETE:
                assert finished.index(dep) < after, (dep, change.address)
    converged = next_plan(root)
    assert not converged.has_changes, [
        (c.address, c.action, c.reason) for c in converged.actionable
    ]
    assert set(state.resources) == set(tree) == set(live_objects(root))
    for address, doc in tree.items():
        assert sorted(state.resources[address].dependencies) == sorted(doc.refs), address
    return state


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=trees(), data=st.data())
def test_every_apply_converges_and_plans_only_what_an_edit_touches(
    tree: Tree, data: st.DataObject
) -> None:
    draw = data.draw
    with tempfile.TemporaryDirectory(prefix="pipeform-prop-") as tmp:
        root = Path(tmp)
        states = [
            check_cycle(root, tree, dict.fromkeys(tree, Action.CREATE), draw(st.integers(1, 4)))
        ]
        for _ in range(draw(st.integers(1, 3), label="edits")):
            tree = dict(tree)
            leaves = [a for a in tree if not any(a in d.refs for d in tree.values())]
            what = draw(
                st.sampled_from(["field", "add", "remove"] if len(tree) > 1 else ["field", "add"])
            )
            if what == "field":
                address = draw(st.sampled_from(sorted(tree)))
                tree[address] = edit_field(draw, tree[address])
                expected = expected_changes(tree, address)
            elif what == "add":
                doc = add_document(draw, tree, draw(st.sampled_from(addable(tree))))
                tree[doc.address] = doc
                expected = {doc.address: Action.CREATE}
            else:
                address = draw(st.sampled_from(sorted(leaves)))
                del tree[address]
                expected = {address: Action.DELETE}
            states.append(check_cycle(root, tree, expected, draw(st.integers(1, 4))))
        backend = SqliteBackend(root / ".pipeform" / "state.db")
        try:  # the history holds every state an apply left behind
            for state in states:
                assert backend.state_at(state.serial) == state
        finally:
            backend.close()


# -- state round trips ---------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=4)
kinds = st.sampled_from(["Dataset", "FeatureSet", "TrainingJob", "Quota", "Secret", "Alert"])
short_names = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,8}[a-z0-9])?", fullmatch=True)


@st.composite
def resource_states(draw: Callable[..., Any], address: str | None = None) -> ResourceState:
    kind = draw(kinds)
    return ResourceState(
        address=address or f"{kind}/{draw(short_names)}",
        kind=kind,
        provider=draw(st.sampled_from(["fake", "local", "kubernetes"])),
        spec=draw(json_objects),
        spec_hash=draw(st.text(max_size=20)),
        inputs_fingerprint=draw(st.none() | st.text(max_size=20)),
        outputs=draw(json_objects),
        observed=draw(json_objects),
        external_id=draw(st.none() | st.text(max_size=12)),
        dependencies=draw(st.lists(st.builds("{}/{}".format, kinds, short_names), max_size=3)),
        status=draw(st.sampled_from(Status)),
        prevent_destroy=draw(st.booleans()),
        created_at=draw(st.text(max_size=27)),
        updated_at=draw(st.text(max_size=27)),
    )


@settings(max_examples=100, deadline=None)
@given(resource_states())
def test_resource_state_round_trips_through_its_dict_and_json(resource: ResourceState) -> None:
    assert ResourceState.from_dict(resource.to_dict()) == resource
    stored = json.loads(json.dumps(resource.to_dict(), sort_keys=True))
    assert ResourceState.from_dict(stored) == resource


operations = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(0, 5), resource_states()),
        st.tuples(st.just("remove"), st.integers(0, 5), st.none()),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=40, deadline=None)
@given(operations)
def test_sqlite_reads_back_every_write_and_every_past_state(
    ops: list[tuple[str, int, ResourceState | None]],
) -> None:
    with tempfile.TemporaryDirectory(prefix="pipeform-state-") as tmp:
        backend = SqliteBackend(Path(tmp) / "state.db")
        try:
            start = backend.read()
            model: dict[str, ResourceState] = {}
            history = {0: start}
            serial = start.serial
            for op, pick, resource in ops:
                addresses = sorted(model)
                if op == "put" and resource is not None:
                    if addresses and pick % 2:  # overwrite an existing record
                        resource = ResourceState.from_dict(
                            {**resource.to_dict(), "address": addresses[pick % len(addresses)]}
                        )
                    serial = backend.put(serial, resource)
                    model[resource.address] = resource
                elif addresses:
                    address = addresses[pick % len(addresses)]
                    serial = backend.remove(serial, address)
                    del model[address]
                current = backend.read()
                assert current == State(start.lineage, serial, dict(sorted(model.items())))
                history[serial] = current
                if serial:  # a writer that read an older state is refused and changes nothing
                    try:
                        backend.remove(serial - 1, "Quota/anything")
                    except StateConflict:
                        pass
                    else:
                        raise AssertionError("a stale serial was accepted")
                    assert backend.read() == current
            for past, state in history.items():
                assert backend.state_at(past) == state
        finally:
            backend.close()
