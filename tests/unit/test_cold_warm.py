"""One document path: every engine check reads the same on a cold run (documents validated
in this command), a warm run (documents' facts and views from the spec cache) and a run
with the cache turned off. Each run is a separate `pipeform` process, as users run them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import CopyExample, run_cli

# A second job over its Quota (policy), a Budget it is scoped under (budget standing and
# cost), and a secret-looking plain env value (a warning from the graph checks).
EXTRA_JOB = """
apiVersion: pipeform/v1
kind: TrainingJob
metadata: {name: big-model, labels: {team: growth}}
spec:
  features: hie-features
  model: {type: mlp, task: binary-classification, hidden: [8]}
  hyperparameters: {epochs: 1, batchSize: 64, learningRate: 0.01, seed: 1}
  resources: {cpu: 64, memory: 512Gi, gpus: 2, gpuType: h100}
  distributed: {workers: 2}
  maxDuration: 2h
  quota: growth-cpu
  env:
    API_TOKEN: {value: plain-text-in-the-spec}
"""

# A FeatureSet that reads a column its Dataset does not declare (a graph column check).
BAD_COLUMN = """
apiVersion: pipeform/v1
kind: FeatureSet
metadata: {name: broken-features}
spec:
  dataset: rand-hie
  entity: [zper, year]
  label: {column: binexp}
  split: {type: temporal, column: year, validationFrom: 4}
  features:
    - {name: age, column: agee, transforms: [standardize]}
"""


def _tree(copy_example: CopyExample, extra: str) -> Path:
    root = copy_example()
    (root / "extra.yaml").write_text(extra.lstrip(), encoding="utf-8")
    (root / ".pipeform").mkdir()  # so the first run writes the spec cache
    return root


def _three_runs(root: Path, *args: str) -> list[tuple[int, str, str]]:
    env = {**os.environ, "QUICKSTART_METRICS_TOKEN": "x"}
    cache = root / ".pipeform" / "cache"
    cold = run_cli(*args, str(root), env=env)
    assert cache.is_dir() and any(cache.iterdir()), "the cold run wrote no spec cache"
    warm = run_cli(*args, str(root), env=env)
    off = run_cli(*args, str(root), env={**env, "PIPEFORM_SPEC_CACHE": "0"})
    return [(r.returncode, r.stdout, r.stderr) for r in (cold, warm, off)]


def _volatile_free(output: str) -> object:
    try:
        data = json.loads(output)
    except ValueError:
        return output
    data.pop("timestamp", None)
    return data


def test_plan_with_costs_quotas_budgets_and_warnings_reads_the_same_cold_and_warm(
    copy_example: CopyExample,
) -> None:
    root = _tree(copy_example, EXTRA_JOB)
    runs = _three_runs(root, "plan", "--json")
    (code, out, err), *others = runs
    plan = json.loads(out)
    # the checks ran: the quota refusal, the cost estimates, the budget standing, the warning
    assert code == 1, err
    text = json.dumps(plan)
    assert "Quota/growth-cpu" in text and "big-model" in text, text[:2000]
    assert "API_TOKEN" in text or "API_TOKEN" in err
    for other in others:
        assert other[0] == code
        assert _volatile_free(other[1]) == _volatile_free(out)
        assert other[2] == err


@pytest.mark.parametrize("command", [("validate", "--json"), ("graph",)])
def test_validation_and_column_checks_read_the_same_cold_and_warm(
    copy_example: CopyExample, command: tuple[str, ...]
) -> None:
    root = _tree(copy_example, BAD_COLUMN)
    runs = _three_runs(root, *command)
    assert runs[0][0] == 1
    assert "agee" in runs[0][1] + runs[0][2], "the column check did not run"
    assert runs[1] == runs[0]
    assert runs[2] == runs[0]


def _plain(value: object) -> object:
    """A View's fields as plain data, recursively (methods' results called)."""
    from reconciler.spec.facts import View

    if isinstance(value, View):
        return {name: _plain(getattr(value, name)) for name in sorted(value._fields)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value() if callable(value) else value


def test_every_document_is_read_through_the_same_view_cold_and_warm(
    copy_example: CopyExample,
) -> None:
    """The engine gets a View whether a document was validated now or came from the cache:
    same fields, same values, and a model method the kind does not keep (references) is
    refused on both paths alike, rather than working only when the tree was cold."""
    from reconciler.diagnostics import Diagnostics
    from reconciler.spec.facts import View
    from reconciler.spec.loader import load_tree

    root = _tree(copy_example, EXTRA_JOB)
    cold = load_tree([root], Diagnostics())
    warm = load_tree([root], Diagnostics())
    assert all(d.validated is None for d in warm.documents.values()), "the cache was not read"
    for address, doc in cold.documents.items():
        again = warm.documents[address]
        assert type(doc.view) is View and type(again.view) is View, address
        assert _plain(doc.view) == _plain(again.view), address
    for tree in (cold, warm):
        job = tree.documents["TrainingJob/big-model"].training_job()
        assert job.spec.resources.gpus == 2 and job.spec.quota == "growth-cpu"
        assert job.spec.plain_secret_like_env() == ["API_TOKEN"]
        with pytest.raises(AttributeError):
            job.spec.references  # noqa: B018  (a model method, not kept: refused on both paths)
        with pytest.raises(TypeError):
            tree.documents["Quota/growth-cpu"].training_job()
