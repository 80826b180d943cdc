"""The model zoo, custom entrypoints, the packaged predictor, and the LR schedules."""

from __future__ import annotations

import math
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from trainer.config import ModelConfig
from trainer.errors import TrainerError
from trainer.models import Predictor, ResMLP, build_model
from trainer.schedule import lr_multiplier


def _config(**fields: object) -> ModelConfig:
    return ModelConfig.model_validate({"type": "mlp", "task": "binary-classification", **fields})


@pytest.mark.parametrize(
    ("kind", "outputs"), [("mlp", 1), ("linear", 1), ("resmlp", 1), ("mlp", 4), ("resmlp", 3)]
)
def test_every_builtin_maps_a_batch_to_its_outputs(kind: str, outputs: int) -> None:
    model = build_model(_config(type=kind, hidden=[16, 8]), n_inputs=5, n_outputs=outputs)
    assert model(torch.randn(7, 5)).shape == (7, outputs)


def test_mlp_layers_follow_the_config() -> None:
    model = build_model(_config(hidden=[32, 16], dropout=0.2, activation="gelu"), 10, 1)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(10, 32), (32, 16), (16, 1)]
    assert any(isinstance(m, nn.GELU) for m in model.modules())
    assert any(isinstance(m, nn.Dropout) and m.p == 0.2 for m in model.modules())


def test_linear_is_one_affine_layer() -> None:
    model = build_model(_config(type="linear"), 6, 1)
    assert isinstance(model, nn.Linear) and model.in_features == 6


def test_resmlp_blocks_are_residual_with_layernorm() -> None:
    model = build_model(_config(type="resmlp", hidden=[16, 16, 8]), 4, 1)
    assert isinstance(model, ResMLP)
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    assert len(norms) == 4  # one per block and a final one
    block = model.blocks[0]
    with torch.no_grad():  # with its output layer zeroed, a block is the identity
        block.outer.weight.zero_()
        block.outer.bias.zero_()
    x = torch.randn(3, 16)
    assert torch.equal(block(x), x)


def test_custom_entrypoint_gets_inputs_outputs_and_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_models.py").write_text(
        textwrap.dedent(
            """
            import torch

            def build(n_inputs, n_outputs, config):
                model = torch.nn.Linear(n_inputs, n_outputs)
                model.seen = (n_inputs, n_outputs, config.dropout)
                return model

            def not_a_module(n_inputs, n_outputs, config):
                return "a string"
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    model = build_model(_config(type="custom", entrypoint="my_models:build", dropout=0.3), 9, 2)
    assert model.seen == (9, 2, 0.3)
    with pytest.raises(TrainerError, match=r"returned str, not a torch\.nn\.Module"):
        build_model(_config(type="custom", entrypoint="my_models:not_a_module"), 9, 2)
    with pytest.raises(TrainerError, match="has no function 'missing'"):
        build_model(_config(type="custom", entrypoint="my_models:missing"), 9, 2)
    with pytest.raises(TrainerError, match="cannot import 'no_such_module_xyz'"):
        build_model(_config(type="custom", entrypoint="no_such_module_xyz:f"), 9, 2)
    sys.modules.pop("my_models", None)


def test_predictor_applies_the_task_link() -> None:
    torch.manual_seed(0)
    x = torch.randn(5, 3)
    binary = Predictor(nn.Linear(3, 1), "binary-classification")
    assert binary(x).shape == (5,) and bool(((binary(x) > 0) & (binary(x) < 1)).all())
    multi = Predictor(nn.Linear(3, 4), "multiclass-classification")
    assert torch.allclose(multi(x).sum(dim=1), torch.ones(5))
    linear = nn.Linear(3, 1)
    assert torch.equal(Predictor(linear, "regression")(x), linear(x).reshape(5))


def test_warmup_is_linear_then_the_schedule() -> None:
    constant = lr_multiplier("constant", warmup_steps=4, total_steps=100)
    assert [constant(s) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    cosine = lr_multiplier("cosine", warmup_steps=0, total_steps=100)
    assert cosine(0) == 1.0 and cosine(50) == pytest.approx(0.5) and cosine(100) == pytest.approx(0)
    warm_cosine = lr_multiplier("cosine", warmup_steps=10, total_steps=110)
    assert warm_cosine(9) == 1.0 and warm_cosine(60) == pytest.approx(0.5)


def test_onecycle_rises_to_the_peak_then_anneals() -> None:
    onecycle = lr_multiplier("onecycle", warmup_steps=0, total_steps=100)  # rise over 30 steps
    assert onecycle(0) == pytest.approx(1 / 25)
    assert onecycle(30) == pytest.approx(1.0)
    assert onecycle(99) < 0.01
    values = [onecycle(s) for s in range(100)]
    assert values.index(max(values)) == 30
    assert all(math.isfinite(v) and v > 0 for v in values)
