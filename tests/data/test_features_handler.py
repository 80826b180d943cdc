"""The FeatureSet handler of the local provider: plan, apply, read, delete, content addressing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import yaml

from providers.base import (
    ApplyRequest,
    DeleteRequest,
    PermanentError,
    PlanRequest,
    ReadRequest,
    ResourceContext,
)
from providers.local.data import features
from providers.local.featureset import OUTPUTS, FeatureSetHandler, inputs_fingerprint
from providers.local.settings import LocalSettings
from reconciler.kinds.data import FeatureSet
from reconciler.plan.model import UNKNOWN
from tests.conftest import ROOT as REPO
from tests.conftest import CopyExample

LEAKY = {
    "outpdol",
    "drugdol",
    "suppdol",
    "mentdol",
    "inpdol",
    "meddol",
    "lnmeddol",
    "totadm",
    "inpmis",
    "mentvis",
    "mdvis",
    "notmdvis",
    "zper_f",
    "time",
}

SPEC: dict[str, Any] = {
    "provider": None,
    "dataset": "events",
    "entity": ["id"],
    "label": {"column": "y"},
    "features": [
        {"name": "x", "column": None, "transforms": [{"type": "standardize"}]},
        {
            "name": "c",
            "column": None,
            "transforms": [
                {"type": "onehot", "vocabulary": None, "maxCategories": 50, "other": True}
            ],
        },
    ],
    "split": {"type": "temporal", "column": "t", "validationFrom": 1},
}


def write_snapshot(tmp_path: Path, name: str = "data", x_offset: float = 0.0) -> dict[str, Any]:
    path = tmp_path / f"{name}.parquet"
    table = pa.table(
        {
            "id": list(range(8)),
            "t": [0, 0, 0, 0, 0, 1, 1, 1],
            "x": [float(i) + x_offset for i in range(8)],
            "c": list("abcabcab"),
            "y": [0, 1, 0, 1, 1, 0, 1, 0],
        }
    )
    pq.write_table(table, path)
    return {"snapshot": f"ds-{name}", "path": str(path), "rows": 8}


@pytest.fixture
def handler(tmp_path: Path) -> FeatureSetHandler:
    settings = LocalSettings(root=tmp_path, data_dir=tmp_path / "data")
    return FeatureSetHandler(settings)


def ctx(tmp_path: Path, lineage: str = "lineage-1") -> ResourceContext:
    return ResourceContext.of("FeatureSet/feats", lineage, tmp_path)


def doc(spec: dict[str, Any] = SPEC) -> dict[str, Any]:
    return {"metadata": {"labels": {}, "annotations": {}}, "spec": spec}


def plan(
    h: FeatureSetHandler,
    tmp_path: Path,
    upstream: dict[str, Any],
    prior: dict[str, Any] | None = None,
) -> Any:
    return h.plan(
        PlanRequest(
            ctx(tmp_path),
            doc() if prior else None,
            doc(),
            prior or {},
            {"Dataset/events": upstream},
        )
    )


def apply(
    h: FeatureSetHandler,
    tmp_path: Path,
    upstream: dict[str, Any],
    prior: dict[str, Any] | None = None,
    spec: dict[str, Any] = SPEC,
) -> Any:
    request = ApplyRequest(
        ctx(tmp_path), doc(spec), None, prior or {}, None, {"Dataset/events": upstream}
    )
    return h.update(request) if prior else h.create(request)


def read(h: FeatureSetHandler, tmp_path: Path) -> Any:
    return h.read(ReadRequest(ctx(tmp_path), doc(), {}, None))


def mtimes(directory: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in sorted(directory.rglob("*"))}


def test_the_plan_fingerprint_is_content_addressed_and_stable(
    handler: FeatureSetHandler, tmp_path: Path
) -> None:
    upstream = write_snapshot(tmp_path)
    first = plan(handler, tmp_path, upstream)
    assert first.inputs_fingerprint == inputs_fingerprint(SPEC, "ds-data")
    assert set(first.unknown_outputs) == set(OUTPUTS)
    created = apply(handler, tmp_path, upstream)
    assert created.outputs["id"] == "fs-" + first.inputs_fingerprint.removeprefix("sha256:")[:24]
    unchanged = plan(handler, tmp_path, upstream, created.outputs)
    assert unchanged.inputs_fingerprint == first.inputs_fingerprint
    assert unchanged.unknown_outputs == []


def test_a_pending_upstream_snapshot_marks_everything_unknown(
    handler: FeatureSetHandler, tmp_path: Path
) -> None:
    upstream = write_snapshot(tmp_path)
    created = apply(handler, tmp_path, upstream)
    pending = plan(
        handler, tmp_path, {**upstream, "snapshot": UNKNOWN, "path": UNKNOWN}, created.outputs
    )
    assert set(pending.unknown_outputs) == set(OUTPUTS)
    assert pending.inputs_fingerprint != inputs_fingerprint(SPEC, "ds-data")
    moved = plan(handler, tmp_path, {**upstream, "snapshot": "ds-new"}, created.outputs)
    assert moved.reason_detail == "dataset snapshot changed (ds-data -> ds-new)"
    assert set(moved.unknown_outputs) == set(OUTPUTS)


def test_apply_writes_the_contracted_outputs_and_files(
    handler: FeatureSetHandler, tmp_path: Path
) -> None:
    upstream = write_snapshot(tmp_path)
    out = apply(handler, tmp_path, upstream).outputs
    directory = tmp_path / "data" / "features" / "feats" / out["id"]
    assert out["dir"] == str(directory)
    assert sorted(p.name for p in directory.iterdir()) == [
        "manifest.json",
        "stats.json",
        "train.parquet",
        "transform.json",
        "validation.parquet",
    ]
    assert out["train"]["rows"] == 5 and out["validation"]["rows"] == 3
    assert out["features"] == ["x", "c__a", "c__b", "c__c", "c__other"]
    assert out["featureTypes"] == {name: "float32" for name in out["features"]}
    assert (out["label"], out["entity"], out["datasetSnapshot"]) == ("y", ["id"], "ds-data")
    table = pq.read_table(out["train"]["path"])
    assert table.column_names == ["id", *out["features"], "y"]
    transform_bytes = Path(out["transform"]["path"]).read_bytes()
    import hashlib

    assert out["transform"]["digest"] == "sha256:" + hashlib.sha256(transform_bytes).hexdigest()
    record = json.loads((directory.parent / "current.json").read_text())
    assert record["id"] == out["id"] and record["labels"] == ctx(tmp_path).owner_labels


def test_a_second_apply_rewrites_nothing(handler: FeatureSetHandler, tmp_path: Path) -> None:
    upstream = write_snapshot(tmp_path)
    first = apply(handler, tmp_path, upstream)
    before = mtimes(tmp_path / "data")
    second = apply(handler, tmp_path, upstream, first.outputs)
    assert second.outputs == first.outputs and second.observed == first.observed
    assert mtimes(tmp_path / "data") == before
    assert read(handler, tmp_path).observed == first.observed


def test_a_new_snapshot_materialises_a_new_directory(
    handler: FeatureSetHandler, tmp_path: Path
) -> None:
    first = apply(handler, tmp_path, write_snapshot(tmp_path))
    second = apply(handler, tmp_path, write_snapshot(tmp_path, "v2", x_offset=10), first.outputs)
    assert second.outputs["id"] != first.outputs["id"]
    assert Path(first.outputs["dir"]).is_dir() and Path(second.outputs["dir"]).is_dir()
    assert read(handler, tmp_path).outputs["id"] == second.outputs["id"]


def test_a_tampered_table_shows_as_drift_and_apply_repairs_it(
    handler: FeatureSetHandler, tmp_path: Path
) -> None:
    upstream = write_snapshot(tmp_path)
    created = apply(handler, tmp_path, upstream)
    train = Path(created.outputs["train"]["path"])
    pq.write_table(pq.read_table(train).slice(0, 2), train)
    drifted = read(handler, tmp_path)
    assert drifted.exists and drifted.observed["id"] == created.outputs["id"]
    assert drifted.observed["trainSha256"] != created.observed["trainSha256"]
    assert drifted.observed["validationSha256"] == created.observed["validationSha256"]
    repaired = apply(handler, tmp_path, upstream, created.outputs)
    assert repaired.observed == created.observed
    assert read(handler, tmp_path).observed == created.observed


def test_read_of_nothing_and_delete(handler: FeatureSetHandler, tmp_path: Path) -> None:
    assert not read(handler, tmp_path).exists
    created = apply(handler, tmp_path, write_snapshot(tmp_path))
    assert read(handler, tmp_path).exists
    request = DeleteRequest(ctx(tmp_path), doc(), created.outputs, created.external_id)
    handler.delete(request)
    assert not read(handler, tmp_path).exists
    assert not (tmp_path / "data" / "features" / "feats").exists()
    handler.delete(request)  # deleting what is gone succeeds


def test_another_states_feature_set_is_left_alone(
    handler: FeatureSetHandler, tmp_path: Path
) -> None:
    created = apply(handler, tmp_path, write_snapshot(tmp_path))
    other = ctx(tmp_path, lineage="lineage-2")
    with pytest.raises(PermanentError, match=r"belongs to FeatureSet/feats.*cannot import"):
        handler.delete(DeleteRequest(other, doc(), created.outputs, None))
    assert Path(created.outputs["dir"]).is_dir()


def test_apply_without_a_snapshot_says_to_apply_the_dataset(
    handler: FeatureSetHandler, tmp_path: Path
) -> None:
    with pytest.raises(PermanentError, match="apply Dataset/events first"):
        apply(handler, tmp_path, {"snapshot": UNKNOWN, "path": UNKNOWN})


def test_the_transform_code_version_is_one_number() -> None:
    from providers.local import featureset
    from providers.local.data import features_build

    assert featureset.TRANSFORM_CODE_VERSION == features.TRANSFORM_CODE_VERSION
    assert featureset.TABLE_FORMAT == features_build.TABLE_FORMAT


def test_a_new_table_format_plans_one_rematerialisation_with_its_reason(
    handler: FeatureSetHandler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from providers.local import featureset

    upstream = write_snapshot(tmp_path)
    created = apply(handler, tmp_path, upstream)
    assert (
        json.loads(Path(created.outputs["dir"], "manifest.json").read_text())["tableFormat"]
        == featureset.TABLE_FORMAT
    )
    monkeypatch.setattr(featureset, "TABLE_FORMAT", featureset.TABLE_FORMAT + 1)  # an upgrade
    upgraded = plan(handler, tmp_path, upstream, created.outputs)
    assert set(upgraded.unknown_outputs) == set(OUTPUTS)
    assert upgraded.reason_detail == (
        "feature table format changed (pipeform upgrade); re-materialising"
    )
    again = apply(handler, tmp_path, upstream, created.outputs)
    assert again.outputs["id"] != created.outputs["id"]
    assert plan(handler, tmp_path, upstream, again.outputs).unknown_outputs == []
    edited = {**SPEC, "label": {"column": "x"}}
    changed = handler.plan(
        PlanRequest(ctx(tmp_path), doc(), doc(edited), again.outputs, {"Dataset/events": upstream})
    )
    assert changed.reason_detail == "feature transform code or spec changed"


def test_format_one_ids_are_the_ids_earlier_releases_gave() -> None:
    import hashlib

    from providers.local.featureset import TRANSFORM_CODE_VERSION, spec_hash

    text = f"{spec_hash(SPEC)}\nds-data\n{TRANSFORM_CODE_VERSION}"
    assert inputs_fingerprint(SPEC, "ds-data", table_format=1) == (
        "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    )
    assert inputs_fingerprint(SPEC, "ds-data") != inputs_fingerprint(SPEC, "ds-data", 1)


def test_planning_does_not_import_pyarrow() -> None:
    code = (
        "import sys, providers.local.featureset;"
        "print(sorted(m for m in ('pyarrow', 'numpy') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert result.stdout.strip() == "[]"


def test_the_quickstart_features_materialise_over_randhie(
    handler: FeatureSetHandler, tmp_path: Path, copy_example: CopyExample
) -> None:
    quickstart = copy_example()
    source = tmp_path / "randhie.parquet"
    pq.write_table(pacsv.read_csv(quickstart / "data" / "randhie.csv"), source)
    document = yaml.safe_load((quickstart / "features.yaml").read_text())
    spec = FeatureSet.model_validate(document).model_dump(mode="json", by_alias=True)["spec"]
    upstream = {"snapshot": "ds-randhie", "path": str(source)}
    context = ResourceContext.of("FeatureSet/hie-features", "lineage-1", tmp_path)
    request = ApplyRequest(
        context, doc(spec), None, {}, None, {f"Dataset/{spec['dataset']}": upstream}
    )
    out = handler.create(request).outputs
    train, validation = (
        pq.read_table(out["train"]["path"]),
        pq.read_table(out["validation"]["path"]),
    )
    assert (train.num_rows, validation.num_rows) == (16_761, 3_429)
    assert set(train["year"].to_pylist()) == {1, 2, 3}
    assert set(validation["year"].to_pylist()) == {4, 5}
    assert not LEAKY & {name.split("__")[0] for name in out["features"]}
    assert "site__1" in out["features"] and "educdec" in out["features"]
    assert train.schema.field("binexp").type == pa.int64()
    stats = json.loads(Path(out["stats"]).read_text())
    assert stats["sources"]["educdec"]["train"]["nulls"] == 4
    assert stats["features"]["educdec"]["train"]["nulls"] == 0
