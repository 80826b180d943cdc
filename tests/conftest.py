"""Shared fixtures: paths, a spec-tree writer, and the installed `pipeform` command."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "specs" / "examples" / "quickstart"
PIPEFORM = Path(sys.executable).with_name("pipeform")


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
