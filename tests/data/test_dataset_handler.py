"""The Dataset handler's protocol: read, plan (no-op, reasons, errors), adopt, delete, import."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from providers.base import DeleteRequest, ImportRequest, PermanentError, ResourceContext
from tests.data.conftest import LINEAGE, Harness, document

DATA = "id,v\n1,1.5\n2,2.5\n"
SCHEMA = [{"name": "id", "type": "int"}, {"name": "v", "type": "float"}]


def test_plan_says_the_source_changed_and_which_outputs_wait(harness: Harness) -> None:
    harness.write("t.csv", DATA)
    doc = document(schema=SCHEMA)
    first = harness.plan(doc)
    assert first.unknown_outputs and first.inputs_fingerprint
    harness.apply(doc)
    same = harness.plan(doc)
    assert same.unknown_outputs == [] and same.inputs_fingerprint == first.inputs_fingerprint
    old = harness.outputs["fingerprint"]
    harness.write("t.csv", DATA + "3,3.5\n")
    moved = harness.plan(doc)
    assert (
        "snapshot" in moved.unknown_outputs and moved.inputs_fingerprint != first.inputs_fingerprint
    )
    assert (
        moved.reason_detail
        == f"source changed ({old[:15]}… → {harness.read().observed['fingerprint'][:15]}…)"
    )
    assert harness.read().observed["snapshot"] == harness.outputs["snapshot"]


def test_a_missing_source_is_a_clear_plan_error(harness: Harness) -> None:
    with pytest.raises(PermanentError, match=r"source file data/t.csv does not exist"):
        harness.plan(document(schema=SCHEMA))


def test_s3_without_credentials_is_one_clear_error(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(PermanentError, match=r"no AWS credentials were found"):
        harness.plan(document("s3://bucket/t.csv", schema=SCHEMA))


def test_read_observes_gone_and_the_current_record(harness: Harness) -> None:
    assert not harness.read().exists
    harness.write("t.csv", DATA)
    response = harness.apply(document(schema=SCHEMA))
    live = harness.read()
    assert live.exists and live.observed == response.observed and live.outputs == response.outputs


def test_create_adopts_ours_and_refuses_anothers(harness: Harness, tmp_path: Path) -> None:
    harness.write("t.csv", DATA)
    doc = document(schema=SCHEMA)
    harness.apply(doc)
    record = (harness.dir / "current.json").read_bytes()
    again = Harness(harness.root)  # a create retried after a crash: same labels
    again.apply(doc)
    assert (
        again.outputs == harness.outputs and (harness.dir / "current.json").read_bytes() == record
    )
    other = Harness(harness.root)
    other.ctx = ResourceContext(
        "Dataset/t", "Dataset", "t", "55555555-5555-4555-8555-555555555555", harness.root
    )
    with pytest.raises(PermanentError, match="belongs to Dataset/t in the state with lineage"):
        other.apply(doc)


def test_stale_temporary_directories_are_cleaned(harness: Harness) -> None:
    harness.write("t.csv", DATA)
    harness.apply(document(schema=SCHEMA))
    stale = harness.dir / "snapshots" / ".tmp-ds-000000000000000000000000-999999999-abcd"
    stale.mkdir()
    (stale / "data.parquet").write_bytes(b"half")
    harness.write("t.csv", DATA + "3,3.5\n")
    harness.apply(document(schema=SCHEMA))
    assert not stale.exists()
    assert all(name.startswith("ds-") for name in harness.snapshot_dirs())


def test_delete_removes_record_and_snapshots_and_is_idempotent(harness: Harness) -> None:
    harness.write("t.csv", DATA)
    harness.apply(document(schema=SCHEMA))
    request = DeleteRequest(harness.ctx, harness.applied, harness.outputs, "t")
    harness.handler.delete(request)
    assert not harness.dir.exists()
    harness.handler.delete(request)
    assert not harness.read().exists


def test_import_by_dataset_name(harness: Harness) -> None:
    harness.write("t.csv", DATA)
    harness.apply(document(schema=SCHEMA))
    ctx = ResourceContext(
        "Dataset/t", "Dataset", "t", "66666666-6666-4666-8666-666666666666", harness.root
    )
    imported = harness.handler.import_(ImportRequest(ctx, "t"))
    assert imported.outputs["snapshot"] == harness.outputs["snapshot"]
    labels = json.loads((harness.dir / "current.json").read_text())["labels"]
    assert labels["pipeform.dev/lineage"] == ctx.lineage
    with pytest.raises(PermanentError, match="no dataset snapshot record"):
        harness.handler.import_(ImportRequest(ctx, "nothing"))


def test_fingerprint_trusts_size_and_mtime_then_rehashes(harness: Harness) -> None:
    from providers.local.data.readers import open_source
    from reconciler.kinds.data import CsvOptions, DataFormat

    path = harness.write("t.csv", DATA)
    source = open_source(
        "file://data/t.csv", DataFormat.CSV, CsvOptions(), harness.handler.settings
    )
    record = source.record()
    assert record["fingerprint"].startswith("sha256:")
    assert source.fingerprint({**record, "fingerprint": "sha256:cached"}) == "sha256:cached"
    path.write_text(DATA.replace("1.5", "9.5"))
    os.utime(path, ns=(record["mtimeNs"] + 1000, record["mtimeNs"] + 1000))
    assert source.fingerprint({**record, "fingerprint": "sha256:cached"}) not in (
        "sha256:cached",
        record["fingerprint"],
    )
    assert LINEAGE


@pytest.mark.parametrize("upgrade", ["SNAPSHOT_FORMAT", "READER_VERSION"])
def test_a_new_snapshot_format_is_the_plans_reason_not_the_rules(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, upgrade: str
) -> None:
    from providers.local.data import layout

    harness.write("t.csv", DATA)
    doc = document(schema=SCHEMA)
    harness.apply(doc)
    monkeypatch.setattr(layout, upgrade, "next")  # what a pipeform upgrade does to the ids
    upgraded = harness.plan(doc)
    assert "snapshot" in upgraded.unknown_outputs
    assert upgraded.reason_detail == (
        "snapshot format changed (pipeform upgrade); re-taking the snapshot"
    )
    stricter = document(schema=[SCHEMA[0], {**SCHEMA[1], "min": 0}])
    assert harness.plan(stricter).reason_detail == "schema or validation rules changed"
    harness.apply(doc)
    assert harness.plan(doc).unknown_outputs == []
