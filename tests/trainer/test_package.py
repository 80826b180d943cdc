"""The package a run leaves: weights, TorchScript, signature, metadata, digest."""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from tests.trainer.conftest import ROOT
from trainer.config import EXIT_OK, ModelConfig
from trainer.models import build_model
from trainer.registry.local import package_digest
from trainer.version import TRAINER_VERSION, trainer_code_digest

Factory = Callable[..., dict[str, Any]]
Runner = Callable[[dict[str, Any]], int]


@pytest.fixture
def packaged(config_factory: Factory, run_inprocess: Runner, tmp_path: Path) -> dict[str, Any]:
    transform = tmp_path / "transform.json"
    transform.write_text('{"f0": {"mean": 0.5}}')
    config = config_factory(
        task="multiclass-classification", model={"type": "resmlp", "hidden": [16]}
    )
    config["inputs"]["transform_path"] = str(transform)
    assert run_inprocess(config) == EXIT_OK
    return config


def _package(config: dict[str, Any]) -> Path:
    return Path(config["output_dir"]) / "package"


def test_package_layout_and_digest(packaged: dict[str, Any]) -> None:
    package = _package(packaged)
    assert sorted(p.name for p in package.iterdir()) == [
        "metadata.json",
        "model.pt",
        "model.safetensors",
        "model_card.json",
        "model_card.md",
        "signature.json",
        "transform.json",
    ]
    assert (package / "transform.json").read_text() == '{"f0": {"mean": 0.5}}'
    result = json.loads((Path(packaged["output_dir"]) / "result.json").read_text())
    assert result["package_sha256"] == package_digest(package)
    assert result["package_dir"] == str(package)
    assert not [p for p in package.parent.iterdir() if p.name.startswith(".package")]


def test_signature_lists_the_inputs_in_order_and_the_output(packaged: dict[str, Any]) -> None:
    signature = json.loads((_package(packaged) / "signature.json").read_text())
    assert [i["name"] for i in signature["inputs"]] == packaged["inputs"]["features"]
    assert {i["dtype"] for i in signature["inputs"]} == {"float32"}
    assert signature["output"]["name"] == "probabilities"
    assert signature["output"]["shape"] == [-1, 3]


def test_metadata_carries_the_full_lineage(packaged: dict[str, Any]) -> None:
    meta = json.loads((_package(packaged) / "metadata.json").read_text())
    assert meta["run_id"] == "run-test-1" and meta["created_at"].endswith("Z")
    assert meta["lineage"]["spec_hash"] == "sha256:spec"
    assert meta["lineage"]["address"] == "TrainingJob/test"
    assert meta["lineage"]["featureset"] == "FeatureSet/synthetic@fs-0123"
    assert meta["lineage"]["dataset_snapshots"] == ["ds-0123"]
    assert meta["lineage"]["transform_digest"] == "sha256:abc"
    assert meta["trainer"] == {
        "version": TRAINER_VERSION,
        "code_digest": trainer_code_digest(),
        "torch": torch.__version__,
    }
    assert meta["config"]["hyperparameters"]["seed"] == 3
    assert set(meta["metrics"]) >= {"accuracy", "f1", "logloss"}
    assert meta["export"]["status"] == "exported"


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_and_safetensors_give_the_same_predictions(packaged: dict[str, Any]) -> None:
    package = _package(packaged)
    scripted = torch.jit.load(str(package / "model.pt"))
    meta = json.loads((package / "metadata.json").read_text())
    model = build_model(ModelConfig.model_validate(packaged["model"]), 8, 3)
    model.load_state_dict(load_file(str(package / "model.safetensors")))
    model.eval()
    x = torch.randn(11, 8)
    with torch.no_grad():
        expected = torch.softmax(model(x), dim=1)
    assert torch.allclose(scripted(x), expected, atol=1e-6)
    assert meta["training"]["n_outputs"] == 3


def test_an_untraceable_custom_model_is_packaged_without_model_pt(
    config_factory: Factory, run_inprocess: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "numpy_model.py").write_text(
        textwrap.dedent(
            """
            import torch

            class ThroughNumpy(torch.nn.Module):
                def __init__(self, n_inputs, n_outputs):
                    super().__init__()
                    self.linear = torch.nn.Linear(n_inputs, n_outputs)

                def forward(self, x):
                    # a trip through numpy: tracing records the batch as a constant
                    return self.linear(torch.from_numpy(x.detach().numpy().copy()))

            def build(n_inputs, n_outputs, config):
                return ThroughNumpy(n_inputs, n_outputs)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    config = config_factory(model={"type": "custom", "entrypoint": "numpy_model:build"})
    assert run_inprocess(config) == EXIT_OK
    package = _package(config)
    assert not (package / "model.pt").exists()
    assert (package / "model.safetensors").exists()
    export = json.loads((package / "metadata.json").read_text())["export"]
    assert export["status"] == "failed" and export["reason"]
    sys.modules.pop("numpy_model", None)


def test_code_digest_follows_the_trainer_source(tmp_path: Path) -> None:
    copy = tmp_path / "trainer"
    shutil.copytree(ROOT / "trainer", copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = trainer_code_digest(copy)
    assert before == trainer_code_digest(ROOT / "trainer")  # location does not matter
    assert before.startswith("sha256:")
    (copy / "__pycache__").mkdir(exist_ok=True)
    (copy / "__pycache__" / "x.pyc").write_bytes(b"junk")  # not source
    assert trainer_code_digest.__wrapped__(copy) == before  # type: ignore[attr-defined]
    with (copy / "loop.py").open("a") as stream:
        stream.write("\n# a change\n")
    assert trainer_code_digest.__wrapped__(copy) != before  # type: ignore[attr-defined]


def test_version_module_does_not_import_torch() -> None:
    import subprocess

    code = (
        "import sys, trainer.version as v; v.trainer_code_digest(); print('torch' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert done.stdout.strip() == "False"
