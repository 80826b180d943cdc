"""Datasets through the real CLI: apply snapshots, a second plan is a no-op, a changed source
plans an update with its reason, and a failed validation exits 1 with the rule shown."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.conftest import run_cli

WORKSPACE = """
apiVersion: pipeform/v1
kind: Workspace
metadata: {name: data-cli}
spec:
  state: {backend: sqlite, path: .pipeform/state.db}
  providers: {local: {dataDir: .pipeform/data}}
  defaults: {provider: local}
"""
DATASET = """
apiVersion: pipeform/v1
kind: Dataset
metadata: {name: events}
spec:
  source: {uri: file://data/events.csv}
  schema:
    - {name: id, type: int, nullable: false, unique: true}
    - {name: v, type: float, min: 0}
  validation: {minRows: 2}
"""


def test_apply_no_op_change_and_failure(write_tree: Callable[..., Path]) -> None:
    root = write_tree(**{"pipeform.yaml": WORKSPACE, "data.yaml": DATASET})
    (root / "data").mkdir()
    csv = root / "data" / "events.csv"
    csv.write_text("id,v\n1,0.5\n2,1.5\n")
    done = run_cli("apply", "--auto-approve", cwd=root, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    shown = json.loads(run_cli("state", "show", "Dataset/events", cwd=root).stdout)
    outputs = shown["outputs"]
    assert outputs["rows"] == 2 and outputs["snapshot"].startswith("ds-")
    assert Path(outputs["path"]).is_file()

    again = run_cli("plan", "--detailed-exitcode", cwd=root, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr

    csv.write_text("id,v\n1,0.5\n2,1.5\n3,2.5\n")
    planned = run_cli("plan", "--json", cwd=root, timeout=120)
    change = json.loads(planned.stdout)["resource_changes"][0]
    assert change["change"]["actions"] == ["update"]
    assert "source changed (sha256:" in change["reason_detail"]

    current = (root / ".pipeform" / "data" / "datasets" / "events" / "current.json").read_bytes()
    csv.write_text("id,v\n1,0.5\n1,-1.5\n")
    failed = run_cli("apply", "--auto-approve", cwd=root, timeout=120)
    assert failed.returncode == 1
    text = failed.stdout + failed.stderr
    assert "column id: unique" in text and "column v: min" in text and "Traceback" not in text
    after = (root / ".pipeform" / "data" / "datasets" / "events" / "current.json").read_bytes()
    assert after == current
