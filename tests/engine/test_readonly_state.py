"""Read-only commands create nothing and work on a read-only checkout (an auditor's);
writing commands on a state they may not write fail with one clear error.

The tests run as root, and root ignores permission bits, so a chmod would prove nothing:
- a read-only checkout or state file is a read-only bind mount (``mount --bind``, then
  ``remount,ro,bind``), so writes fail with EROFS as on a read-only volume;
- a user who may not write the tree is ``nobody`` through ``setpriv``, keeping only
  CAP_DAC_READ_SEARCH so that it can still read the interpreter (under /root) and the
  tree, but may write nothing it does not own (EACCES).
Each is skipped where the machine does not allow it (not root, no mount, no setpriv).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.engine.harness import PIPEFORM, Result, env, pipeform, recorded, state_db
from tests.engine.test_damaged_state import NEWEST, assert_clear_error, write_quotas
from tests.integration.servers import unavailable

QUICKSTART = Path(__file__).resolve().parents[2] / "specs" / "examples" / "quickstart"
READ_ONLY = (
    ("validate",),
    ("graph",),
    ("history",),
    ("state", "list"),
    ("state", "versions"),
    ("state", "show", "Quota/team-a"),
)


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_quotas(tmp_path_factory.mktemp("readonly") / "tree")
    result = pipeform("apply", "--auto-approve", cwd=root)
    assert result.returncode == 0, result
    return root


def _mount(*args: str | Path) -> None:
    subprocess.run(["mount", *map(str, args)], check=True, capture_output=True)


@contextmanager
def read_only(source: Path, target: Path) -> Iterator[Path]:
    """source, seen read-only at target (a file or a directory), for the with block."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        unavailable("needs root and mount for a read-only bind mount")
    if source.is_dir():
        target.mkdir(parents=True, exist_ok=True)
    try:
        _mount("--bind", source, target)
    except subprocess.CalledProcessError as exc:
        unavailable(f"cannot bind-mount here: {exc.stderr.decode().strip()}")
    try:
        _mount("-o", "remount,ro,bind", target)
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True)


def test_read_only_commands_on_a_tree_never_applied_create_nothing(tmp_path: Path) -> None:
    root = write_quotas(tmp_path / "tree")
    for args in READ_ONLY:
        pipeform(*args, cwd=root)
        assert not (root / ".pipeform").exists(), f"pipeform {' '.join(args)} created .pipeform"
    plan = pipeform("plan", cwd=root)
    assert plan.returncode == 0 and "2 to add" in plan.stdout, plan
    assert "Warning" not in plan.stderr, "no object exists: nothing to warn about"
    assert not (root / ".pipeform").exists(), "plan created .pipeform"
    listed = pipeform("state", "list", "--json", cwd=root)
    assert json.loads(listed.stdout)["resources"] == []


def test_an_auditor_reads_a_read_only_checkout(applied: Path, tmp_path: Path) -> None:
    with read_only(applied, tmp_path / "audit") as root:
        results = {args: pipeform(*args, cwd=root) for args in READ_ONLY}
        for result in results.values():
            assert result.returncode == 0, result
        assert "Quota/team-a" in results[("state", "list")].stdout
        assert "Quota/team-b" in results[("state", "list")].stdout
        assert '"status": "ready"' in results[("state", "show", "Quota/team-a")].stdout
        assert len(results[("state", "versions")].stdout.splitlines()) == NEWEST
        assert "pipeform apply" in results[("history",)].stdout
        plan = pipeform("plan", cwd=root)  # plan takes the state lock: it must write
        assert_clear_error(
            plan, "is read-only", "this command must write to it", "state list, state show"
        )


def test_plan_of_a_read_only_tree_never_applied(tmp_path: Path) -> None:
    source = shutil.copytree(QUICKSTART, tmp_path / "quickstart")
    shutil.rmtree(source / ".pipeform", ignore_errors=True)
    with read_only(source, tmp_path / "checkout") as root:
        plan = pipeform("plan", cwd=root)
        assert plan.returncode == 0, plan
        assert "to add" in plan.stdout
    assert not (source / ".pipeform").exists()


def test_a_read_only_state_file_is_refused_with_how_to_fix_it(
    applied: Path, tmp_path: Path
) -> None:
    root = Path(shutil.copytree(applied, tmp_path / "tree"))
    before = recorded(root)
    with read_only(state_db(root), state_db(root)):
        for args in (("plan",), ("apply", "--auto-approve"), ("state", "rm", "Quota/team-a")):
            assert_clear_error(
                pipeform(*args, cwd=root),
                f"the state {state_db(Path('.'))} is read-only",
                "attempt to write a readonly database",
                "Make the file and its directory .pipeform writable by this user",
            )
        listed = pipeform("state", "list", cwd=root)
        assert listed.returncode == 0 and "Quota/team-a" in listed.stdout, listed
    assert recorded(root) == before


def as_nobody(*args: str, cwd: Path) -> Result:
    """`pipeform ARGS` as the user nobody, who can read everything and write nothing here."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        unavailable("needs root and setpriv to drop privileges")
    caps = ("--inh-caps", "+dac_read_search", "--ambient-caps", "+dac_read_search")
    command = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *caps]
    done = subprocess.run(
        [*command, str(PIPEFORM), *args],
        cwd=cwd,
        env=env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    return Result(args, done.returncode, done.stdout, done.stderr, 0, 0.0)


def test_a_tree_the_user_may_not_write(tmp_path: Path) -> None:
    root = write_quotas(tmp_path / "tree")
    applied = as_nobody("apply", "--auto-approve", cwd=root)
    assert_clear_error(
        applied,
        "cannot create the state .pipeform/state.db: .pipeform cannot be written "
        "(permission denied)",
        "Run the command as a user who may write the spec tree",
    )
    planned = as_nobody("plan", cwd=root)
    assert planned.returncode == 0 and "2 to add" in planned.stdout, planned
    assert not (root / ".pipeform").exists()
