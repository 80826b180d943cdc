"""Saved plans: `plan --out FILE` then `apply FILE`, refused once state or specs moved.

A reviewer approves the plan a pull request shows; apply must carry out exactly that
plan, or refuse it. It must never act on a plan made against another state or older
specs, and the file (often uploaded as a CI artefact) must hold no secret value.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.engine.harness import (
    ADDRESSES,
    EDITED_ADDRESSES,
    TOKEN_ENV,
    calls,
    copy_tree,
    edit_tree,
    live_objects,
    pipeform,
    recorded,
    state_db,
    state_list,
    store,
    write_tree,
)


def saved_plan(root: Path, plan_file: Path, **env: str) -> None:
    result = pipeform("plan", str(root), "--out", str(plan_file), cwd=root.parent, extra_env=env)
    assert result.returncode == 0, result
    assert f"Saved the plan to {plan_file}" in " ".join(result.stderr.split())
    assert plan_file.is_file()


def assert_refused_and_untouched(root: Path, plan_file: Path, reason: str) -> None:
    before = (recorded(root), live_objects(root), len(calls(root)))
    refused = pipeform("apply", str(root), str(plan_file), cwd=root.parent)
    assert refused.returncode == 1, refused
    assert reason in " ".join(refused.stderr.split()), refused
    assert "Traceback" not in refused.output
    assert (recorded(root), live_objects(root), len(calls(root))) == before, "it acted anyway"


def test_saved_plan_is_applied_once(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "tree")
    plan_file = tmp_path / "release.plan"
    saved_plan(root, plan_file)
    assert not live_objects(root), "plan --out changed something"

    applied = pipeform("apply", str(root), str(plan_file), cwd=tmp_path)
    assert applied.returncode == 0, applied
    assert "Apply complete! Resources: 10 added, 0 changed" in applied.stdout
    assert set(live_objects(root)) == ADDRESSES
    listed = state_list(root)
    assert {r["address"] for r in listed["resources"]} == ADDRESSES

    # a CI job retried: the same file again must not run a second time
    assert_refused_and_untouched(root, plan_file, "saved plan is stale")


def test_plan_is_stale_after_another_apply(tmp_path: Path, applied_tree: Path) -> None:
    root = copy_tree(applied_tree, tmp_path / "tree")
    edit_tree(root)
    plan_file = tmp_path / "review.plan"
    saved_plan(root, plan_file)
    serial = recorded(root).serial

    other = pipeform("apply", "--auto-approve", str(root), cwd=tmp_path)  # someone merged first
    assert other.returncode == 0, other
    moved = recorded(root).serial
    assert moved > serial
    assert_refused_and_untouched(
        root,
        plan_file,
        f"saved plan is stale: the state changed since the plan was made (serial {serial} -> {moved})",
    )
    assert set(live_objects(root)) == EDITED_ADDRESSES


def test_plan_is_stale_after_the_specs_change(tmp_path: Path, applied_tree: Path) -> None:
    root = copy_tree(applied_tree, tmp_path / "tree")
    plan_file = tmp_path / "review.plan"
    edit_tree(root)
    saved_plan(root, plan_file)
    # a later commit lands before the apply: the reviewed plan no longer describes the specs
    training = root / "training.yaml"
    training.write_text(training.read_text().replace("epochs: 3", "epochs: 30"))
    assert_refused_and_untouched(
        root,
        plan_file,
        "saved plan is stale: the specs changed since the plan was made (a value, or a "
        "document added or removed; comments and formatting do not count).",
    )
    assert set(live_objects(root)) == ADDRESSES


def test_a_comment_or_formatting_edit_leaves_a_saved_plan_applicable(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "tree")
    plan_file = tmp_path / "review.plan"
    saved_plan(root, plan_file)
    for spec_file in root.glob("*.yaml"):  # what the error says does not count
        text = spec_file.read_text().replace(": ", ":   ")
        spec_file.write_text("# reviewed and approved\n\n" + text)
    applied = pipeform("apply", str(root), str(plan_file), cwd=tmp_path)
    assert applied.returncode == 0, applied
    assert set(live_objects(root)) == ADDRESSES


def test_plan_from_another_state_is_refused(tmp_path: Path) -> None:
    staging = write_tree(tmp_path / "staging")
    production = write_tree(tmp_path / "production")
    plan_file = tmp_path / "staging.plan"
    saved_plan(staging, plan_file)
    refused = pipeform("apply", str(production), str(plan_file), cwd=tmp_path)
    assert refused.returncode == 1, refused
    assert "saved plan belongs to another state (lineage" in refused.stderr
    assert not live_objects(production) and not live_objects(staging)
    assert not recorded(production).resources


def test_plan_file_and_state_hold_no_secret_value(tmp_path: Path) -> None:
    planted = f"planted-{uuid.uuid4().hex}"
    root = write_tree(tmp_path / "tree")
    plan_file = tmp_path / "secret.plan"
    saved_plan(root, plan_file, **{TOKEN_ENV: planted})
    text = plan_file.read_text()
    assert TOKEN_ENV in text, "the Secret is not in the plan at all"
    assert planted not in text

    applied = pipeform(
        "apply", str(root), str(plan_file), cwd=tmp_path, extra_env={TOKEN_ENV: planted}
    )
    assert applied.returncode == 0, applied
    assert planted not in applied.output
    leaks = [
        path
        for path in [*state_db(root).parent.glob("state.db*"), *store(root).iterdir()]
        if planted.encode() in path.read_bytes()
    ]
    assert not leaks, f"the secret value was written to {leaks}"
