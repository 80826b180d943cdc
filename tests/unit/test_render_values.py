"""Changed values as a reviewer reads them: both sides of a change alike, long values whole
in the terminal, and never cut inside a quote in a pull-request comment."""

from __future__ import annotations

from pathlib import Path

from reconciler.plan.model import Drift, FieldChange
from reconciler.render import markdown
from tests.conftest import run_cli

WORKSPACE = "apiVersion: pipeform/v1\nkind: Workspace\nmetadata: {name: t}\nspec: {defaults: {provider: fake}}\n"
QUOTA = "apiVersion: pipeform/v1\nkind: Quota\nmetadata: {name: q}\nspec: {gpus: 1}\n"
DATASET = "apiVersion: pipeform/v1\nkind: Dataset\nmetadata: {name: d}\nspec: {source: {uri: 'file://d.csv'}}\n"
FEATURES = (
    "apiVersion: pipeform/v1\nkind: FeatureSet\nmetadata: {name: f}\n"
    "spec: {dataset: d, entity: id, label: {column: y}, features: [{name: x}]}\n"
)
JOB = """apiVersion: pipeform/v1
kind: TrainingJob
metadata:
  name: j
  annotations: {description: %s}
spec:
  features: f
  model: {type: linear, task: regression}
  gates: [{metric: r2, min: 0.7}, {metric: mae, max: %d}]
"""
LONG = "What this model predicts, who reads its scores, and why it is trained again every week"


def test_a_changed_list_shows_both_sides_alike_and_long_values_whole(tmp_path: Path) -> None:
    for name, text in {
        "ws": WORKSPACE,
        "d": DATASET,
        "f": FEATURES,
        "j": JOB % ("short", 3),
    }.items():
        (tmp_path / f"{name}.yaml").write_text(text)
    assert run_cli("apply", "--auto-approve", cwd=tmp_path).returncode == 0
    (tmp_path / "j.yaml").write_text(JOB % (f'"{LONG}"', 2))
    planned = run_cli("plan", cwd=tmp_path).stdout
    lines = [line.strip() for line in planned.splitlines()]
    # state keeps the applied spec with sorted keys; the desired side is shown the same way
    assert (
        '~ gates[1]: {"max": 3.0, "metric": "mae", "min": null} -> '
        '{"max": 2.0, "metric": "mae", "min": null}'
    ) in lines
    assert "gates[0]" not in planned  # the item that did not change
    description = lines.index("~ metadata.annotations.description:")
    assert lines[description + 1 : description + 3] == ['- "short"', f'+ "{LONG}"']
    assert "…" not in planned
    comment = run_cli("plan", "--format", "markdown", cwd=tmp_path).stdout
    assert "gates\\[1\\].max 3.0 → 2.0 |" in comment


def test_a_drift_line_in_a_comment_keeps_its_quotes_balanced() -> None:
    before, after = "sha256:" + "3f1c" * 16, "sha256:" + "77be" * 16
    drift = Drift(
        "Dataset/rand-hie", "Dataset", True, [FieldChange("source.digest", before, after)]
    )
    line = markdown.drift_line(drift)
    assert line.startswith("- **Dataset/rand-hie** changed outside pipeform: source.digest ")
    assert line.count('"') == 4  # each value quoted whole: '"sha256:3f1c…" → "sha256:77be…"'
    assert '"sha256:3f1c' in line and line.endswith('…"')
