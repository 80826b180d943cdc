"""``pipeform diff REV1 REV2 [PATH]``: what changed between two commits of the spec
history, in plan form (added, removed and changed documents, field by field), read from
``git archive`` copies of both revisions in temporary directories. Live state and
providers are never touched."""

from __future__ import annotations

import io
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.audit import gitlog
from reconciler.diagnostics import PipeformError
from reconciler.plan.diff import field_changes
from reconciler.plan.model import FieldChange


@dataclass
class SpecDiff:
    rev1: str
    rev2: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: dict[str, list[FieldChange]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": self.rev1,
            "to": self.rev2,
            "added": self.added,
            "removed": self.removed,
            "changed": {
                a: [{"path": f.path, "before": f.before, "after": f.after} for f in fs]
                for a, fs in self.changed.items()
            },
        }


def resolve(root: Path, rev: str) -> str:
    sha = gitlog.git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
    if not sha.strip():
        raise PipeformError(f"{rev!r} is not a commit of the repository at {root}")
    return sha.strip()


def _documents(root: Path, sha: str, scratch: Path) -> dict[str, dict[str, Any]]:
    """Each document of the spec tree at sha: address -> what a plan diffs (an empty
    tree, the specs not yet written at sha, has none)."""
    import subprocess

    from reconciler.spec.checks import check

    archive = subprocess.run(
        ["git", "-C", str(root), "archive", "--format=tar", sha], capture_output=True, check=False
    )
    if archive.returncode != 0:
        raise PipeformError(f"git archive {sha[:12]} failed: {archive.stderr.decode()[-200:]}")
    target = scratch / sha
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(target, filter="data")
    tree = target  # run in a subdirectory, git archive holds that subdirectory alone
    checked = check([tree])
    if checked.diagnostics.has_errors:
        first = checked.diagnostics.errors[0]
        raise PipeformError(
            f"the specs at {sha[:12]} do not validate ({len(checked.diagnostics.errors)} "
            f"errors; the first: {first.message}); check it out and run pipeform validate"
        )
    return {
        address: {
            "metadata": {"labels": doc.facts.labels, "annotations": doc.facts.annotations},
            "spec": doc.facts.spec,
        }
        for address, doc in checked.tree.documents.items()
    }


def diff(root: Path, rev1: str, rev2: str) -> SpecDiff:
    sha1, sha2 = resolve(root, rev1), resolve(root, rev2)
    with tempfile.TemporaryDirectory(prefix="pipeform-diff-") as scratch:
        before = _documents(root, sha1, Path(scratch))
        after = _documents(root, sha2, Path(scratch))
    out = SpecDiff(sha1, sha2)
    out.added = sorted(after.keys() - before.keys())
    out.removed = sorted(before.keys() - after.keys())
    for address in sorted(before.keys() & after.keys()):
        changes = field_changes(before[address], after[address])
        if changes:
            out.changed[address] = changes
    return out
