"""The controller's working clone, driven with the git CLI.

The clone lives under the controller's directory; each sync fetches the branch and
checks its head out (detached), leaving untracked files (the tree's ``.pipeform``:
state, spec cache, data) in place. A first clone is made beside the final path and
renamed into place, so two controllers starting at once never share a half-made clone.
"""

from __future__ import annotations

import os
import re
import subprocess
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from reconciler.diagnostics import PipeformError

TIMEOUT = 120.0
_SHA = re.compile(r"[0-9a-f]{40,64}")


@dataclass(frozen=True)
class Commit:
    sha: str
    author: str
    message: str  # the subject line

    @property
    def short(self) -> str:
        return self.sha[:7]


def redact_url(url: str) -> str:
    """A repository URL without its credentials (``https://user:token@host/...``)."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=f"***@{host}"))


class GitError(PipeformError):
    pass


class Clone:
    def __init__(self, repo: str, branch: str, path: Path) -> None:
        self.repo = repo
        self.branch = branch
        self.path = path

    def _git(self, *args: str, cwd: Path | None = None) -> str:
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
        command = ["git", *args]
        try:
            done = subprocess.run(
                command,
                cwd=cwd or self.path,
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
                env=env,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise GitError(f"git {args[0]} failed: {exc}") from None
        if done.returncode != 0:
            # git's message may quote the URL with its credentials: redact it
            detail = done.stderr.strip().replace(self.repo, redact_url(self.repo))
            lines = detail.splitlines()[-3:]
            raise GitError(f"git {args[0]} failed: {' '.join(lines) or done.returncode}")
        return done.stdout

    def ensure(self) -> None:
        if (self.path / ".git").exists():
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        making = self.path.with_name(f"{self.path.name}.making-{os.getpid()}")
        self._git(
            "clone", "--quiet", "--no-checkout", "--", self.repo, str(making), cwd=self.path.parent
        )
        try:
            making.rename(self.path)
        except OSError:  # another controller made it first
            import shutil

            shutil.rmtree(making, ignore_errors=True)

    def sync(self) -> Commit:
        """Fetch the branch and check out its head; the commit now checked out."""
        self.ensure()
        ref = f"refs/remotes/origin/{self.branch}"
        self._git("fetch", "--quiet", "--prune", "origin", f"+refs/heads/{self.branch}:{ref}")
        self._git("checkout", "--quiet", "--force", "--detach", ref)
        return self.head()

    def head(self) -> Commit:
        out = self._git("log", "-1", "--format=%H%x00%an%x00%s", "HEAD")
        sha, author, message = [*out.rstrip("\n").split("\x00"), "", ""][:3]
        if not _SHA.fullmatch(sha):
            raise GitError(f"git log gave no commit for {self.branch}")
        return Commit(sha, author, message)
