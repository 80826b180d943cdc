"""Shared fixtures: paths, copies of the example trees, a spec-tree writer, and the
installed `pipeform` command.

No test touches the checkout's ``specs/``: a user who ran ``make quickstart`` has a
``specs/examples/quickstart/.pipeform`` (state, data, the spec cache) there, and the suite
must pass, and leave it as it was, all the same. A test that reads an example (plans,
applies, validates or loads it, or reads its YAML or data) asks ``copy_example`` for a
fresh copy in a temporary directory. ``pytest_sessionfinish`` fails the run when anything
under ``specs/`` was created, changed or removed while the suite ran.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Tests reach only servers they start on 127.0.0.1: boto3's credential chain must not ask
# the EC2 instance metadata address (169.254.169.254) when a test has no credentials.
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
PIPEFORM = Path(sys.executable).with_name("pipeform")

#: copy_example's signature: the example's name (a folder of specs/examples) -> its copy
CopyExample = Callable[..., Path]


@pytest.fixture(scope="session")
def copy_example(tmp_path_factory: pytest.TempPathFactory) -> CopyExample:
    """``copy_example(name="quickstart")``: a fresh copy of ``specs/examples/<name>`` in a
    temporary directory of its own on every call, without the checkout's ``.pipeform``.
    Session-scoped so that module-scoped fixtures can use it too."""

    def copy(name: str = "quickstart") -> Path:
        target = tmp_path_factory.mktemp(name) / name
        shutil.copytree(
            SPECS / "examples" / name, target, ignore=shutil.ignore_patterns(".pipeform")
        )
        return target

    return copy


@pytest.fixture
def write_tree(tmp_path: Path) -> Callable[..., Path]:
    """Write files (name -> YAML text, dedented) into a fresh spec tree and return it."""

    def write(**files: str) -> Path:
        for name, text in files.items():
            path = tmp_path / name.replace("__", "/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return tmp_path

    return write


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run the real `pipeform` console script."""
    return subprocess.run(
        [str(PIPEFORM), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
        check=False,
    )


# -- the guard: the suite leaves the checkout's specs/ as it found it ----------------------

Listing = dict[str, tuple[bool, int, int]]  # relative path -> (is a directory, size, mtime)


def specs_listing(root: Path = SPECS) -> Listing:
    """Every file and directory under root, with its size and modification time."""
    found: Listing = {}
    for directory, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(directory, name)
            info = path.lstat()
            is_dir = path.is_dir() and not path.is_symlink()
            found[path.relative_to(root).as_posix()] = (
                is_dir,
                0 if is_dir else info.st_size,
                0 if is_dir else info.st_mtime_ns,
            )
    return found


def specs_changes(before: Listing, after: Listing) -> list[str]:
    """What changed between two listings, one line per path."""
    both = sorted(before.keys() & after.keys())
    lines = [f"created specs/{p}" for p in sorted(after.keys() - before.keys())]
    lines += [f"removed specs/{p}" for p in sorted(before.keys() - after.keys())]
    lines += [f"modified specs/{p}" for p in both if before[p] != after[p]]
    return lines


_SPECS_BEFORE = pytest.StashKey[Listing]()
_SPECS_CHANGES = pytest.StashKey[list[str]]()


def pytest_sessionstart(session: pytest.Session) -> None:
    session.stash[_SPECS_BEFORE] = specs_listing()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when the suite changed anything under the checkout's specs/ (reported
    in the terminal summary)."""
    before = session.stash.get(_SPECS_BEFORE, None)
    changes = [] if before is None else specs_changes(before, specs_listing())
    session.config.stash[_SPECS_CHANGES] = changes
    if changes:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    changes = terminalreporter.config.stash.get(_SPECS_CHANGES, [])
    if not changes:
        return
    terminalreporter.write_sep("=", "the suite changed the checkout's specs/", red=True)
    for line in changes[:20]:
        terminalreporter.write_line(f"  {line}")
    if len(changes) > 20:
        terminalreporter.write_line(f"  ... and {len(changes) - 20} more")
    terminalreporter.write_line(
        "Tests must not plan, apply, validate or load a tree under specs/: use the "
        "copy_example fixture (tests/conftest.py), which copies it to a temporary directory."
    )


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """moto_server (the AWS API emulator) on 127.0.0.1 for the session: tests/aws/moto.py."""
    from tests.aws import moto

    yield from moto.session(tmp_path_factory.mktemp("moto"))


@pytest.fixture
def aws(moto_server: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The emulator, emptied, with fake credentials in the environment."""
    from tests.aws import moto

    for name, value in moto.CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    moto_server.reset()
    return moto_server


@pytest.fixture
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A Kubernetes API server for the tests (tests/kubernetes/apiserver), a kubeconfig
    for it, and the kubernetes provider registered: tests/kubernetes/cluster.py."""
    from tests.kubernetes import cluster

    yield from cluster.cluster(tmp_path_factory.mktemp("kube"))
