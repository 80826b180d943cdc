"""The spec models: what a user may write, and what each mistake says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from reconciler.kinds import KINDS, Secret, TrainingJob
from reconciler.spec.checks import check
from tests.conftest import CopyExample


def _job(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "features": "f",
        "model": {"type": "mlp", "task": "binary-classification"},
    }
    base.update(spec)
    return {
        "apiVersion": "pipeform/v1",
        "kind": "TrainingJob",
        "metadata": {"name": "job"},
        "spec": base,
    }


def test_quickstart_is_valid_and_has_every_kind(copy_example: CopyExample) -> None:
    checked = check([copy_example()])
    assert not checked.diagnostics.has_errors, [d.render() for d in checked.diagnostics]
    kinds = {d.model.KIND for d in checked.tree.documents.values()}
    assert kinds | {"Workspace"} == set(KINDS)
    assert checked.tree.workspace_source is not None


def test_yaml_spelling_is_camel_case_and_defaults_apply() -> None:
    job = TrainingJob.model_validate(_job(hyperparameters={"learningRate": 0.01, "batchSize": 32}))
    assert job.spec.hyperparameters.learning_rate == 0.01
    assert job.spec.hyperparameters.epochs == 10
    assert job.spec.max_duration == 6 * 3600
    assert job.spec.retrain == "onInputChange"


def test_units_are_parsed_in_specs() -> None:
    job = TrainingJob.model_validate(
        _job(resources={"cpu": "500m", "memory": "32Gi"}, maxDuration="90m")
    )
    assert str(job.spec.resources.cpu) == "0.500"
    assert job.spec.resources.memory == 32 * 2**30
    assert job.spec.max_duration == 5400
    dumped = job.model_dump(by_alias=True, mode="json")
    assert dumped["spec"]["resources"] == {
        "cpu": "500m",
        "memory": "32Gi",
        "gpus": 0,
        "gpuType": None,
    }
    assert dumped["spec"]["maxDuration"] == "1h30m"


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValidationError, match="lerningRate"):
        TrainingJob.model_validate(_job(hyperparameters={"lerningRate": 0.1}))


@pytest.mark.parametrize("name", ["Churn", "churn_model", "-churn", "a" * 64, ""])
def test_names_must_be_dns_labels(name: str) -> None:
    doc = _job()
    doc["metadata"]["name"] = name
    with pytest.raises(ValidationError):
        TrainingJob.model_validate(doc)


def test_gate_metric_must_exist_for_the_task() -> None:
    with pytest.raises(ValidationError, match=r"rmse.*does not exist for binary-classification"):
        TrainingJob.model_validate(_job(gates=[{"metric": "rmse", "max": 1}]))


def test_env_from_secrets_is_a_reference_never_a_value() -> None:
    job = TrainingJob.model_validate(_job(env={"API_KEY": {"secret": "api-key"}}))
    refs = {r.address for r in job.references()}
    assert "Secret/api-key" in refs
    assert "api-key" not in str(job.spec.env["API_KEY"].model_dump()).replace(
        "'secret': 'api-key'", ""
    )


def test_secret_values_cannot_be_written_inline() -> None:
    doc = {
        "apiVersion": "pipeform/v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "spec": {"from": {"value": "hunter2"}},
    }
    with pytest.raises(ValidationError, match="may not be written in specs") as info:
        Secret.model_validate(doc)
    assert "hunter2" not in str(info.value).replace("'value': 'hunter2'", "")


def test_secret_sources() -> None:
    for source in (
        {"env": "TOKEN"},
        {"file": "secrets/token"},
        {"awsSecretsManager": {"secretId": "prod/token"}},
    ):
        doc = {
            "apiVersion": "pipeform/v1",
            "kind": "Secret",
            "metadata": {"name": "s"},
            "spec": {"from": source},
        }
        assert Secret.model_validate(doc).spec.targets[0].provider == "local"


def test_plain_secret_looking_env_is_a_warning(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "apiVersion: pipeform/v1\nkind: Dataset\nmetadata: {name: d}\nspec: {source: {uri: 'file://x.csv'}}\n"
        "---\napiVersion: pipeform/v1\nkind: FeatureSet\nmetadata: {name: f}\n"
        "spec: {dataset: d, entity: id, label: {column: y}, features: [{name: x}]}\n"
        "---\napiVersion: pipeform/v1\nkind: TrainingJob\nmetadata: {name: job}\n"
        "spec:\n  features: f\n  model: {type: linear, task: regression}\n  env: {API_TOKEN: {value: abc}}\n"
    )
    checked = check([tmp_path])
    assert not checked.diagnostics.has_errors
    [warning] = checked.diagnostics.warnings
    assert "spec.env.API_TOKEN looks like a secret" in warning.render()
    assert warning.position is not None and warning.position.line == 17


def test_lifecycle_ignore_changes_must_name_spec_fields(write_tree: Any) -> None:
    root = write_tree(
        **{
            "a.yaml": """
        apiVersion: pipeform/v1
        kind: Quota
        metadata:
          name: q
          lifecycle:
            preventDestroy: true
            ignoreChanges: [gpus, cpuu]
        spec: {gpus: 2, cpu: 4}
        """
        }
    )
    checked = check([root])
    [err] = checked.diagnostics.errors
    assert "'cpuu' is not a field of the Quota spec" in err.message
    assert err.hint == "did you mean cpu?"
    assert err.position is not None and err.position.line == 7


def test_workspace_defaults_without_a_workspace_document(write_tree: Any) -> None:
    root = write_tree(
        **{"q.yaml": "apiVersion: pipeform/v1\nkind: Quota\nmetadata: {name: q}\nspec: {gpus: 1}\n"}
    )
    checked = check([root])
    assert checked.ok
    assert checked.tree.workspace.spec.state.backend == "sqlite"
    assert checked.tree.workspace.spec.defaults.provider == "local"


def test_two_workspaces_are_an_error(write_tree: Any) -> None:
    ws = "apiVersion: pipeform/v1\nkind: Workspace\nmetadata: {name: %s}\n"
    root = write_tree(
        **{
            "a.yaml": ws % "a",
            "b.yaml": ws % "b",
            "q.yaml": "apiVersion: pipeform/v1\nkind: Quota\nmetadata: {name: q}\nspec: {gpus: 1}\n",
        }
    )
    [err] = check([root]).diagnostics.errors
    assert "second Workspace" in err.message and "a.yaml:1:1" in (err.hint or "")


def test_fields_added_since_specs_were_applied_stay_out_of_their_json(
    copy_example: CopyExample,
) -> None:
    """A tree written before evaluation, promotion, segments and CloudWatch alerts existed
    keeps the same spec JSON (and so the same hashes): upgrading re-runs nothing."""
    import os

    from reconciler.diagnostics import Diagnostics
    from reconciler.spec.loader import load_tree

    root = copy_example()
    features = root / "features.yaml"
    text = features.read_text()
    features.write_text("\n".join(line for line in text.splitlines() if "segments" not in line))
    training = (root / "training.yaml").read_text()
    start = training.find("  evaluation:")
    if start != -1:  # the example declares evaluation: cut it back to what older trees hold
        end = training.find("\n  ", training.find("\n", start) + 1)
        while end != -1 and training[end + 3] == " ":
            end = training.find("\n  ", end + 1)
        training = training[:start] + training[end + 1 :]
    lines = [
        line
        for line in training.splitlines()
        if not any(k in line for k in ("slice:", "sensitive:", "championGate", "ece", "brier"))
    ]
    (root / "training.yaml").write_text("\n".join(lines) + "\n")
    os.environ["PIPEFORM_SPEC_CACHE"] = "0"
    try:
        tree = load_tree([root], Diagnostics())
    finally:
        del os.environ["PIPEFORM_SPEC_CACHE"]
    job = tree.documents["TrainingJob/expense-model"].facts.spec
    assert "evaluation" not in job
    assert not {"approval", "promoteWhen", "championGate"} & set(job["register"])
    assert all(not {"slice", "minRows", "sensitive"} & set(g) for g in job["gates"])
    assert "segments" not in tree.documents["FeatureSet/hie-features"].facts.spec
    alert = tree.documents["Alert/expense-model-failed"].facts.spec
    assert "cloudwatch" not in alert
