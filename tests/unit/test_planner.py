"""Planning and applying against the fake provider, in process: actions, reasons, options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler import engine
from reconciler.diagnostics import PipeformError
from reconciler.plan.model import Action, Plan, Reason
from reconciler.plan.planner import PlanOptions

WORKSPACE = "apiVersion: pipeform/v1\nkind: Workspace\nmetadata: {name: t}\nspec: {defaults: {provider: fake}}\n"
DATASET = "apiVersion: pipeform/v1\nkind: Dataset\nmetadata: {name: d}\nspec: {source: {uri: 'file://d.csv'}}\n"
FEATURES = (
    "apiVersion: pipeform/v1\nkind: FeatureSet\nmetadata: {name: f}\n"
    "spec: {dataset: d, entity: id, label: {column: y}, features: [{name: x}]}\n"
)
JOB = (
    "apiVersion: pipeform/v1\nkind: TrainingJob\nmetadata: {name: job%s}\n"
    "spec:\n  features: f\n  model: {type: linear, task: regression}\n  hyperparameters: {learningRate: %s}\n"
)
QUOTA = "apiVersion: pipeform/v1\nkind: Quota\nmetadata: {name: q%s}\nspec: {gpus: %d}\n"


def write(root: Path, **files: str) -> Path:
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def plan(root: Path, **options: object) -> Plan:
    session = engine.open_session([root])
    return engine.plan(session, PlanOptions(**options))  # type: ignore[arg-type]


def apply(root: Path, **options: object) -> Plan:
    session = engine.open_session([root])
    result = engine.plan(session, PlanOptions(**options))  # type: ignore[arg-type]
    report = engine.apply(session, result, "test", parallelism=4)
    assert not report.failed, report.outcomes
    return result


def actions(p: Plan) -> dict[str, Action]:
    return {c.address: c.action for c in p.actionable}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return write(
        tmp_path,
        **{
            "ws.yaml": WORKSPACE,
            "d.yaml": DATASET,
            "f.yaml": FEATURES,
            "j.yaml": JOB % ("", "0.01"),
            "q.yaml": QUOTA % ("", 1),
        },
    )


def test_first_plan_creates_everything_in_dependency_order(tree: Path) -> None:
    p = plan(tree)
    assert [c.address for c in p.actionable] == [
        "Dataset/d",
        "Quota/q",
        "FeatureSet/f",
        "TrainingJob/job",
    ]
    assert set(actions(p).values()) == {Action.CREATE}
    assert p.summary() == "Plan: 4 to add, 0 to change, 0 to replace, 0 to destroy."
    assert p.changes[0].after_unknown == ["version"]


def test_second_plan_after_apply_is_a_no_op(tree: Path) -> None:
    apply(tree)
    p = plan(tree)
    assert not p.has_changes
    assert all(c.action is Action.NOOP for c in p.changes)


def test_a_spec_edit_updates_that_resource_with_its_field(tree: Path) -> None:
    apply(tree)
    write(tree, **{"j.yaml": JOB % ("", "0.02")})
    p = plan(tree)
    assert actions(p) == {"TrainingJob/job": Action.UPDATE}
    [change] = p.actionable
    assert change.reason is Reason.SPEC_CHANGED
    assert [(f.path, f.before, f.after) for f in change.field_changes] == [
        ("spec.hyperparameters.learningRate", 0.01, 0.02)
    ]


def test_an_upstream_change_flows_downstream_with_the_cause(tree: Path) -> None:
    apply(tree)
    write(tree, **{"d.yaml": DATASET.replace("d.csv", "e.csv")})
    p = plan(tree)
    assert actions(p) == {
        "Dataset/d": Action.UPDATE,
        "FeatureSet/f": Action.UPDATE,
        "TrainingJob/job": Action.UPDATE,
    }
    by = {c.address: c for c in p.actionable}
    assert by["FeatureSet/f"].reason_detail == "input Dataset/d changed"
    assert by["TrainingJob/job"].reason_detail == "input FeatureSet/f changed"
    assert "Quota/q" not in actions(p)
    apply(tree)
    assert not plan(tree).has_changes


def test_removed_document_is_destroyed_dependents_first(tree: Path) -> None:
    apply(tree)
    (tree / "j.yaml").unlink()
    p = plan(tree)
    assert actions(p) == {"TrainingJob/job": Action.DELETE}
    assert p.actionable[0].reason is Reason.REMOVED


def test_destroy_mode_deletes_in_reverse_order(tree: Path) -> None:
    apply(tree)
    p = plan(tree, mode="destroy")
    order = [c.address for c in p.actionable]
    assert order.index("TrainingJob/job") < order.index("FeatureSet/f") < order.index("Dataset/d")
    apply(tree, mode="destroy")
    assert engine.open_session([tree]).backend.read().resources == {}
    assert not list((tree / ".pipeform" / "fake").glob("*.json"))


def test_target_plans_only_the_target_and_its_dependencies(tree: Path) -> None:
    p = plan(tree, targets=("FeatureSet/f",))
    assert set(actions(p)) == {"Dataset/d", "FeatureSet/f"}


def test_replace_option_and_replacing_fields(tree: Path) -> None:
    apply(tree)
    p = plan(tree, replace=("Quota/q",))
    assert actions(p) == {"Quota/q": Action.DELETE_THEN_CREATE}
    assert p.actionable[0].reason is Reason.REPLACE_REQUESTED
    assert p.counts()["replace"] == 1


def test_drift_is_reported_and_repaired(tree: Path) -> None:
    apply(tree)
    store = tree / ".pipeform" / "fake" / "Quota__q.json"
    body = json.loads(store.read_text())
    body["spec"]["spec"]["gpus"] = 7
    store.write_text(json.dumps(body))
    p = plan(tree)
    [drift] = p.drift
    assert drift.address == "Quota/q" and drift.exists
    assert any("gpus" in f.path for f in drift.field_changes)
    assert actions(p) == {"Quota/q": Action.UPDATE}
    assert p.actionable[0].reason is Reason.DRIFTED
    apply(tree)
    assert json.loads(store.read_text())["spec"]["spec"]["gpus"] == 1


def test_object_deleted_outside_is_recreated(tree: Path) -> None:
    apply(tree)
    (tree / ".pipeform" / "fake" / "Quota__q.json").unlink()
    p = plan(tree)
    assert p.drift[0].exists is False
    assert actions(p)["Quota/q"] is Action.CREATE
    assert p.actionable[0].reason is Reason.GONE


def test_refresh_only_records_drift_without_changes(tree: Path) -> None:
    apply(tree)
    (tree / ".pipeform" / "fake" / "Quota__q.json").unlink()
    p = plan(tree, mode="refresh-only")
    assert p.drift and not p.actionable and p.has_changes
    session = engine.open_session([tree])
    engine.apply_refresh(session, p)
    assert "Quota/q" not in session.backend.read().resources


def test_no_refresh_skips_reading(tree: Path) -> None:
    apply(tree)
    (tree / ".pipeform" / "fake" / "Quota__q.json").unlink()
    assert not plan(tree, refresh=False).has_changes


def test_prevent_destroy_blocks_destroy_even_after_the_document_is_gone(tree: Path) -> None:
    write(
        tree,
        **{
            "q.yaml": QUOTA.replace(
                "metadata: {name: q%s}", "metadata: {name: q%s, lifecycle: {preventDestroy: true}}"
            )
            % ("", 1)
        },
    )
    apply(tree)
    with pytest.raises(
        PipeformError, match=r"would destroy Quota/q, which has lifecycle\.preventDestroy"
    ):
        plan(tree, mode="destroy")
    (tree / "q.yaml").unlink()
    with pytest.raises(PipeformError, match="preventDestroy"):
        plan(tree)


def test_ignore_changes_paths_are_not_diffed(tree: Path) -> None:
    write(
        tree,
        **{
            "q.yaml": QUOTA.replace(
                "metadata: {name: q%s}", "metadata: {name: q%s, lifecycle: {ignoreChanges: [gpus]}}"
            )
            % ("", 1)
        },
    )
    apply(tree)
    write(
        tree,
        **{
            "q.yaml": QUOTA.replace(
                "metadata: {name: q%s}", "metadata: {name: q%s, lifecycle: {ignoreChanges: [gpus]}}"
            )
            % ("", 5)
        },
    )
    assert not plan(tree).has_changes


def test_labels_from_workspace_defaults_are_part_of_the_diff(tree: Path) -> None:
    apply(tree)
    write(
        tree,
        **{
            "ws.yaml": WORKSPACE.replace(
                "{defaults: {provider: fake}}", "{defaults: {provider: fake, labels: {team: a}}}"
            )
        },
    )
    p = plan(tree)
    assert {c.address for c in p.actionable} >= {"Quota/q", "Dataset/d"}
    quota = next(c for c in p.actionable if c.address == "Quota/q")
    assert quota.field_changes[0].path == "metadata.labels.team"


def test_import_adopts_an_existing_object(tree: Path) -> None:
    store = tree / ".pipeform" / "fake"
    store.mkdir(parents=True)
    (store / "legacy-quota.json").write_text(
        json.dumps(
            {
                "spec": {"metadata": {"labels": {}, "annotations": {}}, "spec": {"gpus": 3}},
                "labels": {},
                "version": 1,
            }
        )
    )
    session = engine.open_session([tree])
    engine.import_resource(session, "Quota/q", "legacy-quota")
    with pytest.raises(PipeformError, match="already managed"):
        engine.import_resource(engine.open_session([tree]), "Quota/q", "legacy-quota")
    assert (
        engine.open_session([tree]).backend.read().resources["Quota/q"].external_id
        == "legacy-quota"
    )
    p = plan(tree, targets=("Quota/q",))
    assert actions(p) == {"Quota/q": Action.UPDATE}  # its spec says gpus 1, the object has 3
    apply(tree, targets=("Quota/q",))
    assert json.loads((store / "legacy-quota.json").read_text())["spec"]["spec"]["gpus"] == 1
    assert not (store / "Quota__q.json").exists()


def test_field_diffs_do_not_load_pandas_through_deepdiff() -> None:
    """deepdiff imports pandas when it is installed (most of a second); a plan with a
    changed field must not pay for it, and pandas must still import afterwards."""
    import subprocess
    import sys

    # pandas is a dev dependency: without it the last import below fails the test (no skip)
    code = (
        "import sys\n"
        "from reconciler.plan.planner import field_changes\n"
        "changes = field_changes({'spec': {'gpus': 1}}, {'spec': {'gpus': 2, 'cpu': 'x'}})\n"
        "print([c.path for c in changes])\n"
        "print('pandas' in sys.modules, 'numpy' in sys.modules)\n"
        "import pandas\n"
        "print(pandas.DataFrame({'a': [1]}).shape)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == ["['spec.cpu', 'spec.gpus']", "False False", "(1, 1)"]
