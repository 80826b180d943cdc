"""`pipeform history`: the hash chain that shows an edited or deleted journal entry, and
the ADDR and --since filters."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_cli

WORKSPACE = "apiVersion: pipeform/v1\nkind: Workspace\nmetadata: {name: h}\nspec: {}\n"
QUOTA = "apiVersion: pipeform/v1\nkind: Quota\nmetadata: {name: q%d}\nspec: {gpus: %d}\n"


def write_quotas(root: Path, gpus: int, count: int = 2) -> None:
    for i in range(count):
        (root / f"q{i}.yaml").write_text(QUOTA % (i, gpus))


def apply(root: Path) -> None:
    result = run_cli("apply", "--auto-approve", str(root), cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr


def history(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = run_cli("history", "-C", str(root), *args)
    assert "Traceback" not in result.stdout + result.stderr
    return result


def tree(tmp: Path, applies: int) -> Path:
    root = tmp / "tree"
    root.mkdir()
    (root / "ws.yaml").write_text(WORKSPACE)
    for gpus in range(1, applies + 1):
        write_quotas(root, gpus)
        apply(root)
    return root


def db(root: Path) -> sqlite3.Connection:
    return sqlite3.connect(root / ".pipeform" / "state.db", isolation_level=None)


def test_an_untouched_journal_verifies(tmp_path: Path) -> None:
    root = tree(tmp_path, 2)
    result = history(root, "--verify")
    assert result.returncode == 0, result.stderr
    assert "Journal intact" in result.stdout and "Head: " in result.stdout


def test_a_row_edited_with_sqlite3_is_reported_by_its_entry(tmp_path: Path) -> None:
    root = tree(tmp_path, 2)
    with db(root) as conn:
        data = json.loads(conn.execute("SELECT data FROM journal WHERE id=3").fetchone()[0])
        data["who"] = "mallory@elsewhere"
        conn.execute("UPDATE journal SET data=? WHERE id=3", (json.dumps(data),))
    result = history(root, "--verify")
    assert result.returncode == 1
    assert "journal entry 3 (pipeform apply at" in result.stderr and "was edited" in result.stderr
    assert "Journal NOT intact" in result.stdout


def test_a_deleted_row_and_a_deleted_newest_row_are_reported(tmp_path: Path) -> None:
    root = tree(tmp_path, 2)
    with db(root) as conn:
        newest = conn.execute("SELECT max(id) FROM journal").fetchone()[0]
        conn.execute("DELETE FROM journal WHERE id IN (2, ?)", (newest,))
    result = history(root, "--verify", "--json")
    assert result.returncode == 1
    problems = json.loads(result.stdout)["problems"]
    assert any("journal entry 2 deleted" in p for p in problems), problems
    assert any(f"newest journal entry was {newest}" in p for p in problems), problems


def test_a_journal_older_than_the_chain_stays_readable_and_reads_as_unchained(
    tmp_path: Path,
) -> None:
    root = tree(tmp_path, 1)
    with db(root) as conn:  # back to the journal's old shape: (id, data), no head
        conn.execute("CREATE TABLE old (id INTEGER PRIMARY KEY AUTOINCREMENT, data TEXT NOT NULL)")
        conn.execute("INSERT INTO old SELECT id, data FROM journal")
        conn.execute("DROP TABLE journal")
        conn.execute("ALTER TABLE old RENAME TO journal")
        conn.execute("DELETE FROM meta WHERE key='journal_head'")
        old_rows = conn.execute("SELECT count(*) FROM journal").fetchone()[0]
    shown = history(root, "--verify")  # read-only: nothing migrated yet
    assert shown.returncode == 0 and f"{old_rows} older entries predate the chain" in shown.stdout
    write_quotas(root, 7)
    apply(root)  # migrates, then chains its own entries after the old ones
    shown = history(root, "--verify")
    assert shown.returncode == 0, shown.stderr
    assert f"{old_rows} older entries predate the chain" in shown.stdout
    assert "2 changes: 2 succeeded" in history(root).stdout


def test_history_of_one_address_since_a_date(tmp_path: Path) -> None:
    root = tree(tmp_path, 2)
    (root / "q1.yaml").unlink()
    write_quotas(root, 9, count=1)
    apply(root)  # updates q0, deletes q1
    shown = json.loads(history(root, "Quota/q1", "--json").stdout)
    assert [c["action"] for r in shown for c in r["changes"]][-1] == "delete"
    assert all(c["address"] == "Quota/q1" for r in shown for c in r["changes"])
    assert len(shown) == 3  # pending records + create, update, delete: q1's applies only
    assert json.loads(history(root, "--since", "2999-01-01", "--json").stdout) == []
    assert len(json.loads(history(root, "--since", "2000-01-01", "--json").stdout)) >= 3


@pytest.mark.parametrize("since", ["yesterday", "2026-13-01"])
def test_a_bad_since_is_one_clear_error(tmp_path: Path, since: str) -> None:
    result = history(tmp_path, "--since", since)
    assert result.returncode == 1
    assert "is not a date" in result.stderr
