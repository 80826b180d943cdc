"""`pipeform lineage` and `pipeform verify` on the quickstart trained by the real trainer
(3 epochs, on CPU) in a git repository whose learningRate changed in commit 2 and whose
epochs changed in commit 3."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.audit.gitrepo import ENV, commit, edit, init
from tests.conftest import CopyExample, run_cli

JOB = "TrainingJob/expense-model"


def pipeform(root: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = run_cli(*args, cwd=root, env=ENV, timeout=timeout)
    assert "Traceback" not in result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def repo(copy_example: CopyExample) -> dict[str, Any]:
    root = copy_example("quickstart")
    first = init(root)
    edit(root / "training.yaml", "learningRate: 0.001", "learningRate: 0.002")
    second = commit(root, "raise lr <script>alert(1)</script>", author="bob")
    edit(root / "training.yaml", "epochs: 20", "epochs: 3")
    third = commit(root, "fewer epochs", author="carol")
    applied = pipeform(root, "apply", "--auto-approve", timeout=300)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    return {"root": root, "commits": [first, second, third]}


def traced(repo: dict[str, Any], *args: str) -> dict[str, Any]:
    result = pipeform(repo["root"], "lineage", f"{JOB}@1", "--json", *args)
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_lineage_names_the_commit_that_introduced_each_hyperparameter(repo: dict[str, Any]) -> None:
    first, second, third = repo["commits"]
    params = {p["name"]: p for p in traced(repo)["training_job"]["hyperparameters"]}
    assert params["learningRate"]["value"] == 0.002
    assert params["learningRate"]["commit"]["sha"] == second
    assert params["learningRate"]["commit"]["author"].startswith("bob")
    assert params["epochs"]["value"] == 3 and params["epochs"]["commit"]["sha"] == third
    assert params["seed"]["commit"]["sha"] == first
    shown = pipeform(repo["root"], "lineage", "expense-model").stdout  # by model name
    assert f'hyperparameters.epochs = 3   since {third[:12]} "fewer epochs"' in shown
    assert f"hyperparameters.learningRate = 0.002   since {second[:12]}" in shown


def test_lineage_walks_to_the_run_features_snapshot_and_their_commits(
    repo: dict[str, Any],
) -> None:
    third = repo["commits"][2]
    data = traced(repo)
    assert data["model"] == "expense-model" and data["version"] == 1
    assert data["training_job"]["spec_commit"]["sha"] == third
    assert data["training_job"]["spec_commit"]["dirty"] is False
    assert data["feature_set"]["id"].startswith("fs-")
    assert data["feature_set"]["spec_commit"]["sha"] == third  # applied from commit 3
    assert data["dataset"]["address"] == "Dataset/rand-hie"
    assert data["dataset"]["snapshot"].startswith("ds-")
    assert data["device"] == "cpu" and data["trainer"]["code_digest"].startswith("sha256:")


def test_the_html_lineage_is_one_self_contained_escaped_file(repo: dict[str, Any]) -> None:
    page = pipeform(repo["root"], "lineage", JOB, "--format", "html").stdout
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "src=" not in page and "href=" not in page  # nothing fetched from elsewhere
    assert "Lineage of expense-model v1" in page and repo["commits"][1][:12] in page


@pytest.mark.parametrize("ref", ["TrainingJob/nope", "expense-model@x", "expense-model@9"])
def test_a_bad_reference_is_one_clear_error(repo: dict[str, Any], ref: str) -> None:
    result = pipeform(repo["root"], "lineage", ref)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_verify_and_retrain_reproduce_the_model_bit_for_bit(repo: dict[str, Any]) -> None:
    result = pipeform(repo["root"], "verify", "expense-model@1", "--retrain", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert {c["what"] for c in report["checks"]} == {
        "snapshot",
        "feature table",
        "transform",
        "trainer code",
        "package files",
    }
    assert all(c["matches"] for c in report["checks"])
    assert report["retrain"] == {
        "ok": True,
        "trained_on": "cpu",
        "detail": "weights identical, bit for bit",
    }


def test_verify_reports_a_snapshot_edited_on_disk(repo: dict[str, Any]) -> None:
    """Last in the module: it damages the shared snapshot."""
    snapshot = Path(traced(repo)["dataset"]["path"])
    snapshot.write_bytes(snapshot.read_bytes() + b"tampered")
    result = pipeform(repo["root"], "verify", "expense-model@1")
    assert result.returncode == 1
    line = next(x for x in result.stdout.splitlines() if "snapshot" in x)
    assert line.lstrip().startswith("✘") and "CHANGED" in line and str(snapshot) in line
    assert "✔ feature table" in result.stdout  # the others still match
