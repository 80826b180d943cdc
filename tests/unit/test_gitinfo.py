"""The spec tree's git commit, as the apply journal and model lineage record it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from reconciler.gitinfo import head_commit


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_commit_and_dirty_mark(tmp_path: Path) -> None:
    assert head_commit(tmp_path) is None  # not a checkout
    git(tmp_path, "init", "-q")
    assert head_commit(tmp_path) is None  # no commit yet
    (tmp_path / "specs.yaml").write_text("kind: Quota\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "specs")
    commit = git(tmp_path, "rev-parse", "HEAD")
    assert head_commit(tmp_path) == commit
    assert head_commit(tmp_path, mark_dirty=True) == commit
    (tmp_path / "specs.yaml").write_text("kind: Secret\n")
    assert head_commit(tmp_path, mark_dirty=True) == commit + "-dirty"
    assert head_commit(tmp_path) == commit  # lineage names the commit alone


def test_pipeforms_own_directory_does_not_make_the_specs_dirty(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    (tmp_path / "specs.yaml").write_text("kind: Quota\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "specs")
    commit = git(tmp_path, "rev-parse", "HEAD")
    (tmp_path / ".pipeform").mkdir()
    (tmp_path / ".pipeform" / "state.db").write_text("state")
    assert head_commit(tmp_path, mark_dirty=True) == commit
    (tmp_path / "new.yaml").write_text("kind: Secret\n")  # a new spec file is uncommitted
    assert head_commit(tmp_path, mark_dirty=True) == commit + "-dirty"
