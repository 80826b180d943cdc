"""Real git repositories for the audit tests: commits made by the test."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ENV = {
    **{k: v for k, v in os.environ.items() if k != "PIPEFORM_TRAINER_COMMAND"},
    "QUICKSTART_METRICS_TOKEN": "audit-token",
    "NO_COLOR": "1",
}


def git(root: Path, *args: str, author: str = "alice") -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": author,
        "GIT_AUTHOR_EMAIL": f"{author}@example.org",
        "GIT_COMMITTER_NAME": author,
        "GIT_COMMITTER_EMAIL": f"{author}@example.org",
    }
    done = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, env=env, check=True
    )
    return done.stdout.strip()


def init(root: Path) -> str:
    git(root, "init", "-q", "-b", "main")
    (root / ".gitignore").write_text(".pipeform/\n")
    return commit(root, "first specs")


def commit(root: Path, message: str, author: str = "alice") -> str:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message, author=author)
    return git(root, "rev-parse", "HEAD")


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))
