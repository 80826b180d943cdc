"""`pipeform state migrate --to FILE`: a state, its versions and its journal travel from
sqlite to postgres to s3 and back to sqlite unchanged, and a plan after each hop sees
nothing to do; a target holding another state is never overwritten."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from tests.state.conftest import Spot, make_spot
from tests.state.test_conformance import ADDRESSES, APPLY, run, write_tree


def point_workspace_at(root: Path, spot: Spot) -> None:
    """Edit the Workspace's state block, as a user does after migrating."""
    workspace = root / "pipeform.yaml"
    lines = workspace.read_text().splitlines()
    lines = [f"  state: {spot.yaml()}" if line.startswith("  state:") else line for line in lines]
    workspace.write_text("\n".join(lines) + "\n")


def migrate(current: Spot, target: Spot, tmp_path: Path) -> None:
    block = tmp_path / f"to-{target.kind}.yaml"
    block.write_text(f"state: {target.yaml()}\n")
    env = {**current.env, **target.env}
    result = run(
        Spot(current.kind, current.root, current.block, env),
        "state", "migrate", "--to", str(block), "-C", str(current.root),
    )  # fmt: skip
    assert result.returncode == 0, result
    assert "Copied the state (lineage" in result.stdout, result
    assert current.open("read").lock_holder() is None and target.open("read").lock_holder() is None


def test_migrate_round_trips_sqlite_postgres_s3_sqlite(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    hops = [
        make_spot("sqlite", root, request, "first"),
        make_spot("postgres", root, request),
        make_spot("s3", root, request),
        make_spot("sqlite", root, request, "back"),
    ]
    write_tree(hops[0])
    assert run(hops[0], *APPLY).returncode == 0
    write_tree(hops[0], gpus=8)  # an update of every Quota: more versions, more journal
    assert run(hops[0], *APPLY).returncode == 0
    assert run(hops[0], "state", "rm", "Quota/q4", "-C", str(root)).returncode == 0
    restored = run(hops[0], "state", "restore", "15", "-C", str(root))
    assert restored.returncode == 0, restored
    original = hops[0].open("read").dump()
    assert original.serial == 17 and set(original.resources) == ADDRESSES
    assert any(v.operation == "restore" for v in original.versions)
    shown = run(hops[0], "history", "--json", "-C", str(root)).stdout
    assert [a["command"] for a in json.loads(shown)] == [
        "pipeform apply", "pipeform apply",
        f"pipeform state restore 15 -C {root}",
    ]  # fmt: skip

    for current, target in itertools.pairwise(hops):
        migrate(current, target, tmp_path)
        copied = target.open("read").dump()
        assert copied == original, f"{target.kind} differs from the source"
        point_workspace_at(root, target)
        plan = run(target, "plan")
        assert plan.returncode == 0 and "No changes" in plan.stdout, plan
        history = run(target, "history", "--json", "-C", str(root))
        assert history.returncode == 0, history
        assert history.stdout == shown, target.kind
    assert hops[0].open("read").dump() == original, "the source state was changed"

    edited = run(hops[-1], *APPLY)  # the migrated state goes on from its serial
    assert edited.returncode == 0 and "No changes" in edited.stdout, edited


def test_migrate_never_overwrites_a_state_of_another_lineage(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    ours = make_spot("sqlite", tmp_path / "ours", request, "ours")
    ours.root.mkdir()
    write_tree(ours)
    assert run(ours, *APPLY).returncode == 0
    theirs = make_spot("postgres", tmp_path / "theirs", request)
    theirs.root.mkdir()
    write_tree(theirs, gpus=2)
    assert run(theirs, *APPLY).returncode == 0
    before = theirs.open("read").dump()

    block = tmp_path / "to.yaml"
    block.write_text(f"state: {theirs.yaml()}\n")
    refused = run(
        Spot("sqlite", ours.root, ours.block, theirs.env),
        "state", "migrate", "--to", str(block), "-C", str(ours.root),
    )  # fmt: skip
    assert refused.returncode == 1, refused
    message = " ".join(refused.stderr.split())
    assert f"already holds another state (lineage {before.lineage}" in message
    assert "Traceback" not in refused.output
    assert theirs.open("read").dump() == before
    assert theirs.open("read").lock_holder() is None and ours.open("read").lock_holder() is None


def test_a_bad_target_file_is_one_clear_error(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    ours = make_spot("sqlite", tmp_path / "ours", request, "ours")
    ours.root.mkdir()
    write_tree(ours)
    assert run(ours, *APPLY).returncode == 0
    block = tmp_path / "to.yaml"
    block.write_text("state: {backend: s3, bucket: x}\n")
    refused = run(ours, "state", "migrate", "--to", str(block), "-C", str(ours.root))
    assert refused.returncode == 1, refused
    assert "not a valid state block" in refused.stderr and "lockTable" in refused.stderr
    assert "Traceback" not in refused.output
