"""The container executor run by an unprivileged user (rootless podman): the image's user
is mapped to that user (``--userns=keep-id``), so the run's outputs are that user's and
the model is registered, with nothing handed over."""

from __future__ import annotations

import pwd
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from providers.local.container import PODMAN_GLOBAL
from tests.conftest import ROOT
from tests.container.conftest import PLANTED, podman
from tests.container.quickstart import copy, only_run, record, result
from tests.container.rootless import as_user, podman_as, run, set_up_user, with_python

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def rootless_user() -> Iterator[pwd.struct_passwd]:
    account = set_up_user()
    yield account
    # stops the user's podman pause process, which would otherwise outlive the tests
    subprocess.run(as_user(account, ["podman", "system", "migrate"]), cwd="/", check=False)


@pytest.fixture(scope="session")
def rootless_image(trainer_image: str, rootless_user: pwd.struct_passwd) -> str:
    """The trainer image in the user's own store: root's copy, saved and loaded (about
    30 s here; building it as the user would need the base, which debootstrap makes as
    root), unless the user already holds the same image."""
    inspect = ("image", "inspect", "--format", "{{.Id}}", trainer_image)
    wanted = podman(*inspect).stdout.strip()
    held = subprocess.run(
        podman_as(rootless_user, *inspect), capture_output=True, text=True, cwd="/", check=False
    )
    if held.stdout.strip() != wanted:
        started = time.monotonic()
        saved = subprocess.Popen(
            ["podman", *PODMAN_GLOBAL, "save", trainer_image],
            stdout=subprocess.PIPE,
        )
        loaded = subprocess.run(
            podman_as(rootless_user, "load", "--quiet"),
            stdin=saved.stdout,
            capture_output=True,
            text=True,
            cwd="/",
            timeout=600,
            check=False,
        )
        assert saved.wait() == 0 and loaded.returncode == 0, loaded.stderr
        print(
            f"trainer image loaded into {rootless_user.pw_name}'s store in "
            f"{time.monotonic() - started:.1f} s"
        )
        run(podman_as(rootless_user, "image", "prune", "--force"))  # earlier builds
    return trainer_image


@pytest.fixture
def user_tree(rootless_user: pwd.struct_passwd, rootless_image: str) -> Iterator[Path]:
    """The quickstart with the container executor, in a folder the user owns (pytest's
    tmp_path is root's only)."""
    top = Path(tempfile.mkdtemp(prefix="pipeform-rootless-"))
    try:
        tree = copy(top, "container", rootless_image)
        for path in (top, *top.rglob("*")):
            shutil.chown(path, rootless_user.pw_uid, rootless_user.pw_gid)
        yield tree
    finally:
        shutil.rmtree(top, ignore_errors=True)


def apply_as(account: pwd.struct_passwd, tree: Path, hold: Path, expect: int, **env: str) -> str:
    """pipeform apply run by the user; its output."""
    pipeform = Path(sys.executable).with_name("pipeform")
    argv = [str(pipeform), "apply", "--auto-approve"]
    env = {"PYTHONPATH": str(ROOT), "QUICKSTART_METRICS_TOKEN": PLANTED, "NO_COLOR": "1", **env}
    applied = subprocess.run(
        with_python(account, argv, hold, **env),
        capture_output=True,
        text=True,
        cwd=tree,
        timeout=600,
        check=False,
    )
    out = applied.stdout + applied.stderr
    assert applied.returncode == expect, out
    assert "Traceback" not in out and PLANTED not in out
    return out


def test_an_unprivileged_user_trains_and_owns_what_the_container_wrote(
    tmp_path: Path, rootless_user: pwd.struct_passwd, user_tree: Path
) -> None:
    account, tree = rootless_user, user_tree
    out = apply_as(account, tree, tmp_path / "hold", 0)
    assert "registered expense-model v1" in out
    # every file the apply and the container wrote is the user's
    state = tree / ".pipeform"
    strangers = [p for p in (state, *state.rglob("*")) if p.lstat().st_uid != account.pw_uid]
    assert strangers == []
    boxed = only_run(tree)
    assert record(boxed)["status"] == "succeeded"
    assert "@sha256:" in record(boxed)["image"]
    assert result(boxed)["metrics"]["auc"] > 0.7
    registry = state / "data" / "registry" / "registry.db"
    with closing(sqlite3.connect(registry)) as db:
        versions = db.execute("SELECT model, version FROM versions").fetchall()
    assert versions == [("expense-model", 1)]
    listed = subprocess.run(
        podman_as(account, "ps", "--all", "--format", "{{.Names}}"),
        capture_output=True,
        text=True,
        cwd="/",
        check=False,
    )
    assert listed.returncode == 0 and listed.stdout.strip() == "", listed.stdout


def test_rootless_podman_that_cannot_run_or_lacks_the_image_is_one_clear_error(
    tmp_path: Path, rootless_user: pwd.struct_passwd, user_tree: Path, rootless_image: str
) -> None:
    # a runtime directory that is not the user's (what su without -l can leave behind)
    out = apply_as(rootless_user, user_tree, tmp_path / "hold", 1, XDG_RUNTIME_DIR="/tmp")
    assert "rootless podman failed: " in out and "is not owned by the current user" in out
    assert "XDG_RUNTIME_DIR unset or a directory you own" in out
    assert "does not exist on this machine" not in out
    workspace = user_tree / "pipeform.yaml"
    workspace.write_text(
        workspace.read_text().replace(rootless_image, "pipeform-trainer:no-such-tag")
    )
    out = apply_as(rootless_user, user_tree, tmp_path / "hold2", 1)
    assert "'pipeform-trainer:no-such-tag' does not exist on this machine (rootless" in out
    assert "sudo podman save pipeform-trainer:no-such-tag | podman load" in out
