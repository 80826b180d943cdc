"""One read of the source per snapshot, the parquet written on its own thread: same names,
same bytes, and failures that still leave nothing behind."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from providers.base import PermanentError, RetryableError
from providers.local.data import formats, readers, sink
from providers.local.data.layout import snapshot_id, snapshot_key
from reconciler.kinds.data import DatasetSpec
from tests.data.conftest import Harness, document

SCHEMA = [
    {"name": "id", "type": "int", "unique": True},
    {"name": "code", "type": "string", "regex": r"AB-\d+"},
    {"name": "seen", "type": "timestamp"},
]
ROWS = "id,code,seen\n" + "".join(
    f"{i},AB-{i},2024-01-0{1 + i % 9}T00:00:0{i % 10}\n" for i in range(3000)
)


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Several batches per file, and no fingerprint remembered from another test."""
    monkeypatch.setattr(formats, "BLOCK_BYTES", 1 << 14)
    monkeypatch.setattr(formats, "PARQUET_BATCH_ROWS", 500)
    monkeypatch.setattr(readers, "_FINGERPRINTS", {})


def opens_of(path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The modes in which ``path`` is opened through pathlib from now on."""
    modes: list[str] = []
    real = Path.open

    def spy(self: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if self == path:
            modes.append(mode)
        return real(self, mode, *args, **kwargs)

    monkeypatch.setattr(Path, "open", spy)
    return modes


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_the_source_is_read_once_and_names_the_snapshot_as_before(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    path = harness.write("t.csv", ROWS)
    if fmt == "parquet":
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        pq.write_table(pacsv.read_csv(path), path.with_suffix(".parquet"))
        path = path.with_suffix(".parquet")
    opens = opens_of(path, monkeypatch)
    doc = document(f"file://data/{path.name}", schema=SCHEMA)
    outputs = harness.apply(doc).outputs
    assert opens == ["rb"]  # hashed while it streamed, not in a pass of its own
    fingerprint = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    spec = DatasetSpec.model_validate(doc["spec"])
    assert outputs["fingerprint"] == fingerprint
    assert outputs["snapshot"] == snapshot_id(snapshot_key(spec, fingerprint))
    assert outputs["rows"] == 3000


def test_the_manifest_hash_is_the_hash_of_the_written_file(harness: Harness) -> None:
    harness.write("t.csv", ROWS)
    outputs = harness.apply(document(schema=SCHEMA)).outputs
    data = Path(outputs["path"])
    assert outputs["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    manifest = json.loads((data.parent / "manifest.json").read_text())
    assert manifest["sha256"] == outputs["sha256"]


def test_a_snapshot_named_only_after_streaming_is_reused_not_duplicated(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness.write("t.csv", ROWS)
    doc = document(schema=SCHEMA)
    first = harness.apply(doc).outputs
    # a new process, and no record to trust: the name is known only once the rows are read
    monkeypatch.setattr(readers, "_FINGERPRINTS", {})
    (harness.dir / "current.json").unlink()
    harness.applied, harness.outputs = None, {}
    again = harness.apply(doc).outputs
    assert again["snapshot"] == first["snapshot"] and again["createdAt"] == first["createdAt"]
    assert harness.snapshot_dirs() == [first["snapshot"]]  # no temporary directory left


def test_a_failed_rule_stops_the_writer_and_leaves_only_the_report(harness: Harness) -> None:
    bad = ROWS.replace("\n2999,AB-2999,", "\n2999,XY-2999,")
    harness.write("t.csv", bad)
    with pytest.raises(PermanentError, match=r"'XY-2999' on line 3,001"):
        harness.apply(document(schema=SCHEMA))
    assert harness.snapshot_dirs() == []
    assert len(list((harness.dir / "reports").iterdir())) == 1
    assert not [t for t in threading.enumerate() if t.name == "pipeform-parquet"]


def test_a_source_changed_while_streaming_is_retried(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = harness.write("t.csv", ROWS)
    real = formats.csv_batches

    def append_after_first(*args: Any) -> Any:
        for i, batch in enumerate(real(*args)):
            if i == 0:
                with path.open("a") as fh:
                    fh.write("3000,AB-3000,2024-01-01T00:00:00\n")
            yield batch

    monkeypatch.setattr(formats, "csv_batches", append_after_first)
    with pytest.raises(RetryableError, match="changed while it was being read"):
        harness.apply(document(schema=SCHEMA))
    assert harness.snapshot_dirs() == []


def test_a_writer_error_reaches_the_caller(tmp_path: Path) -> None:
    schema = pa.schema([("a", pa.int64())])
    out = sink.ParquetSink(tmp_path / "x.parquet", schema)
    out.put(pa.record_batch([pa.array(["not an int"])], names=["b"]))
    with pytest.raises((ValueError, pa.ArrowInvalid)):
        out.close()
    out.abort()  # after close: nothing left to stop
