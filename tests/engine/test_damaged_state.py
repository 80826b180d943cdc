"""Damaged state: one clear error saying what is damaged and how to recover, and the ways
back (`state restore SERIAL`, `force-unlock` of a damaged lock, a warning when an empty
state sits beside objects this tree's providers made).

Each test damages a copy of a small Quota-only tree on the local provider, applied once
(serial 4: a pending record and a result for each of two Quotas), with sqlite3 the way a
bad disk, a careless script or an interrupted copy would, then runs real `pipeform`
processes against it.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from reconciler.state.model import LockInfo, hostname, now, process_start
from reconciler.state.sqlite import SqliteBackend
from tests.engine.harness import Result, lock_holder, pipeform, recorded, state_db

WORKSPACE = """
apiVersion: pipeform/v1
kind: Workspace
metadata: {name: damaged}
spec:
  defaults: {provider: local}
"""
QUOTAS = """
apiVersion: pipeform/v1
kind: Quota
metadata: {name: team-a}
spec: {gpus: 4, concurrentJobs: 2}
---
apiVersion: pipeform/v1
kind: Quota
metadata: {name: team-b}
spec: {gpus: 2}
"""
NEWEST = 4  # the serial after the first apply


def write_quotas(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "pipeform.yaml").write_text(textwrap.dedent(WORKSPACE).lstrip())
    (root / "quotas.yaml").write_text(textwrap.dedent(QUOTAS).lstrip())
    return root


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_quotas(tmp_path_factory.mktemp("damaged") / "tree")
    result = pipeform("apply", "--auto-approve", cwd=root)
    assert result.returncode == 0, result
    assert recorded(root).serial == NEWEST
    return root


@pytest.fixture
def tree(applied: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(applied, tmp_path / "tree"))


def damage(root: Path, sql: str) -> None:
    db = sqlite3.connect(state_db(root))
    try:
        db.executescript(sql)
        db.commit()
    finally:
        db.close()


def assert_clear_error(result: Result, *phrases: str) -> str:
    """Exit 1, no traceback, no "internal error", and each phrase in stderr."""
    assert result.returncode == 1, result
    assert "Traceback" not in result.output and "internal error" not in result.output, result
    message = " ".join(result.stderr.split())
    for phrase in phrases:
        assert phrase in message, result
    return message


def listed(root: Path) -> dict[str, object]:
    result = pipeform("state", "list", "--json", "-C", str(root), cwd=root)
    assert result.returncode == 0, result
    out: dict[str, object] = json.loads(result.stdout)
    return out


def assert_restored(root: Path, serial: int = NEWEST, *extra: str) -> None:
    """`state restore SERIAL` rebuilds the state; the next plan has nothing to do."""
    restored = pipeform("state", "restore", str(serial), *extra, "-C", str(root), cwd=root)
    assert restored.returncode == 0, restored
    assert f"Restored the state as at serial {serial}: 2 resources" in restored.stdout
    plan = pipeform("plan", cwd=root)
    assert plan.returncode == 0, plan
    assert "No changes" in plan.stdout, plan
    state = listed(root)
    assert state["serial"] == NEWEST + 1
    resources: list[dict[str, str]] = state["resources"]  # type: ignore[assignment]
    assert {r["address"] for r in resources} == {"Quota/team-a", "Quota/team-b"}


@pytest.mark.parametrize(
    ("data", "said"),
    [("{nope", "is not JSON"), ("[1, 2]", "is a JSON list, not an object")],
    ids=["not-json", "json-list"],
)
def test_a_damaged_record_is_named_and_restore_rebuilds_it(
    tree: Path, data: str, said: str
) -> None:
    damage(tree, f"UPDATE resources SET data='{data}' WHERE address='Quota/team-a'")
    for args in (("plan",), ("state", "list", "-C", str(tree))):
        assert_clear_error(
            pipeform(*args, cwd=tree),
            "is damaged: the record of Quota/team-a " + said,
            f"pipeform state restore {NEWEST}",
        )
    assert_restored(tree)


def test_a_serial_that_is_not_a_number_is_named_and_restore_rebuilds_it(tree: Path) -> None:
    damage(tree, "UPDATE meta SET value='x' WHERE key='serial'")
    assert_clear_error(
        pipeform("apply", "--auto-approve", cwd=tree),
        "is damaged: its serial is 'x', not a number",
        f"pipeform state restore {NEWEST}",
    )
    assert_restored(tree)


def test_a_lost_lineage_is_written_back_by_restore(tree: Path) -> None:
    lineage = recorded(tree).lineage
    damage(tree, "DELETE FROM meta WHERE key='lineage'")
    hint = ("it has lost its lineage", "pipeform.dev/lineage", f"restore {NEWEST} --lineage")
    assert_clear_error(pipeform("plan", cwd=tree), *hint)
    assert_clear_error(pipeform("state", "restore", str(NEWEST), cwd=tree), *hint)
    assert_restored(tree, NEWEST, "--lineage", lineage)
    assert recorded(tree).lineage == lineage


@pytest.mark.parametrize(
    ("table", "hint"),
    [
        ("resources", f"Rebuild it from the kept versions with pipeform state restore {NEWEST}"),
        ("versions", f"The resources are intact: pipeform state restore {NEWEST} (the current"),
        ("lock", f"Rebuild it from the kept versions with pipeform state restore {NEWEST}"),
    ],
)
def test_a_dropped_table_is_damage_not_an_empty_state(tree: Path, table: str, hint: str) -> None:
    """A dropped resources table once read as an empty state: plan offered to make
    everything again."""
    damage(tree, f"DROP TABLE {table}")
    assert_clear_error(
        pipeform("plan", cwd=tree), f"is damaged: its {table} table is missing", hint
    )
    assert_restored(tree)


def test_a_corrupt_lock_row_is_named_and_force_unlock_releases_it(tree: Path) -> None:
    damage(tree, "INSERT INTO lock VALUES (1, 'lock-7', 'garbage')")
    assert_clear_error(
        pipeform("plan", cwd=tree),
        "the state lock in",
        "is damaged: its record (lock id lock-7) holds no readable lock",
        "pipeform force-unlock lock-7",
    )
    wrong = pipeform("force-unlock", "lock-8", cwd=tree)
    assert_clear_error(wrong, "no lock with id lock-8 (the current lock is lock-7)")
    released = pipeform("force-unlock", "lock-7", cwd=tree)
    assert released.returncode == 0, released
    assert "Released the damaged lock lock-7" in released.stdout
    plan = pipeform("plan", cwd=tree)
    assert plan.returncode == 0 and "No changes" in plan.stdout, plan


def test_a_pipeform_that_is_a_file_is_named_and_left_alone(tmp_path: Path) -> None:
    root = write_quotas(tmp_path / "tree")
    (root / ".pipeform").write_text("notes\n")
    for args in (("plan",), ("apply", "--auto-approve"), ("state", "list"), ("history",)):
        assert_clear_error(
            pipeform(*args, cwd=root),
            ".pipeform is a file, but pipeform keeps its state in the directory .pipeform",
            "mv .pipeform .pipeform.bak",
        )
    assert (root / ".pipeform").read_text() == "notes\n"


def test_an_empty_state_beside_owned_objects_is_warned_about(tree: Path) -> None:
    """A 0-byte state file (truncated by a bad copy): everything would be made again
    under a new lineage; the providers' records still carry the old one."""
    old = recorded(tree).lineage
    state_db(tree).write_bytes(b"")
    plan = pipeform("plan", cwd=tree)
    assert plan.returncode == 0, plan
    warning = " ".join(plan.stderr.split())
    assert (
        "Warning: the state holds no resources, but the providers found 2 objects that "
        "pipeform made for 2 addresses of this spec tree" in warning
    ), plan
    assert "Quota/team-a (id team-a: .pipeform/data/quotas/team-a.json)" in warning
    assert "Quota/team-b (id team-b" in warning
    assert f"They belong to the state with lineage {old}" in warning
    assert "pipeform state restore SERIAL" in warning and "pipeform import ADDRESS ID" in warning
    assert state_db(tree).stat().st_size == 0, "plan wrote to the state"

    applied = pipeform("apply", "--auto-approve", cwd=tree)  # the warning comes before it acts
    assert "Warning: the state holds no resources" in applied.stderr, applied


