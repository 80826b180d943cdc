"""Retrain policies: what a plan says about a TrainingJob before anything trains.

A second plan with nothing changed must be a no-op (same fingerprint, no unknown
outputs); a changed hyperparameter, new features or new trainer code must plan a retrain
and say why.
"""

from __future__ import annotations

import shutil

import pytest

from providers.local import training
from providers.local.training import OUTPUTS
from tests.training.conftest import Bench

UNKNOWN = "(known after apply)"


@pytest.fixture
def trained(bench: Bench, fake_trainer: object) -> tuple[Bench, object]:
    doc = bench.doc()
    return bench, bench.apply(doc)


def test_first_plan_trains_and_every_output_waits_for_apply(bench: Bench) -> None:
    planned = bench.plan(bench.doc())
    assert planned.inputs_fingerprint and planned.inputs_fingerprint.startswith("sha256:")
    assert planned.unknown_outputs == list(OUTPUTS)


def test_a_second_plan_with_nothing_changed_is_a_no_op(trained: tuple[Bench, object]) -> None:
    bench, applied = trained
    doc = bench.doc()
    first = bench.plan(doc)  # what the applier recorded as the inputs fingerprint
    again = bench.plan(doc, applied, doc)  # type: ignore[arg-type]
    assert again.inputs_fingerprint == first.inputs_fingerprint
    assert again.unknown_outputs == []
    assert again.reason_detail is None


def test_changing_one_hyperparameter_plans_a_retrain(trained: tuple[Bench, object]) -> None:
    bench, applied = trained
    doc = bench.doc()
    changed = bench.doc(
        hyperparameters={"epochs": 2, "batchSize": 64, "learningRate": 0.005, "seed": 1}
    )
    before = bench.plan(doc, applied, doc)  # type: ignore[arg-type]
    after = bench.plan(changed, applied, doc)  # type: ignore[arg-type]
    assert after.inputs_fingerprint != before.inputs_fingerprint
    assert after.unknown_outputs == list(OUTPUTS)
    assert after.reason_detail == "retrain: spec changed"


def test_new_features_plan_a_retrain_naming_both_ids(trained: tuple[Bench, object]) -> None:
    bench, applied = trained
    doc = bench.doc()
    old = bench.featureset["id"]
    moved = {"FeatureSet/churn-features": {**bench.featureset, "id": "fs-" + "b" * 24}}
    planned = bench.plan(doc, applied, doc, upstream=moved)  # type: ignore[arg-type]
    assert planned.unknown_outputs == list(OUTPUTS)
    assert planned.reason_detail == f"retrain: features changed ({old} -> fs-{'b' * 24})"


def test_features_still_being_made_mark_the_fingerprint_pending(
    trained: tuple[Bench, object],
) -> None:
    bench, applied = trained
    doc = bench.doc()
    pending = {"FeatureSet/churn-features": {**bench.featureset, "id": UNKNOWN}}
    planned = bench.plan(doc, applied, doc, upstream=pending)  # type: ignore[arg-type]
    assert planned.inputs_fingerprint != bench.plan(doc, applied, doc).inputs_fingerprint  # type: ignore[arg-type]
    assert planned.unknown_outputs == list(OUTPUTS)


def test_new_trainer_code_plans_a_retrain(
    trained: tuple[Bench, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    bench, applied = trained
    doc = bench.doc()
    monkeypatch.setattr(training, "trainer_digest", lambda: "sha256:" + "c" * 64)
    planned = bench.plan(doc, applied, doc)  # type: ignore[arg-type]
    assert planned.reason_detail == "retrain: trainer code changed"
    assert planned.unknown_outputs == list(OUTPUTS)


def test_the_trainer_digest_follows_the_trainer_sources() -> None:
    digest = training.trainer_digest()
    assert digest.startswith("sha256:") and digest == training.trainer_digest()


def test_never_stops_following_inputs_once_trained(bench: Bench, fake_trainer: object) -> None:
    doc = bench.doc(retrain="never")
    applied = bench.apply(doc)
    moved = {"FeatureSet/churn-features": {**bench.featureset, "id": "fs-" + "d" * 24}}
    planned = bench.plan(doc, applied, doc, upstream=moved)
    assert planned.inputs_fingerprint is None  # the engine then plans no retrain
    assert planned.unknown_outputs == []
    edited = bench.doc(retrain="never", retries=3)
    assert bench.plan(edited, applied, doc).unknown_outputs == list(OUTPUTS)


def test_always_retrains_on_every_plan(trained: tuple[Bench, object]) -> None:
    bench, applied = trained
    doc = bench.doc(retrain="always")
    first = bench.plan(doc, applied, doc)  # type: ignore[arg-type]
    second = bench.plan(doc, applied, doc)  # type: ignore[arg-type]
    assert first.inputs_fingerprint != second.inputs_fingerprint
    assert first.reason_detail == "retrain: always"
    assert first.unknown_outputs == list(OUTPUTS)


def test_a_deleted_run_directory_reads_as_gone_and_plans_training(
    trained: tuple[Bench, object],
) -> None:
    bench, applied = trained
    doc = bench.doc()
    shutil.rmtree(bench.run_dirs()[0])
    assert bench.read(applied).exists is False  # type: ignore[arg-type]
    assert bench.plan(doc, applied, doc).unknown_outputs == list(OUTPUTS)  # type: ignore[arg-type]
