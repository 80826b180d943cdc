"""The model zoo: mlp, linear, resmlp, and custom ``module:function`` entrypoints.

Every model maps a float32 batch ``[N, n_inputs]`` to raw outputs ``[N, n_outputs]``:
logits for classification (one column for binary, one per class for multiclass) and the
prediction for regression. ``Predictor`` adds the link (sigmoid/softmax) for packaging.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import torch
from torch import nn

from trainer.config import ModelConfig
from trainer.errors import TrainerError

_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
}


def mlp(n_inputs: int, n_outputs: int, config: ModelConfig) -> nn.Module:
    layers: list[nn.Module] = []
    width = n_inputs
    for hidden in config.hidden:
        layers += [nn.Linear(width, hidden), _ACTIVATIONS[config.activation]()]
        if config.dropout:
            layers.append(nn.Dropout(config.dropout))
        width = hidden
    layers.append(nn.Linear(width, n_outputs))
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    """``x + W2(dropout(act(W1(LayerNorm(x)))))`` (pre-norm, as in transformer MLPs)."""

    def __init__(self, width: int, config: ModelConfig) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.inner = nn.Linear(width, width)
        self.activation = _ACTIVATIONS[config.activation]()
        self.dropout = nn.Dropout(config.dropout)
        self.outer = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.dropout(self.activation(self.inner(self.norm(x))))
        out: torch.Tensor = x + self.outer(hidden)
        return out


class ResMLP(nn.Module):
    """A stem to the first width, one residual block per hidden width (a projection
    between blocks where the width changes), then LayerNorm and the output layer."""

    def __init__(self, n_inputs: int, n_outputs: int, config: ModelConfig) -> None:
        super().__init__()
        widths = config.hidden or [64]
        self.stem = nn.Linear(n_inputs, widths[0])
        stages: list[nn.Module] = []
        previous = widths[0]
        for width in widths:
            if width != previous:
                stages.append(nn.Linear(previous, width))
            stages.append(ResidualBlock(width, config))
            previous = width
        self.blocks = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(previous)
        self.head = nn.Linear(previous, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.norm(self.blocks(self.stem(x))))
        return out


def custom(n_inputs: int, n_outputs: int, config: ModelConfig) -> nn.Module:
    entrypoint = config.entrypoint or ""
    module_name, _, function_name = entrypoint.partition(":")
    if not module_name or not function_name:
        raise TrainerError(
            f"model.entrypoint {entrypoint!r} must be package.module:function for type custom"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise TrainerError(
            f"model.entrypoint {entrypoint!r}: cannot import {module_name!r} ({error}); "
            "put the module in the spec tree or on PYTHONPATH"
        ) from error
    factory = getattr(module, function_name, None)
    if not callable(factory):
        raise TrainerError(
            f"model.entrypoint {entrypoint!r}: {module_name} has no function {function_name!r}"
        )
    built = factory(n_inputs, n_outputs, config)
    if not isinstance(built, nn.Module):
        raise TrainerError(
            f"model.entrypoint {entrypoint!r} returned {type(built).__name__}, not a torch.nn.Module"
        )
    return built


def build_model(config: ModelConfig, n_inputs: int, n_outputs: int) -> nn.Module:
    """The model the config names (its parameters drawn from torch's current RNG)."""
    if config.type == "linear":
        return nn.Linear(n_inputs, n_outputs)
    if config.type == "resmlp":
        return ResMLP(n_inputs, n_outputs, config)
    if config.type == "custom":
        return custom(n_inputs, n_outputs, config)
    return mlp(n_inputs, n_outputs, config)


class Predictor(nn.Module):
    """The packaged model: raw outputs through the task's link.

    binary: ``[N]`` probability of class 1; multiclass: ``[N, classes]`` probabilities;
    regression: ``[N]`` predictions.
    """

    def __init__(self, model: nn.Module, task: str) -> None:
        super().__init__()
        self.model = model
        self.task = task

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.model(x)
        if self.task == "multiclass-classification":
            return torch.softmax(out, dim=-1)
        out = out.reshape(out.shape[0])
        if self.task == "binary-classification":
            return torch.sigmoid(out)
        return out
