"""The local provider imports a kind's handler only when the tree holds a document of it.

A plan of Quotas must not pay for the data plane (pyarrow, the snapshot and feature code)
or for pydantic, which only Datasets, FeatureSets and TrainingJobs need: importing them
was half of a no-op plan of 1,000 Quotas.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from providers.local import HANDLERS, LocalProvider, handler_class
from providers.local.kind import KindHandler
from tests.conftest import run_cli

WORKSPACE = (
    "apiVersion: pipeform/v1\nkind: Workspace\nmetadata: {name: t}\n"
    "spec: {defaults: {provider: local}}\n"
)
QUOTAS = "---\n".join(
    f"apiVersion: pipeform/v1\nkind: Quota\nmetadata: {{name: q{i}}}\nspec: {{gpus: {i}}}\n"
    for i in range(3)
)
DATASET = """\
apiVersion: pipeform/v1
kind: Dataset
metadata: {name: people}
spec:
  source: {uri: file://people.csv, format: csv}
  schema:
    - {name: id, type: int, nullable: false}
    - {name: age, type: int}
"""
#: runs the CLI in this interpreter, then tells which of the watched modules it imported
PROBE = """
import sys
from reconciler.cli import main
sys.argv = ["pipeform", *sys.argv[1:]]
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code
watched = ("pydantic", "pyarrow", "numpy", "pandas", "torch", "providers.local")
loaded = [m for m in sorted(sys.modules) if m == "pydantic" or m.startswith(watched[1:])]
print("exit", code, file=sys.stderr)
print("loaded", " ".join(loaded), file=sys.stderr)
"""


def probe(root: Path, *args: str) -> tuple[str, set[str]]:
    """Run a command in a fresh interpreter: its output and the watched modules it loaded."""
    env = {**os.environ, "XDG_CACHE_HOME": str(root.parent / "cache")}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
        timeout=60,
        check=False,
    )
    lines = dict(line.split(" ", 1) for line in result.stderr.splitlines() if " " in line)
    assert lines.get("exit") in ("0", "None", "2"), result.stderr
    return result.stdout, set(lines.get("loaded", "").split())


def applied(root: Path, **files: str) -> Path:
    """A spec tree of the local provider, applied and planned once (the first apply makes
    .pipeform, so the spec cache holds every file from the plan after it on)."""
    root.mkdir()
    (root / "pipeform.yaml").write_text(WORKSPACE)
    for name, text in files.items():
        (root / name).write_text(text)
    for command in (("apply", "--auto-approve", "."), ("plan", ".")):
        done = run_cli(*command, cwd=root, timeout=120)
        assert done.returncode == 0, done.stderr
    return root


def test_a_plan_of_quotas_imports_neither_the_data_plane_nor_pydantic(tmp_path: Path) -> None:
    root = applied(tmp_path / "tree", **{"q.yaml": QUOTAS})
    out, loaded = probe(root, "plan", ".")
    assert "No changes" in out
    assert "providers.local.quota" in loaded  # the probe sees the handler that was used
    heavy = {m for m in loaded if m.split(".")[0] in ("pydantic", "pyarrow", "numpy", "pandas")}
    assert not heavy, f"a plan of Quotas imported {sorted(heavy)}"
    others = {
        m
        for m in loaded
        if m.startswith("providers.local.")
        and m.rsplit(".", 1)[-1] in ("data", "dataset", "featureset", "training", "budget")
    }
    assert not others, f"a plan of Quotas imported other kinds' handlers: {sorted(others)}"
    assert not any(m.startswith("providers.local.data") for m in loaded)


def test_a_tree_with_a_dataset_loads_its_handler(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    (root / "people.csv").write_text("id,age\n1,30\n2,41\n")
    (root / "pipeform.yaml").write_text(WORKSPACE)
    (root / "q.yaml").write_text(QUOTAS)
    (root / "d.yaml").write_text(DATASET)
    out, loaded = probe(root, "plan", ".")
    assert "4 to add" in out
    assert {"providers.local.quota", "providers.local.dataset"} <= loaded
    assert "providers.local.training" not in loaded


@pytest.mark.parametrize("kind", sorted(HANDLERS))
def test_every_kind_names_a_handler_for_that_kind(kind: str, tmp_path: Path) -> None:
    cls = handler_class(kind)
    assert issubclass(cls, KindHandler) and cls.kind == kind
    provider = LocalProvider({}, tmp_path)
    assert isinstance(provider.handler(kind), cls)
    assert provider.handler(kind) is provider.handler(kind)  # one instance per kind
