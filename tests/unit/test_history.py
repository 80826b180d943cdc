"""`pipeform history` as an auditor reads it: one entry per apply, its changes under it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_cli

WORKSPACE = "apiVersion: pipeform/v1\nkind: Workspace\nmetadata: {name: h}\nspec: {}\n"
QUOTA = "apiVersion: pipeform/v1\nkind: Quota\nmetadata: {name: q%d}\nspec: {gpus: %d}\n"
QUOTAS = 8  # an apply writes QUOTAS + 2 journal rows: four applies pass 20 rows


def write_quotas(root: Path, gpus: int) -> None:
    for i in range(QUOTAS):
        (root / f"q{i}.yaml").write_text(QUOTA % (i, gpus))


def apply(root: Path) -> None:
    result = run_cli("apply", "--auto-approve", str(root), cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def four_applies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four applies of eight Quotas each (the first creates them, the others update them)."""
    root = tmp_path_factory.mktemp("history")
    (root / "ws.yaml").write_text(WORKSPACE)
    for gpus in range(1, 5):
        write_quotas(root, gpus)
        apply(root)
    return root


def history(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = run_cli("history", "-C", str(root), *args)
    assert result.returncode == 0, result.stderr
    return result


def headers(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith(" ")]


def test_limit_counts_applies_and_each_shows_all_its_changes(four_applies: Path) -> None:
    shown = history(four_applies, "--limit", "2").stdout
    assert len(headers(shown)) == 2
    assert all("8 changes: 8 succeeded" in h for h in headers(shown))
    assert shown.count("Quota/q") == 2 * QUOTAS
    assert "serial 24->32" in shown and "serial 32->40" in shown  # the newest two


def test_the_default_keeps_older_applies(four_applies: Path) -> None:
    shown = history(four_applies).stdout
    assert len(headers(shown)) == 4
    assert "serial 0->16" in headers(shown)[0]  # pending records, then the four creates


def test_json_is_one_finished_object_per_apply_with_its_changes_nested(
    four_applies: Path,
) -> None:
    body = json.loads(history(four_applies, "--json").stdout)
    assert [(a["serial_before"], a["serial_after"]) for a in body] == [
        (0, 16),
        (16, 24),
        (24, 32),
        (32, 40),
    ]
    assert all(a["finished_at"] and a["status"] == "succeeded" for a in body)
    last = body[-1]
    assert sorted(c["address"] for c in last["changes"]) == [f"Quota/q{i}" for i in range(QUOTAS)]
    assert {(c["action"], c["status"]) for c in last["changes"]} == {("update", "succeeded")}
    assert len(json.loads(history(four_applies, "--json", "--limit", "1").stdout)) == 1


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_an_apply_of_uncommitted_specs_keeps_its_dirty_mark(tmp_path: Path) -> None:
    (tmp_path / "ws.yaml").write_text(WORKSPACE)
    write_quotas(tmp_path, 1)
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "specs")
    commit = git(tmp_path, "rev-parse", "HEAD")
    apply(tmp_path)  # committed specs (the state pipeform writes beside them does not count)
    write_quotas(tmp_path, 2)
    apply(tmp_path)  # the same commit, edited
    clean, dirty = headers(history(tmp_path).stdout)
    assert f"commit {commit[:12]}  " in clean
    assert f"commit {commit[:12]}-dirty  " in dirty
    body = json.loads(history(tmp_path, "--json").stdout)
    assert [a["spec_commit"] for a in body] == [commit, commit + "-dirty"]