def test_restore_refuses_an_unknown_serial_listing_the_versions(tree: Path) -> None:
    message = assert_clear_error(
        pipeform("state", "restore", "99", cwd=tree),
        "there is no state version 99; the kept versions are:",
        "1 ",
        "put Quota/team-a",
        f"{NEWEST} ",
    )
    assert "put Quota/team-b" in message
    assert recorded(tree).serial == NEWEST


def test_restore_is_one_new_version_equal_to_the_old_one_and_journalled(tree: Path) -> None:
    quotas = tree / "quotas.yaml"
    quotas.write_text(quotas.read_text().replace("gpus: 4", "gpus: 8"))
    changed = pipeform("apply", "--auto-approve", cwd=tree)
    assert changed.returncode == 0, changed
    after_change = recorded(tree).serial

    restored = pipeform("state", "restore", str(NEWEST), cwd=tree)
    assert restored.returncode == 0, restored
    assert "(0 added, 1 changed, 0 removed)" in restored.stdout
    backend = SqliteBackend(state_db(tree))
    try:
        now_state = backend.read()
        assert now_state.serial == after_change + 1
        assert now_state.resources == backend.state_at(NEWEST).resources
        assert backend.state_at(now_state.serial) == now_state
        assert backend.state_at(after_change).resources != now_state.resources
    finally:
        backend.close()
    versions = pipeform("state", "versions", cwd=tree)
    last = versions.stdout.splitlines()[-1].split()
    assert last[0] == str(after_change + 1)
    assert last[2:] == ["restore", "the", "whole", "state,", "as", "at", "serial", str(NEWEST)]
    history = pipeform("history", cwd=tree)
    assert f"state restore {NEWEST}" in history.stdout, history
    assert "Quota/team-a" in history.stdout.split(f"state restore {NEWEST}")[1]
    plan = pipeform("plan", cwd=tree)  # the state says 4 GPUs again; the spec says 8
    assert "Quota/team-a" in plan.stdout and "1 to change" in plan.stdout, plan


