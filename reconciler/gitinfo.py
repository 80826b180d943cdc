"""Which git commit a spec tree is at: journaled with every apply and recorded in each
trained model's lineage. Standard library only; ``git`` runs only when asked."""

from __future__ import annotations

import re
from pathlib import Path

_COMMIT = re.compile(r"[0-9a-f]{40,64}")  # SHA-1 or SHA-256 object names


def head_commit(root: Path, mark_dirty: bool = False) -> str | None:
    """The commit checked out at root, or None outside a git checkout (or without git).

    With ``mark_dirty``, ``-dirty`` is appended when files under root have uncommitted
    changes, so a journal entry never claims a commit its specs did not come from.
    """
    import subprocess

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )

    try:
        head = git("rev-parse", "HEAD")
        commit = head.stdout.strip()
        if head.returncode != 0 or not _COMMIT.fullmatch(commit):
            return None
        if mark_dirty and git("status", "--porcelain", "--", ".").stdout.strip():
            return commit + "-dirty"
    except (OSError, subprocess.SubprocessError):
        return None
    return commit
