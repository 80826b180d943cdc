"""`pipeform diff REV1 REV2 [PATH]`: spec changes between two commits, in plan form."""

from __future__ import annotations

import json
from pathlib import Path

from tests.audit.gitrepo import commit, init
from tests.conftest import run_cli

WORKSPACE = "apiVersion: pipeform/v1\nkind: Workspace\nmetadata: {name: d}\nspec: {}\n"
QUOTA = "apiVersion: pipeform/v1\nkind: Quota\nmetadata: {name: %s}\nspec: {gpus: %d}\n"


def repo(tmp: Path) -> tuple[Path, str, str]:
    root = tmp / "repo"
    specs = root / "specs"
    specs.mkdir(parents=True)
    (specs / "ws.yaml").write_text(WORKSPACE)
    (specs / "q0.yaml").write_text(QUOTA % ("q0", 1))
    (specs / "q1.yaml").write_text(QUOTA % ("q1", 1))
    first = init(root)
    (specs / "q0.yaml").write_text(QUOTA % ("q0", 4))
    (specs / "q1.yaml").unlink()
    (specs / "q2.yaml").write_text(QUOTA % ("q2", 2))
    second = commit(root, "more gpus")
    return root, first, second


def test_diff_shows_added_removed_and_changed_fields_without_touching_state(
    tmp_path: Path,
) -> None:
    root, first, second = repo(tmp_path)
    result = run_cli("diff", first, second, "specs", cwd=root)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "+ Quota/q2  will be created" in out and "- Quota/q1  will be destroyed" in out
    assert "~ Quota/q0  will be updated" in out and "~ gpus: 1 -> 4" in out
    assert "Diff: 1 to add, 1 to change, 1 to destroy." in out
    assert not (root / "specs" / ".pipeform").exists()  # no state read or made
    data = json.loads(run_cli("diff", "HEAD~1", "HEAD", "specs", "--json", cwd=root).stdout)
    assert data["changed"]["Quota/q0"] == [{"path": "spec.gpus", "before": 1, "after": 4}]


def test_an_unknown_revision_is_one_clear_error(tmp_path: Path) -> None:
    root, first, _ = repo(tmp_path)
    result = run_cli("diff", first, "no-such-rev", "specs", cwd=root)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "'no-such-rev' is not a commit" in result.stderr
