"""What `apply` and `destroy` print as they finish, through the fake provider: a skipped
resource names the failure that held it back; destroy says so."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_cli

WORKSPACE = (
    "apiVersion: pipeform/v1\nkind: Workspace\nmetadata: {name: t}\nspec:\n"
    "  defaults: {provider: fake}\n  providers: {plugins: {fake: {fail: {%s: permanent}}}}\n"
)
DOCUMENTS = {
    "d.yaml": "apiVersion: pipeform/v1\nkind: Dataset\nmetadata: {name: d}\n"
    "spec: {source: {uri: 'file://d.csv'}}\n",
    "f.yaml": "apiVersion: pipeform/v1\nkind: FeatureSet\nmetadata: {name: f}\n"
    "spec: {dataset: d, entity: id, label: {column: y}, features: [{name: x}]}\n",
    "j.yaml": "apiVersion: pipeform/v1\nkind: TrainingJob\nmetadata: {name: j}\n"
    "spec: {features: f, quota: q, model: {type: linear, task: regression}}\n",
    "q.yaml": "apiVersion: pipeform/v1\nkind: Quota\nmetadata: {name: q}\nspec: {gpus: 1}\n",
}


def tree(root: Path, failing: str = "Nothing/none") -> Path:
    """Dataset d <- FeatureSet f <- TrainingJob j -> Quota q, with one address failing."""
    (root / "ws.yaml").write_text(WORKSPACE % failing)
    for name, text in DOCUMENTS.items():
        (root / name).write_text(text)
    return root


def pipeform(root: Path, *args: str) -> tuple[int, str]:
    result = run_cli(*args, "--auto-approve", cwd=root)
    assert "Traceback" not in result.stderr
    return result.returncode, result.stdout


def test_a_change_behind_a_skipped_one_names_the_failure_upstream(tmp_path: Path) -> None:
    code, out = pipeform(tree(tmp_path, failing="Dataset/d"), "apply")
    assert code == 1
    lines = out.splitlines()
    assert "FeatureSet/f: skipped (depends on Dataset/d, which failed)" in lines
    assert (
        "TrainingJob/j: skipped (depends on FeatureSet/f, which was skipped because "
        "Dataset/d failed)"
    ) in lines
    assert lines[-1].startswith("Apply finished with 1 error: 1 succeeded, 1 failed, 2 skipped.")


def test_unchanged_resources_behind_a_failure_are_not_counted_as_skipped(tmp_path: Path) -> None:
    root = tree(tmp_path)
    assert pipeform(root, "apply")[0] == 0
    tree(root, failing="Quota/q")
    (root / "q.yaml").write_text(DOCUMENTS["q.yaml"].replace("gpus: 1", "gpus: 2"))
    code, out = pipeform(root, "apply")  # TrainingJob/j depends on Quota/q, and is unchanged
    assert code == 1
    assert "TrainingJob/j" not in out.split("Quota/q: updating...")[1]
    assert out.splitlines()[-1].startswith(
        "Apply finished with 1 error: 0 succeeded, 1 failed, 0 skipped."
    )


def test_destroy_says_destroy_complete(tmp_path: Path) -> None:
    root = tree(tmp_path)
    assert pipeform(root, "apply")[0] == 0
    code, out = pipeform(root, "destroy")
    assert code == 0
    assert out.splitlines()[-1].startswith("Destroy complete! Resources: 4 destroyed.")
