"""Bad input never damages a dataset: one clear error, the previous snapshot stays current
and byte-identical, and no partial snapshot is left behind."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from providers.base import PermanentError
from tests.data.conftest import Harness, document

HEADER = "id,amount,city"
GOOD = "\n".join([HEADER, "1,10.5,paris", "2,20.0,oslo", "3,,rome"]) + "\n"
SCHEMA = [
    {"name": "id", "type": "int", "nullable": False},
    {"name": "amount", "type": "float"},
    {"name": "city", "type": "string"},
]


def csv_doc(**spec: object) -> dict[str, object]:
    return document("file://data/t.csv", schema=SCHEMA, **spec)


@pytest.fixture
def applied(harness: Harness) -> Harness:
    """A dataset with one good snapshot current."""
    harness.write("t.csv", GOOD)
    harness.apply(csv_doc())
    return harness


def fails_cleanly(h: Harness, doc: dict[str, object], *needles: str) -> str:
    """Apply must fail with one message holding every needle, changing nothing."""
    before = h.tree_bytes()
    current = h.snapshot_dirs()
    with pytest.raises(PermanentError) as caught:
        h.apply(doc)
    message = str(caught.value)
    for needle in needles:
        assert re.search(needle, message), f"{needle!r} not in: {message}"
    assert "Traceback" not in message
    assert h.tree_bytes() == before  # current.json and the snapshot: byte-identical
    assert h.snapshot_dirs() == current  # no temporary or partial directory left
    return message


def test_truncated_csv_names_the_cut_line(applied: Harness) -> None:
    applied.write("t.csv", GOOD + "4,30.")  # fine: a short last value still parses
    applied.write("t.csv", GOOD + "4,30")  # cut in the middle of the last line
    fails_cleanly(applied, csv_doc(), r"line 5", "expected 3 columns, found 2", "truncated")


def test_a_string_in_an_int_column_names_column_line_and_value(applied: Harness) -> None:
    applied.write("t.csv", GOOD + "x7,1.0,bonn\n")
    fails_cleanly(applied, csv_doc(), "column id", "line 5", "'x7'", "not a valid int")


def test_missing_declared_column(applied: Harness) -> None:
    applied.write("t.csv", "id,amount\n1,2.0\n")
    fails_cleanly(applied, csv_doc(), "missing from the source: city")


def test_extra_column_fails_only_with_strict_columns(applied: Harness) -> None:
    applied.write("t.csv", "id,amount,city,extra\n1,2.0,oslo,x\n")
    fails_cleanly(applied, csv_doc(strictColumns=True), "not declared in the schema: extra")
    applied.apply(csv_doc())  # without strictColumns the extra column is kept, unchecked
    assert "extra" in applied.outputs["columns"]


def test_empty_file_and_header_only_file(applied: Harness) -> None:
    applied.write("t.csv", b"")
    fails_cleanly(applied, csv_doc(), r"data/t.csv is empty \(0 bytes\)")
    applied.write("t.csv", HEADER + "\n")
    fails_cleanly(applied, csv_doc(), "has no data rows")


def test_non_utf8_text_names_the_line(applied: Harness) -> None:
    applied.write("t.csv", (GOOD + "4,1.0,k\xf6ln\n").encode("latin-1"))
    fails_cleanly(applied, csv_doc(), "not UTF-8", "line 5")


def test_non_utf8_jsonl(harness: Harness) -> None:
    harness.write("t.jsonl", b'{"id": 1}\n')
    doc = document("file://data/t.jsonl", schema=[{"name": "id", "type": "int"}])
    harness.apply(doc)
    harness.write("t.jsonl", b'{"id": 1}\n{"id": 2, "c": "k\xf6ln"}\n')
    fails_cleanly(harness, doc, "not UTF-8", "line 2")


def parquet_doc() -> dict[str, object]:
    return document("file://data/t.parquet", schema=SCHEMA)


def write_parquet(h: Harness, rows: int = 1000) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "id": list(range(rows)),
            "amount": [float(i) for i in range(rows)],
            "city": [f"c{i % 7}" for i in range(rows)],
        }
    )
    path = h.root / "data" / "t.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=100)
    return path


def test_corrupt_parquet_random_bytes_and_truncated(harness: Harness) -> None:
    path = write_parquet(harness)
    harness.apply(parquet_doc())
    good = path.read_bytes()
    path.write_bytes(os.urandom(4096))
    fails_cleanly(harness, parquet_doc(), "data/t.parquet is not a readable parquet file")
    path.write_bytes(good[: len(good) // 2])
    fails_cleanly(harness, parquet_doc(), "data/t.parquet is not a readable parquet file")


def test_parquet_string_in_int_column_names_the_row(harness: Harness) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    write_parquet(harness)
    harness.apply(parquet_doc())
    table = pa.table(
        {"id": ["1", "2", "three"], "amount": [1.0, 2.0, 3.0], "city": ["a", "b", "c"]}
    )
    pq.write_table(table, harness.root / "data" / "t.parquet")
    fails_cleanly(harness, parquet_doc(), "column id", "row 3", "'three'")


def test_source_escaping_the_tree_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    outside = tmp_path / "secret.csv"
    outside.write_text(GOOD)
    (root / "data").mkdir()
    (root / "data" / "link.csv").symlink_to(outside)
    h = Harness(root)
    for uri in ("file://../secret.csv", "file://data/link.csv"):
        with pytest.raises(PermanentError, match=r"outside the spec tree.*allowExternalPaths"):
            h.plan(document(uri, schema=SCHEMA))
        with pytest.raises(PermanentError, match="outside the spec tree"):
            h.apply(document(uri, schema=SCHEMA))
    assert (
        not (root / ".pipeform" / "data" / "datasets" / "t" / "snapshots").exists()
        or not h.snapshot_dirs()
    )
    allowed = Harness(root, allow_external=True)
    allowed.apply(document("file://data/link.csv", schema=SCHEMA))
    assert allowed.outputs["rows"] == 3


@pytest.mark.slow
def test_a_large_file_with_one_bad_row_at_its_end(
    harness: Harness, csv_rows: Callable[..., str]
) -> None:
    """About 50 MB: streamed in blocks; the bad last row is found and named by its line."""
    path = harness.root / "data" / "t.csv"
    path.parent.mkdir(parents=True)
    line = b"%d,%d.25,city-%d\n"
    with path.open("wb") as fh:
        fh.write(HEADER.encode() + b"\n")
        block = b"".join(line % (i, i, i % 100) for i in range(100_000))
        for _ in range(24):
            fh.write(block)
        lines = 1 + 24 * 100_000
    harness.write("small.csv", GOOD)
    harness.apply(document("file://data/small.csv", schema=SCHEMA))
    assert path.stat().st_size > 50_000_000
    with path.open("ab") as fh:
        fh.write(b"oops,1.0,x\n")
    doc = document("file://data/t.csv", schema=SCHEMA)
    fails_cleanly(harness, doc, "column id", f"line {lines + 1:,}", "'oops'")
