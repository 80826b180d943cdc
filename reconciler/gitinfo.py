"""Which git commit a spec tree is at: journaled with every apply and recorded in each
trained model's lineage. Standard library only; ``git`` runs only when asked."""

from __future__ import annotations

import re
from pathlib import Path

_COMMIT = re.compile(r"[0-9a-f]{40,64}")  # SHA-1 or SHA-256 object names
OWN_DIR = ":(exclude).pipeform"  # a pathspec: pipeform's working directory under root


def head_commit(root: Path, mark_dirty: bool = False) -> str | None:
    """The commit checked out at root, or None outside a git checkout (or without git).

    With ``mark_dirty``, ``-dirty`` is appended when files under root have uncommitted
    changes (edited, staged, or new and not ignored), so a journal entry or a model's
    lineage never claims a commit its specs did not come from. pipeform's own working
    directory (``.pipeform``: state, spec cache, the local provider's data) is not specs,
    and does not count.
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
        if mark_dirty and git("status", "--porcelain", "--", ".", OWN_DIR).stdout.strip():
            return commit + "-dirty"
    except (OSError, subprocess.SubprocessError):
        return None
    return commit