def test_restore_waits_for_the_lock(tree: Path) -> None:
    backend = SqliteBackend(state_db(tree))
    holder = LockInfo(str(uuid.uuid4()), "ci@runner-3", "runner-3", 4242, "pipeform apply", now())
    backend.acquire_lock(holder)
    backend.close()
    assert_clear_error(
        pipeform("state", "restore", "2", cwd=tree),
        "the state is locked by another pipeform process",
    )
    assert recorded(tree).serial == NEWEST


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_force_unlock_of_a_live_holder_asks_for_force(tree: Path) -> None:
    with subprocess.Popen(["sleep", "120"]) as live:
        try:
            holder = LockInfo(
                str(uuid.uuid4()),
                "root@here",
                hostname(),
                live.pid,
                "pipeform apply",
                now(),
                process_start(live.pid),
            )
            backend = SqliteBackend(state_db(tree))
            backend.acquire_lock(holder)
            backend.close()
            refused = pipeform("force-unlock", holder.id, cwd=tree)
            assert_clear_error(
                refused,
                f"(pid {live.pid}, `pipeform apply`)",
                f"process {live.pid} still runs on this host",
                f"pipeform force-unlock --force {holder.id}",
            )
            assert lock_holder(tree) == holder, "the lock of a running process was released"
            forced = pipeform("force-unlock", "--force", holder.id, cwd=tree)
            assert forced.returncode == 0, forced
            assert "warning:" in forced.stderr and "still runs on this host" in forced.stderr
            assert lock_holder(tree) is None
        finally:
            live.kill()
