"""Approval and rollback of a model's alias, end to end through the CLI (the stand-in
trainer keeps it fast): a version that needs approval is registered while the alias stays;
plan lists it; approve moves the alias and journals who did; rollback moves it back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.training import quickstart as qs
from trainer.registry.local import LocalRegistry

MODEL = "expense-model"


def champion(root: Path) -> int:
    registry = LocalRegistry(root / ".pipeform" / "data" / "registry")
    return registry.get(MODEL, alias="champion").version


def set_register(root: Path, extra: str) -> None:
    path = root / "training.yaml"
    text = path.read_text()
    old = "    alias: champion\n"
    assert old in text, "the quickstart's register block moved"
    extras = [part.strip() for part in extra.split(",") if part.strip()]
    path.write_text(text.replace(old, old + "".join(f"    {e}\n" for e in extras)))


def set_epochs(root: Path, epochs: int) -> None:
    path = root / "training.yaml"
    text = path.read_text()
    line = next(x for x in text.splitlines() if x.strip().startswith("epochs:"))
    path.write_text(text.replace(line, f"    epochs: {epochs}"))


def history(root: Path) -> list[dict[str, object]]:
    shown = qs.pipeform(root, "history", "--json")
    assert shown.returncode == 0, shown.stderr
    records: list[dict[str, object]] = json.loads(shown.stdout)
    return records


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = qs.copy(tmp_path)
    qs.apply(root)  # v1, promoted as usual
    assert champion(root) == 1
    return root


def test_a_version_needing_approval_waits_until_approved(tree: Path) -> None:
    set_register(tree, ", approval: required")
    set_epochs(tree, 3)
    applied = qs.apply(tree)
    assert "registered expense-model v2; alias champion not moved: awaits approval" in (
        applied.stdout
    )
    assert champion(tree) == 1
    plan = qs.pipeform(tree, "plan")
    assert plan.returncode == 0, plan.stderr
    assert "Waiting for approval or a condition:" in plan.stdout
    assert "expense-model v2 -> alias champion: awaits approval" in plan.stdout
    assert "pipeform approve expense-model@2" in plan.stdout
    waiting = qs.change(qs.plan_json(tree), qs.JOB)["waiting"]
    assert "awaits approval" in waiting

    approved = qs.pipeform(tree, "approve", "expense-model@2")
    assert approved.returncode == 0, approved.stderr
    assert "alias champion moved from v1 to v2" in approved.stdout
    assert champion(tree) == 2
    last = history(tree)[-1]
    assert last["command"] == "pipeform approve expense-model@2"
    assert "@" in str(last["who"])  # user@host
    change = last["changes"][0]  # type: ignore[index]
    assert change["from"] == 1 and change["to"] == 2 and change["action"] == "approve"
    again = qs.pipeform(tree, "plan")
    assert "Waiting for approval" not in again.stdout
    assert "No changes." in again.stdout


def test_approving_a_version_that_does_not_exist_is_one_clear_error(tree: Path) -> None:
    refused = qs.pipeform(tree, "approve", "expense-model@7")
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr
    assert "expense-model has no version 7" in refused.stderr.replace("'", "")
    assert "versions: 1" in refused.stderr
    assert champion(tree) == 1
    other = qs.pipeform(tree, "approve", "churn@1")
    assert other.returncode == 1
    assert "no applied TrainingJob registers model 'churn'" in other.stderr
    bad = qs.pipeform(tree, "approve", "expense-model")
    assert bad.returncode == 1 and "is not MODEL@VERSION" in bad.stderr


def test_rollback_moves_the_alias_back_and_journals_it(tree: Path) -> None:
    set_epochs(tree, 3)
    qs.apply(tree)
    assert champion(tree) == 2
    promoted = history(tree)[-1]["changes"]
    assert {"action": "promote", "from": 1, "to": 2}.items() <= promoted[-1].items()  # type: ignore[index]

    back = qs.pipeform(tree, "rollback", MODEL)
    assert back.returncode == 0, back.stderr
    assert "alias champion moved from v2 to v1" in back.stdout
    assert champion(tree) == 1
    entry = history(tree)[-1]
    assert entry["command"] == "pipeform rollback expense-model"
    assert entry["changes"][0]["from"] == 2 and entry["changes"][0]["to"] == 1  # type: ignore[index]
    # nothing earlier than v1: one clear error, alias unchanged
    none = qs.pipeform(tree, "rollback", MODEL)
    assert none.returncode == 1 and "--to VERSION" in none.stderr
    forward = qs.pipeform(tree, "rollback", MODEL, "--to", "2")
    assert forward.returncode == 0, forward.stderr
    assert champion(tree) == 2
    # the next plan does not undo a rollback
    qs.pipeform(tree, "rollback", MODEL)
    assert qs.pipeform(tree, "plan").stdout.count("No changes.") == 1
    assert champion(tree) == 1


def test_promote_when_naming_an_unknown_slo_points_at_the_line(tree: Path) -> None:
    set_register(tree, ", promoteWhen: {sloNotBurning: expense-model-sucess}")
    refused = qs.pipeform(tree, "validate")
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr
    lines = (tree / "training.yaml").read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if "sloNotBurning" in text)
    assert (
        f"training.yaml:{line}:" in refused.stderr
        and "refers to SLO/expense-model-sucess, which does not exist" in refused.stderr
        and "did you mean expense-model-success?" in refused.stderr
    )
