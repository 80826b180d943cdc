"""The model package: what a trained run hands to the registry and to serving.

``<output_dir>/package/`` holds:

- ``model.safetensors``  the weights of the raw model (logits / predictions)
- ``model.pt``           TorchScript of the eval-mode model with the task's link applied
                         (sigmoid, softmax or none), traced on one batch and checked
                         against the eager model on another; when
                         tracing fails (a custom model), it is left out and
                         ``metadata.json``'s ``export`` says why
- ``signature.json``     input features (names, float32, in order) and the output
- ``metadata.json``      lineage, trainer version and code digest, the full config,
                         metrics, run id, creation time
- ``transform.json``     the FeatureSet's fitted transform, when the config names one
- ``model_card.json``, ``model_card.md``  every evaluation result (``trainer.card``)

The package is built in a temporary sibling directory and renamed into place, so a
reader never sees half of one. Its digest is ``trainer.registry.common.package_digest``
(each file's relative path and sha256, in sorted order), the same figure the registry
records.
"""

from __future__ import annotations

import copy
import json
import shutil
import uuid
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainer.config import RunConfig
from trainer.fsio import fsync_path, write_atomic
from trainer.models import Predictor
from trainer.redact import scrub_data
from trainer.registry.common import package_digest
from trainer.version import TRAINER_VERSION, trainer_code_digest

PACKAGE_DIR = "package"


def signature(config: RunConfig, n_outputs: int) -> dict[str, Any]:
    """Inputs in model order and what the packaged model's output means."""
    label, task = config.inputs.label, config.model.task
    if task == "binary-classification":
        output = {
            "name": "probability",
            "dtype": "float32",
            "shape": [-1],
            "meaning": f"probability that {label} is 1 (sigmoid of the logit)",
        }
    elif task == "multiclass-classification":
        output = {
            "name": "probabilities",
            "dtype": "float32",
            "shape": [-1, n_outputs],
            "meaning": f"probability of each class 0..{n_outputs - 1} of {label} (softmax)",
        }
    else:
        output = {
            "name": "prediction",
            "dtype": "float32",
            "shape": [-1],
            "meaning": f"predicted {label}",
        }
    return {
        "task": task,
        "inputs": [{"name": name, "dtype": "float32"} for name in config.inputs.features],
        "input_shape": [-1, len(config.inputs.features)],
        "output": output,
        "weights_output": "model.safetensors holds the raw model: logits for classification",
    }


def _export(model: nn.Module, task: str, n_inputs: int, target: Path) -> dict[str, Any]:
    """TorchScript of the predictor, checked against eager outputs; why not, when it fails."""
    predictor = Predictor(model, task).eval()
    example = torch.linspace(-1, 1, 4 * n_inputs, dtype=torch.float32).reshape(4, n_inputs)
    # checked on another batch (other values, other size): a trace that froze a value fails
    check = torch.linspace(2, -3, 7 * n_inputs, dtype=torch.float32).reshape(7, n_inputs)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # torch.jit is deprecated in favour of torch.export
            traced = torch.jit.trace(predictor, example)  # type: ignore[no-untyped-call]
            traced.save(str(target))
            reloaded = torch.jit.load(str(target))  # type: ignore[no-untyped-call]
            if not torch.allclose(reloaded(check), predictor(check), atol=1e-5):
                raise RuntimeError("the traced model's outputs differ from the eager model's")
    except Exception as error:
        target.unlink(missing_ok=True)
        reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        return {"format": "torchscript", "file": None, "status": "failed", "reason": reason[:500]}
    return {"format": "torchscript", "file": "model.pt", "status": "exported", "method": "trace"}


def metadata(
    config: RunConfig, metrics: dict[str, float], training: dict[str, Any], export: dict[str, Any]
) -> dict[str, Any]:
    """The lineage and provenance recorded with the package (and given to the registry)."""
    inputs = config.inputs
    return {
        "run_id": config.run_id,
        "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "lineage": {
            "address": config.lineage.address,
            "spec_hash": config.lineage.spec_hash,
            "git_commit": config.lineage.git_commit,
            "state_lineage": config.lineage.state_lineage,
            "image": config.lineage.image,
            "featureset": inputs.featureset,
            "dataset_snapshots": list(inputs.dataset_snapshots),
            "transform_digest": inputs.transform_digest,
            "train_sha256": inputs.train.sha256,
            "validation_sha256": inputs.validation.sha256,
        },
        "trainer": {
            "version": TRAINER_VERSION,
            "code_digest": trainer_code_digest(),
            "torch": torch.__version__,
        },
        "config": scrub_data(config.model_dump(mode="json")),
        "metrics": metrics,
        "training": training,
        "export": export,
    }


def _json(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True) + "\n").encode()


def write_package(
    output_dir: Path,
    model: nn.Module,
    config: RunConfig,
    metrics: dict[str, float],
    training: dict[str, Any],
    n_inputs: int,
    n_outputs: int,
    card: dict[str, Any] | None = None,
) -> tuple[Path, str, dict[str, Any]]:
    """Build the package; its directory, sha256 digest and metadata."""
    from safetensors.torch import save_file

    output_dir.mkdir(parents=True, exist_ok=True)
    staging = output_dir / f".{PACKAGE_DIR}.tmp-{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    try:
        cpu_model = copy.deepcopy(model).float().cpu().eval()
        weights = {k: v.detach().clone().contiguous() for k, v in cpu_model.state_dict().items()}
        save_file(weights, str(staging / "model.safetensors"), metadata={"format": "pt"})
        export = _export(cpu_model, config.model.task, n_inputs, staging / "model.pt")
        training = {**training, "n_inputs": n_inputs, "n_outputs": n_outputs}
        meta = metadata(config, metrics, training, export)
        if card is not None:
            from trainer.card import CARD_JSON, CARD_MARKDOWN, markdown

            meta["model_card"] = card
            write_atomic(staging / CARD_JSON, _json(card))
            write_atomic(staging / CARD_MARKDOWN, markdown(card).encode())
        write_atomic(staging / "signature.json", _json(signature(config, n_outputs)))
        write_atomic(staging / "metadata.json", _json(meta))
        if config.inputs.transform_path:
            write_atomic(
                staging / "transform.json", Path(config.inputs.transform_path).read_bytes()
            )
        for written in staging.iterdir():  # the weights and model.pt (the JSON already is)
            fsync_path(written)
        fsync_path(staging)
        final = output_dir / PACKAGE_DIR
        if final.exists():  # a retry: the new package replaces the old
            retired = output_dir / f".{PACKAGE_DIR}.old-{uuid.uuid4().hex[:12]}"
            final.rename(retired)
            shutil.rmtree(retired, ignore_errors=True)
        staging.rename(final)
        fsync_path(output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final, package_digest(final), meta
