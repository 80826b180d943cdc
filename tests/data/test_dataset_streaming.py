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
from reconciler.kinds.data import ColumnType, DatasetSpec
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


# --- a parquet source that already is a snapshot --------------------------------------------


def exact_parquet(harness: Harness, rows: int = 3000, **options: Any) -> Path:
    """A parquet file whose columns have exactly the declared types of SCHEMA."""
    import datetime as dt

    import pyarrow.parquet as pq

    start = dt.datetime(2024, 1, 1)
    table = pa.table(
        {
            "id": pa.array(range(rows), pa.int64()),
            "code": pa.array([f"AB-{i}" for i in range(rows)], pa.string()),
            "seen": pa.array(
                [start + dt.timedelta(seconds=i) for i in range(rows)], pa.timestamp("us")
            ),
            "extra": pa.array([i % 3 for i in range(rows)], pa.int32()),  # not declared
        }
    )
    path = harness.root / "data" / "t.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=700, **options)
    return path


def parquet_doc(**spec: Any) -> dict[str, Any]:
    return document("file://data/t.parquet", schema=SCHEMA, **spec)


def test_a_parquet_source_of_the_declared_types_is_copied_and_reads_as_if_converted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow.parquet as pq

    copied, converted = Harness(tmp_path / "a"), Harness(tmp_path / "b")
    for harness in (copied, converted):
        exact_parquet(harness)
    fast = copied.apply(parquet_doc()).outputs
    source = (copied.root / "data" / "t.parquet").read_bytes()
    assert Path(fast["path"]).read_bytes() == source  # the snapshot is the source's bytes
    assert fast["sha256"] == hashlib.sha256(source).hexdigest()
    assert fast["fingerprint"] == "sha256:" + fast["sha256"]
    monkeypatch.setattr(formats, "parquet_copyable", lambda path, hints: False)
    slow = converted.apply(parquet_doc()).outputs
    assert Path(slow["path"]).read_bytes() != source  # re-encoded
    assert (fast["snapshot"], fast["rows"], fast["columns"]) == (
        slow["snapshot"], slow["rows"], slow["columns"],
    )  # fmt: skip
    assert pq.read_table(fast["path"]).equals(pq.read_table(slow["path"]))
    assert [c.name for c in copied.dir.joinpath("snapshots").iterdir()] == [fast["snapshot"]]


def test_a_parquet_column_of_another_type_is_converted_not_copied(harness: Harness) -> None:
    import pyarrow.parquet as pq

    path = exact_parquet(harness)
    table = pq.read_table(path)
    pq.write_table(table.set_column(0, "id", table["id"].cast(pa.int32())), path)
    outputs = harness.apply(parquet_doc()).outputs
    assert Path(outputs["path"]).read_bytes() != path.read_bytes()
    assert pq.read_schema(outputs["path"]).field("id").type == pa.int64()
    assert pq.read_table(outputs["path"])["id"].to_pylist() == list(range(3000))


def test_a_copied_parquet_that_breaks_a_rule_leaves_nothing_behind(harness: Harness) -> None:
    import pyarrow.parquet as pq

    path = exact_parquet(harness)
    table = pq.read_table(path)
    codes = table["code"].to_pylist()
    codes[2500] = "XY-2500"
    pq.write_table(table.set_column(1, "code", pa.array(codes)), path)
    with pytest.raises(PermanentError, match=r"'XY-2500' on row 2,501"):
        harness.apply(parquet_doc())
    assert harness.snapshot_dirs() == []  # neither a snapshot nor a temporary copy


def test_a_copied_parquet_damaged_inside_fails_cleanly(harness: Harness) -> None:
    path = exact_parquet(harness, compression="none")
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 2000] = b"\xff" * 2000  # pages broken, the footer intact
    path.write_bytes(bytes(data))
    assert formats.parquet_copyable(path, [("id", ColumnType.INT)])
    with pytest.raises(PermanentError, match=r"data/t\.parquet is damaged after row"):
        harness.apply(parquet_doc())
    assert harness.snapshot_dirs() == []


def test_prefetch_raises_in_the_caller_and_closes_the_source_early() -> None:
    closed = threading.Event()

    def items() -> Any:
        try:
            yield from range(100)
        finally:
            closed.set()

    with sink.Prefetch(items()) as ahead:
        assert next(iter(ahead)) == 0
    assert closed.wait(5)

    def failing() -> Any:
        yield 1
        raise readers.SourceError("broken at row 2")

    with (
        pytest.raises(readers.SourceError, match="broken at row 2"),
        sink.Prefetch(failing()) as ahead,
    ):
        assert list(ahead) == [1]
