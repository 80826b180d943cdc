"""The plan as tools and reviewers see it: the JSON plan and the pull-request comment.

Plans are built directly from the plan dataclasses, so each test states the situation
it renders; one test runs the real CLI on a fake-provider tree.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from reconciler.plan.model import (
    SENSITIVE,
    UNKNOWN,
    Action,
    Drift,
    FieldChange,
    Plan,
    Reason,
    ResourceChange,
)
from reconciler.render import jsonplan, markdown, text
from tests.conftest import run_cli

SECRET = "hunter2-planted-value"


def doc(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"labels": {"team": "growth"}, "annotations": {}}, "spec": spec}


def make_plan(changes: list[ResourceChange], drift: list[Drift] | None = None) -> Plan:
    return Plan(
        lineage="3b1c8f4e-0000-4000-8000-000000000001",
        serial=7,
        specs_digest="sha256:abc",
        created_at="2026-01-02T03:04:05Z",
        changes=changes,
        drift=drift or [],
    )


def create(address: str, **kw: Any) -> ResourceChange:
    kind = address.split("/")[0]
    return ResourceChange(address, kind, "fake", Action.CREATE, Reason.NEW, **kw)


DATASET = ResourceChange(
    "Dataset/rand-hie",
    "Dataset",
    "fake",
    Action.UPDATE,
    Reason.SPEC_CHANGED,
    before=doc(source={"uri": "file://a.csv"}),
    after=doc(source={"uri": "file://b.csv"}),
    after_unknown=["version"],
    field_changes=[FieldChange("spec.source.uri", "file://a.csv", "file://b.csv")],
)
FEATURES = ResourceChange(
    "FeatureSet/visits",
    "FeatureSet",
    "fake",
    Action.UPDATE,
    Reason.INPUT_CHANGED,
    reason_detail="input Dataset/rand-hie changed",
    before=doc(dataset="rand-hie"),
    after=doc(dataset="rand-hie"),
    after_unknown=["version"],
    dependencies=["Dataset/rand-hie"],
)
TRAINING = ResourceChange(
    "TrainingJob/visit-model",
    "TrainingJob",
    "fake",
    Action.DELETE_THEN_CREATE,
    Reason.REPLACE_BY_FIELDS,
    before=doc(model={"type": "mlp"}, hyperparameters={"learningRate": 0.001}),
    after=doc(model={"type": "linear"}, hyperparameters={"learningRate": 0.0005}),
    after_unknown=["version", "run_id"],
    field_changes=[
        FieldChange("spec.hyperparameters.learningRate", 0.001, 0.0005),
        FieldChange("spec.model.type", "mlp", "linear", forces_replacement=True),
    ],
    dependencies=["Quota/growth-gpus", "FeatureSet/visits"],
)
QUOTA = create("Quota/growth-gpus", after=doc(gpus=2))
ALERT = ResourceChange(
    "Alert/old-alert",
    "Alert",
    "fake",
    Action.DELETE,
    Reason.REMOVED,
    before=doc(severity="critical"),
)
SECRET_CHANGE = ResourceChange(
    "Secret/wandb-key",
    "Secret",
    "fake",
    Action.UPDATE,
    Reason.SPEC_CHANGED,
    before=doc(**{"from": {"env": "A"}, "token": SECRET, "targets": [{"key": SECRET}]}),
    after=doc(**{"from": {"env": "B"}, "token": SECRET, "targets": [{"key": SECRET}]}),
    field_changes=[
        FieldChange("spec.from.env", "A", "B"),
        FieldChange("spec.token", SECRET, SECRET + "-new", sensitive=True),
        FieldChange("spec.targets", [{"key": SECRET}], [{"key": SECRET + "-new"}]),
    ],
    sensitive_paths=["token", "spec.targets[0].key"],
)
DRIFT = [
    Drift("Dataset/rand-hie", "Dataset", True, [FieldChange("spec.rows", 20190, 20502)]),
    Drift("Quota/gone", "Quota", False),
]
PLAN = make_plan([DATASET, QUOTA, FEATURES, TRAINING, SECRET_CHANGE, ALERT], DRIFT)


def by_address(rendered: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["address"]: c for c in rendered["resource_changes"]}


# -- JSON ------------------------------------------------------------------------------


def test_json_top_level_identifies_the_plan_and_counts_changes() -> None:
    out = jsonplan.render(PLAN)
    assert out["format_version"] == jsonplan.FORMAT_VERSION
    assert out["pipeform_version"] and out["pipeform_version"] != ""
    assert (out["lineage"], out["serial"], out["specs_digest"]) == (
        PLAN.lineage,
        7,
        "sha256:abc",
    )
    assert out["mode"] == "normal"
    assert out["summary"] == {"add": 1, "change": 3, "replace": 1, "destroy": 1}
    assert out["has_changes"] is True
    assert out["policy"]["passed"] == [] and out["policy"]["failed"] == []
    assert out["cost"] == {"estimated": False, "currency": None, "total": None, "items": []}


def test_json_replace_is_delete_then_create_with_its_forcing_field() -> None:
    change = by_address(jsonplan.render(PLAN))["TrainingJob/visit-model"]
    assert change["kind"] == "TrainingJob" and change["name"] == "visit-model"
    assert change["provider"] == "fake"
    assert change["change"]["actions"] == ["delete", "create"]
    assert change["action_reason"] == "replace_because_cannot_update"
    assert change["change"]["replace_paths"] == ["spec.model.type"]
    fields = {f["path"]: f for f in change["change"]["field_changes"]}
    assert fields["spec.model.type"] == {
        "path": "spec.model.type",
        "before": "mlp",
        "after": "linear",
        "forces_replacement": True,
        "sensitive": False,
    }
    assert fields["spec.hyperparameters.learningRate"]["forces_replacement"] is False
    assert change["change"]["after_unknown"] == {"run_id": True, "version": True}
    assert change["dependencies"] == ["FeatureSet/visits", "Quota/growth-gpus"]
    assert change["change"]["after"]["spec"]["model"] == {"type": "linear"}


def test_json_create_update_delete_actions_and_reasons() -> None:
    changes = by_address(jsonplan.render(PLAN))
    quota = changes["Quota/growth-gpus"]
    assert quota["change"]["actions"] == ["create"]
    assert quota["change"]["before"] is None
    assert quota["action_reason"] == "create_because_new"
    features = changes["FeatureSet/visits"]
    assert features["change"]["actions"] == ["update"]
    assert features["action_reason"] == "update_because_input_changed"
    assert features["reason_detail"] == "input Dataset/rand-hie changed"
    alert = changes["Alert/old-alert"]
    assert alert["change"]["actions"] == ["delete"]
    assert alert["change"]["after"] is None and alert["change"]["after_unknown"] == {}
    assert alert["action_reason"] == "delete_because_no_resource_config"


def test_json_drift_lists_changed_and_deleted_objects() -> None:
    drift = {d["address"]: d for d in jsonplan.render(PLAN)["resource_drift"]}
    assert drift["Dataset/rand-hie"]["change"]["actions"] == ["update"]
    assert drift["Dataset/rand-hie"]["change"]["field_changes"][0]["after"] == 20502
    assert drift["Quota/gone"]["change"]["actions"] == ["delete"]
    assert drift["Quota/gone"]["exists"] is False


def test_json_masks_sensitive_fields_and_paths() -> None:
    out = jsonplan.render(PLAN)
    secret = by_address(out)["Secret/wandb-key"]["change"]
    fields = {f["path"]: f for f in secret["field_changes"]}
    assert fields["spec.token"]["before"] == SENSITIVE == fields["spec.token"]["after"]
    assert fields["spec.targets"]["after"] == [{"key": SENSITIVE}]
    assert fields["spec.from.env"]["after"] == "B"  # not everything is hidden
    assert secret["before"]["spec"]["token"] == SENSITIVE
    assert secret["after"]["spec"]["targets"] == [{"key": SENSITIVE}]
    assert secret["after_sensitive"] == ["spec.targets[0].key", "spec.token"]
    assert SECRET not in json.dumps(out)


def test_json_is_deterministic_and_serialisable() -> None:
    shuffled = ResourceChange(
        "Quota/q",
        "Quota",
        "fake",
        Action.UPDATE,
        Reason.SPEC_CHANGED,
        before={"spec": {"b": 1, "a": 2}, "metadata": {}},
        after={"metadata": {}, "spec": {"a": 2, "b": Path("x")}},
        dependencies=["b", "a"],
    )
    first = json.dumps(jsonplan.render(make_plan([shuffled])))
    assert first == json.dumps(jsonplan.render(make_plan([shuffled])))
    change = json.loads(first)["resource_changes"][0]["change"]
    assert list(change["before"]) == ["metadata", "spec"]
    assert list(change["before"]["spec"]) == ["a", "b"] and change["after"]["spec"]["b"] == "x"


def test_every_reason_has_a_documented_action_reason() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs/reference/plan-json.md").read_text()
    for reason in Reason:
        name = jsonplan.action_reason(reason)
        assert reason in jsonplan.ACTION_REASONS, f"map {reason!r} in jsonplan.ACTION_REASONS"
        assert name is None or f"`{name}`" in page, f"document {name} in plan-json.md"


def test_no_changes_plan() -> None:
    noop = ResourceChange("Quota/q", "Quota", "fake", Action.NOOP, before=doc(), after=doc())
    plan = make_plan([noop])
    out = jsonplan.render(plan)
    assert out["has_changes"] is False
    assert out["resource_changes"][0]["change"]["actions"] == ["no-op"]
    assert out["resource_changes"][0]["action_reason"] is None
    comment = markdown.render(plan)
    assert "### pipeform plan — no changes" in comment
    assert "| area |" not in comment


def test_destroy_and_refresh_only_modes_say_so() -> None:
    destroy = dataclasses.replace(make_plan([ALERT]), mode="destroy")
    assert jsonplan.render(destroy)["mode"] == "destroy"
    assert "### pipeform plan (destroy) — 0 to add, 0 to change, 0 to replace, 1 to destroy" in (
        markdown.render(destroy)
    )
    refresh = dataclasses.replace(make_plan([], DRIFT), mode="refresh-only")
    comment = markdown.render(refresh)
    assert "### pipeform plan (refresh only) — 2 changed outside pipeform" in comment
    assert "records the live values above in state" in comment
    assert jsonplan.render(refresh)["has_changes"] is True


# -- Markdown --------------------------------------------------------------------------


def table_rows(comment: str) -> list[list[str]]:
    rows = [line for line in comment.splitlines() if line.startswith("| ")]
    return [re.split(r"(?<!\\)\|", row)[1:-1] for row in rows[1:]]  # skip the header


def test_markdown_heading_counts_and_table_grouped_by_area() -> None:
    comment = markdown.render(PLAN)
    assert "### pipeform plan — 1 to add, 3 to change, 1 to replace, 1 to destroy" in comment
    rows = [[cell.strip() for cell in row][:3] for row in table_rows(comment)]
    assert rows == [
        ["data", "Dataset/rand-hie", "~ re-snapshot"],
        ["data", "FeatureSet/visits", "~ re-materialise"],
        ["training", "TrainingJob/visit-model", "-/+ retrain"],
        ["platform", "Quota/growth-gpus", "+ create"],
        ["platform", "Secret/wandb-key", "~ update"],
        ["monitoring", "Alert/old-alert", "- destroy"],
    ]


def test_markdown_why_column_names_the_cause() -> None:
    why = {row[1].strip(): row[3].strip() for row in table_rows(markdown.render(PLAN))}
    assert why["FeatureSet/visits"] == "input Dataset/rand-hie changed"
    assert why["Alert/old-alert"] == "removed from specs"
    assert "a changed field forces replacement" in why["TrainingJob/visit-model"]
    assert "hyperparameters.learningRate 0.001 → 0.0005" in why["TrainingJob/visit-model"]


def test_markdown_drift_section_and_details_diff() -> None:
    comment = markdown.render(PLAN)
    assert "**Changes outside pipeform (drift):**" in comment
    assert "- **Quota/gone** was deleted outside pipeform" in comment
    assert "- **Dataset/rand-hie** changed outside pipeform: rows 20190 → 20502" in comment
    details = comment.split("<details><summary>Details</summary>", 1)[1]
    assert "```diff" in details and details.rstrip().endswith("</details>")
    assert '- model.type: "mlp"\n+ model.type: "linear"  # forces replacement' in details
    assert "+ gpus: 2" in details  # a create shows what it declares
    assert f"outputs: version, run_id {UNKNOWN}" in details


def test_markdown_escapes_user_text_in_the_table() -> None:
    change = ResourceChange(
        "Dataset/events",
        "Dataset",
        "fake",
        Action.UPDATE,
        Reason.SPEC_CHANGED,
        field_changes=[FieldChange("spec.source.csv.delimiter", ",", "|")],
        reason_detail="<b>bold</b> `code`",
    )
    comment = markdown.render(make_plan([change]))
    [row] = table_rows(comment)
    assert len(row) == 4  # the | in the value did not add a column
    assert '"\\|"' in row[3]
    assert "&lt;b&gt;bold&lt;/b&gt; \\`code\\`" in row[3]
    assert "<b>" not in comment.split("<details>")[0]


def test_markdown_mentions_nobody() -> None:
    change = ResourceChange(
        "Alert/a",
        "Alert",
        "fake",
        Action.UPDATE,
        Reason.SPEC_CHANGED,
        field_changes=[FieldChange("spec.annotations.summary", "x", "page @oncall")],
    )
    comment = markdown.render(make_plan([change]))
    assert "@oncall" not in comment.split("<details>")[0]
    assert "@&#8203;oncall" in comment


def test_markdown_code_fence_survives_backticks_in_values() -> None:
    change = ResourceChange(
        "Alert/a",
        "Alert",
        "fake",
        Action.UPDATE,
        Reason.SPEC_CHANGED,
        field_changes=[FieldChange("spec.expr", "a", "```\n</details>")],
    )
    comment = markdown.render(make_plan([change]))
    assert "````diff" in comment and comment.count("</details>") == 2


def big_plan(count: int) -> Plan:
    changes = [
        ResourceChange(
            f"TrainingJob/model-{i:05d}",
            "TrainingJob",
            "fake",
            Action.UPDATE,
            Reason.SPEC_CHANGED,
            field_changes=[FieldChange("spec.hyperparameters.learningRate", 0.001, 0.0005)],
            after_unknown=["version"],
        )
        for i in range(count)
    ]
    return make_plan(changes)


def test_markdown_5000_changes_fit_in_one_comment() -> None:
    comment = markdown.render(big_plan(5000))
    assert len(comment) < 60_000
    assert "### pipeform plan — 0 to add, 5000 to change" in comment
    assert "<details>" not in comment  # details go first
    match = re.search(r"\.\.\. and ([\d,]+) more changes", comment)
    assert match, "the table says how many changes it left out"
    shown = len(table_rows(comment)) - 1
    assert shown + int(match.group(1).replace(",", "")) == 5000
    assert "left out" in comment and "cut short" in comment


def test_markdown_drops_details_before_cutting_the_table() -> None:
    plan = big_plan(50)
    full = markdown.render(plan, limit=10**9)
    without_details = full.split("<details>")[0]
    comment = markdown.render(plan, limit=len(without_details) + 400)
    assert "<details>" not in comment
    assert "more changes" not in comment
    assert len(table_rows(comment)) == 50
    assert "per-field details are left out" in comment


def test_markdown_cut_table_keeps_destroys_and_replacements() -> None:
    doomed = [
        ResourceChange(f"Alert/old-{i}", "Alert", "fake", Action.DELETE, Reason.REMOVED)
        for i in range(3)
    ]
    plan = make_plan([*big_plan(5000).changes, *doomed, TRAINING])
    rows = {row[1].strip(): row[2].strip() for row in table_rows(markdown.render(plan))}
    assert all(rows[f"Alert/old-{i}"] == "- destroy" for i in range(3))
    assert rows["TrainingJob/visit-model"] == "-/+ retrain"


def test_markdown_shows_a_changed_list_item_by_item() -> None:
    year, zper = {"name": "year"}, {"name": "zper"}
    change = ResourceChange(
        "FeatureSet/f",
        "FeatureSet",
        "fake",
        Action.UPDATE,
        Reason.SPEC_CHANGED,
        field_changes=[FieldChange("spec.features", [year], [year, zper])],
    )
    comment = markdown.render(make_plan([change]))
    assert "spec changed: features 1 → 2 items" in comment
    assert '+ features[1]: {"name": "zper"}' in comment
    assert "features[0]" not in comment  # unchanged items are not repeated


# -- sensitive values in every format --------------------------------------------------


def _text(plan: Plan) -> str:
    return "\n".join(line.plain for line in text.render(plan))


def _json(plan: Plan) -> str:
    return json.dumps(jsonplan.render(plan))


@pytest.mark.parametrize(
    "render",
    [
        _json,
        markdown.render,
        _text,
    ],
    ids=["json", "markdown", "text"],
)
def test_sensitive_values_never_rendered(render: Any) -> None:
    out = render(make_plan([SECRET_CHANGE]))
    assert SENSITIVE in out
    assert SECRET not in out


@pytest.mark.parametrize(
    "render", [_json, markdown.render, _text], ids=["json", "markdown", "text"]
)
def test_redacted_plan_shows_sensitive_marker(render: Any) -> None:
    """What the planner hands over: values already redacted, flagged sensitive."""
    change = ResourceChange(
        "Secret/s",
        "Secret",
        "fake",
        Action.UPDATE,
        Reason.SPEC_CHANGED,
        field_changes=[FieldChange("spec.token", SENSITIVE, SENSITIVE, sensitive=True)],
    )
    assert SENSITIVE in render(make_plan([change]))


# -- the real command ------------------------------------------------------------------

TREE = {
    "pipeform.yaml": """
        apiVersion: pipeform/v1
        kind: Workspace
        metadata: {name: demo}
        spec:
          defaults: {provider: fake}
        """,
    "data.yaml": """
        apiVersion: pipeform/v1
        kind: Dataset
        metadata: {name: events}
        spec:
          source: {uri: file://events.csv, format: csv}
          schema: [{name: id, type: int}, {name: y, type: int}]
        ---
        apiVersion: pipeform/v1
        kind: FeatureSet
        metadata: {name: feats}
        spec:
          dataset: events
          entity: [id]
          label: {column: y}
          features: [{name: id}]
        """,
    "platform.yaml": """
        apiVersion: pipeform/v1
        kind: Secret
        metadata: {name: token}
        spec:
          from: {env: DEMO_TOKEN}
        """,
}


def test_cli_plan_json_and_markdown_list_the_resources(write_tree: Any, tmp_path: Path) -> None:
    root = write_tree(**TREE)
    env = {**os.environ, "PIPEFORM_FAKE_STORE": str(tmp_path / "live"), "NO_COLOR": "1"}
    result = run_cli("plan", str(root), "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    changes = {c["address"]: c for c in body["resource_changes"]}
    assert set(changes) == {"Dataset/events", "FeatureSet/feats", "Secret/token"}
    assert all(c["change"]["actions"] == ["create"] for c in changes.values())
    assert changes["FeatureSet/feats"]["dependencies"] == ["Dataset/events"]
    assert changes["Dataset/events"]["change"]["after_unknown"] == {"version": True}
    assert body["summary"] == {"add": 3, "change": 0, "replace": 0, "destroy": 0}
    result = run_cli("plan", str(root), "--format", "markdown", env=env)
    assert result.returncode == 0, result.stderr
    assert "### pipeform plan — 3 to add, 0 to change, 0 to replace, 0 to destroy" in result.stdout
    assert "| data | FeatureSet/feats | + materialise |" in result.stdout


def test_lines_become_the_same_rich_text_on_a_colour_terminal() -> None:
    from reconciler.render.lines import Line

    line = Line("  +   ", style="green").append("Quota/q", style="bold").append("  will be created")
    rich_text = line.to_rich()
    assert rich_text.plain == line.plain == "  +   Quota/q  will be created"
    assert str(rich_text.style) == "green"
    assert [(s.start, s.end, str(s.style)) for s in rich_text.spans] == [(6, 13, "bold")]


PLAN_PROBE = """
import sys
from reconciler.cli import main
sys.argv = ["pipeform", "plan", sys.argv[1]]
try:
    main()
except SystemExit:
    pass
print("rich loaded" if "rich.console" in sys.modules else "no rich", file=sys.stderr)
"""


@pytest.mark.parametrize("force_color", [False, True])
def test_plain_output_never_loads_rich_and_colour_output_is_styled(
    tmp_path: Path, force_color: bool
) -> None:
    import os
    import subprocess
    import sys

    (tmp_path / "specs.yaml").write_text(
        "apiVersion: pipeform/v1\nkind: Workspace\nmetadata: {name: t}\n"
        "spec: {defaults: {provider: fake}}\n---\n"
        "apiVersion: pipeform/v1\nkind: Quota\nmetadata: {name: q}\nspec: {gpus: 1}\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    if force_color:
        env["FORCE_COLOR"] = "1"
    run = subprocess.run(
        [sys.executable, "-c", PLAN_PROBE, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert "Quota/q" in run.stdout and "will be created" in run.stdout
    if force_color:
        assert "\x1b[" in run.stdout and "rich loaded" in run.stderr
    else:
        assert "\x1b[" not in run.stdout and "no rich" in run.stderr


def test_markdown_names_the_blast_radius_of_each_root_change() -> None:
    """A Dataset change says which FeatureSets re-materialise and which models retrain
    because of it, a FeatureSet which models; a Quota the models name sets nothing off."""
    dataset = ResourceChange(
        "Dataset/rand-hie", "Dataset", "local", Action.UPDATE, Reason.SPEC_CHANGED
    )
    features = ResourceChange(
        "FeatureSet/visits",
        "FeatureSet",
        "local",
        Action.UPDATE,
        Reason.INPUT_CHANGED,
        dependencies=["Dataset/rand-hie"],
    )
    models = [
        ResourceChange(
            f"TrainingJob/model-{i}",
            "TrainingJob",
            "local",
            Action.DELETE_THEN_CREATE,
            Reason.INPUT_CHANGED,
            dependencies=["FeatureSet/visits", "Quota/team"],
        )
        for i in range(5)
    ]
    quota = ResourceChange("Quota/team", "Quota", "local", Action.UPDATE, Reason.SPEC_CHANGED)
    comment = markdown.render(make_plan([dataset, features, *models, quota]))
    rows = {cells[1].strip(): " | ".join(cells) for cells in table_rows(comment)}
    assert (
        "re-materialises 1 FeatureSet (visits); retrains 5 TrainingJobs "
        "(model-0, model-1, model-2 and 2 more)" in rows["Dataset/rand-hie"]
    )
    assert "retrains 5 TrainingJobs" in rows["FeatureSet/visits"]
    assert "→" not in rows["TrainingJob/model-0"]
    assert "→" not in rows["Quota/team"], (
        "a Quota edit does not retrain: its models did not change because of it"
    )
