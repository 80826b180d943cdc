"""Input tables: verify their checksums, then load whole splits as tensors.

Tabular splits are small enough to hold in memory, so each split becomes one float32
feature matrix and one label vector; the loop slices batches by index instead of going
through a per-row ``Dataset``. Checksums are verified for every table before any of them
is read, so a mismatch stops the run before training (and before any checkpoint).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from trainer.config import SEGMENT_PREFIX, Inputs, ModelConfig, Table
from trainer.errors import BadInputError, TrainerError
from trainer.fsio import sha256_file


@dataclass(frozen=True)
class Split:
    """One split: features [rows, n_features] float32 and labels [rows]."""

    x: torch.Tensor
    y: torch.Tensor

    @property
    def rows(self) -> int:
        return int(self.x.shape[0])


@dataclass(frozen=True)
class TrainingData:
    train: Split
    validation: Split
    n_inputs: int
    n_outputs: int  # 1 for binary and regression, the class count for multiclass
    #: the validation split's segment columns, each value as text ("(missing)" for null)
    segments: dict[str, np.ndarray] = field(default_factory=dict)


def verify_table(table: Table, what: str) -> None:
    """Raise BadInputError when the table is missing or its bytes differ from its sha256."""
    path = Path(table.path)
    if not path.is_file():
        raise BadInputError(
            f"the {what} table {path} does not exist; re-materialise the FeatureSet "
            "(pipeform apply) and run again"
        )
    expected = table.sha256.removeprefix("sha256:").lower()
    actual = sha256_file(path)
    if actual != expected:
        raise BadInputError(
            f"the {what} table {path} has sha256 {actual[:16]}…, not the recorded "
            f"{expected[:16]}…: it changed after the FeatureSet was materialised; "
            "re-materialise it (pipeform apply) instead of editing it"
        )


def verify_inputs(inputs: Inputs) -> None:
    """Every input's checksum, before anything is read or trained."""
    verify_table(inputs.train, "train")
    verify_table(inputs.validation, "validation")
    if inputs.transform_path and not Path(inputs.transform_path).is_file():
        raise BadInputError(
            f"the transform file {inputs.transform_path} does not exist; "
            "re-materialise the FeatureSet (pipeform apply)"
        )


def _read_columns(path: Path, features: list[str], label: str) -> tuple[np.ndarray, np.ndarray]:
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    missing = [name for name in [*features, label] if name not in schema.names]
    if missing:
        raise TrainerError(
            f"{path} has no column(s) {', '.join(missing)} (it has {', '.join(schema.names)}); "
            "the TrainingJob's features and label must match the FeatureSet's output"
        )
    table = pq.read_table(path, columns=[*features, label])
    x = np.empty((table.num_rows, len(features)), dtype=np.float32)
    for i, name in enumerate(features):
        column = table.column(name)
        if column.null_count:
            raise TrainerError(
                f"{path}: feature column {name!r} has {column.null_count} missing values; "
                "add a fillna transform to the FeatureSet"
            )
        x[:, i] = column.to_numpy(zero_copy_only=False)
    labels = table.column(label)
    if labels.null_count:
        raise TrainerError(f"{path}: label column {label!r} has {labels.null_count} missing values")
    return x, labels.to_numpy(zero_copy_only=False)


def _labels(values: np.ndarray, task: str, path: str) -> torch.Tensor:
    if task == "regression":
        return torch.from_numpy(values.astype(np.float32))
    as_int = values.astype(np.int64)
    if not np.array_equal(as_int, values) or (as_int.size and as_int.min() < 0):
        raise TrainerError(
            f"{path}: classification labels must be integers 0, 1, ...; found "
            f"{sorted(set(values.tolist()))[:5]}"
        )
    if task == "binary-classification":
        if as_int.size and as_int.max() > 1:
            raise TrainerError(
                f"{path}: binary-classification labels must be 0 or 1; found "
                f"{sorted(set(as_int.tolist()))[:5]}; use multiclass-classification"
            )
        return torch.from_numpy(as_int.astype(np.float32))
    return torch.from_numpy(as_int)


def _split(table: Table, inputs: Inputs, task: str) -> Split:
    x, y = _read_columns(Path(table.path), inputs.features, inputs.label)
    if not np.isfinite(x).all():
        raise TrainerError(f"{table.path}: a feature holds an infinite or NaN value")
    return Split(torch.from_numpy(x), _labels(y, task, table.path))


MISSING_SEGMENT = "(missing)"


def _segment_text(value: object) -> str:
    if value is None:
        return MISSING_SEGMENT
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 1.0 reads as 1, as the Dataset's values are written
    return str(value)


def load_segments(table: Table, names: list[str]) -> dict[str, np.ndarray]:
    """The segment columns of a table, as text labels, one array per segment."""
    if not names:
        return {}
    import pyarrow.parquet as pq

    columns = [SEGMENT_PREFIX + name for name in names]
    have = pq.read_schema(table.path).names
    missing = [name for name, column in zip(names, columns, strict=True) if column not in have]
    if missing:
        raise TrainerError(
            f"{table.path} has no segment column(s) {', '.join(missing)}; add them to the "
            "FeatureSet's segments and re-materialise it (pipeform apply)"
        )
    read = pq.read_table(table.path, columns=columns)
    return {
        name: np.array([_segment_text(v) for v in read.column(column).to_pylist()], dtype=object)
        for name, column in zip(names, columns, strict=True)
    }


def load_data(inputs: Inputs, model: ModelConfig) -> TrainingData:
    """Both splits as tensors; the output width from the task (and labels for multiclass)."""
    if not inputs.features:
        raise TrainerError("the config lists no features; the FeatureSet has no output columns")
    train = _split(inputs.train, inputs, model.task)
    validation = _split(inputs.validation, inputs, model.task)
    if train.rows == 0 or validation.rows == 0:
        empty = "train" if train.rows == 0 else "validation"
        raise TrainerError(f"the {empty} split is empty; check the FeatureSet's split")
    n_outputs = 1
    if model.task == "multiclass-classification":
        seen = int(max(train.y.max().item(), validation.y.max().item())) + 1
        n_outputs = model.num_classes or seen
        if seen > n_outputs:
            raise TrainerError(
                f"a label is {seen - 1} but model.num_classes is {n_outputs}; raise num_classes"
            )
        if n_outputs < 2:
            raise TrainerError("multiclass-classification needs at least 2 classes")
    segments = load_segments(inputs.validation, inputs.segments)
    return TrainingData(train, validation, len(inputs.features), n_outputs, segments)
