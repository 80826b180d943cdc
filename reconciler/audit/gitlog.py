"""The spec tree's git history, read with the git CLI: commit details, a spec file at a
commit, and the commit that introduced a field's current value.

Values are read from the YAML at each commit with PyYAML's safe loader (the documents are
not validated: an old commit may not validate under today's models, and its values are
still what it said). A commit named with ``-dirty`` (specs with uncommitted changes) is
never read as the clean commit: callers are told, and the working file stands for it.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.diagnostics import PipeformError

_MISSING = object()


@dataclass(frozen=True)
class Commit:
    sha: str
    author: str
    date: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return dict(self.__dict__)

    def short(self) -> str:
        return f'{self.sha[:12]} "{self.message}" ({self.author}, {self.date[:10]})'


def git(root: Path, *args: str, check: bool = True) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise PipeformError(f"cannot run git in {root}: {exc}") from None
    if check and done.returncode != 0:
        detail = done.stderr.strip().splitlines()[-1:] or ["no detail"]
        raise PipeformError(f"git {args[0]} failed in {root}: {detail[0]}")
    return done.stdout


def commit_info(root: Path, rev: str) -> Commit | None:
    """A commit's details, or None when root's repository does not have it."""
    out = git(root, "show", "-s", "--format=%H%x00%an <%ae>%x00%aI%x00%s", rev, "--", check=False)
    parts = out.strip().split("\x00")
    return Commit(*parts) if len(parts) == 4 else None


def file_at(root: Path, rev: str, path: Path) -> str | None:
    """A file's text at a commit (path relative to root), None where it did not exist."""
    done = subprocess.run(
        ["git", "-C", str(root), "show", f"{rev}:./{path.as_posix()}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return done.stdout if done.returncode == 0 else None


def document_in(text: str | None, kind: str, name: str) -> dict[str, Any] | None:
    """The document of kind and name in one YAML file's text."""
    import yaml

    if text is None:
        return None
    try:
        for doc in yaml.safe_load_all(text):
            if isinstance(doc, dict) and doc.get("kind") == kind:
                meta = doc.get("metadata")
                if isinstance(meta, dict) and meta.get("name") == name:
                    return doc
    except yaml.YAMLError:
        return None
    return None


def find_document(root: Path, kind: str, name: str) -> Path | None:
    """The file under root (relative to it) that declares kind/name today."""
    for path in sorted([*root.rglob("*.yaml"), *root.rglob("*.yml")]):
        if ".pipeform" in path.relative_to(root).parts:
            continue
        if document_in(path.read_text(encoding="utf-8", errors="replace"), kind, name):
            return path.relative_to(root)
    return None


def value_at(doc: dict[str, Any] | None, dotted: str) -> Any:
    node: Any = doc
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return _MISSING
        node = node[key]
    return node


def introduced(
    root: Path, rev: str, path: Path, kind: str, name: str, dotted: str
) -> tuple[Any, str | None]:
    """(the value at rev, the commit that introduced it): walking back from rev over the
    commits that touched the file, the oldest commit after which the value stayed as at
    rev. The commit is None when the value is absent at rev."""
    commits = git(root, "log", "--format=%H", rev, "--", path.as_posix()).split()
    target = value_at(document_in(file_at(root, rev, path), kind, name), dotted)
    if target is _MISSING:
        return None, None
    found: str | None = None
    for sha in commits:
        if value_at(document_in(file_at(root, sha, path), kind, name), dotted) != target:
            break
        found = sha
    return target, found
