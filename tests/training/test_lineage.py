"""A registered model's lineage names the spec commit it was trained from, never a clean
commit for specs with uncommitted changes."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.training.conftest import Bench


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def registered_commits(bench: Bench) -> list[str]:
    return [v.lineage["lineage"]["git_commit"] for v in bench.registry_versions()]


def test_registry_lineage_marks_a_model_trained_from_uncommitted_specs(
    bench: Bench, fake_trainer: object
) -> None:
    git(bench.root, "init", "-q")
    (bench.root / "training.yaml").write_text("kind: TrainingJob\n")
    git(bench.root, "add", "training.yaml")
    git(bench.root, "commit", "-qm", "specs")
    commit = git(bench.root, "rev-parse", "HEAD")
    first = bench.apply(bench.doc())  # pipeform's own .pipeform directory is not specs
    (bench.root / "training.yaml").write_text("kind: TrainingJob  # edited, not committed\n")
    hyperparameters = {**bench.doc()["spec"]["hyperparameters"], "learningRate": 0.02}
    bench.apply(bench.doc(hyperparameters=hyperparameters), first, bench.doc())
    assert registered_commits(bench) == [commit, commit + "-dirty"]
