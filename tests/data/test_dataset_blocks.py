"""CSV parsed in blocks on two threads: the same rows in the same order as one parse of the
whole file, and every error still names the right line, wherever the block boundaries fall."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from providers.base import PermanentError
from providers.local.data import blocks, formats, readers
from providers.local.data.convert import parse_timestamps
from reconciler.kinds.data import ColumnType, CsvOptions, DataFormat
from tests.data.conftest import Harness, document

BLOCK = 1 << 14
SCHEMA = [
    {"name": "id", "type": "int", "unique": True},
    {"name": "code", "type": "string", "regex": r"AB-\d+"},
    {"name": "seen", "type": "timestamp"},
]
HINTS = [("id", ColumnType.INT), ("code", ColumnType.STRING), ("seen", ColumnType.TIMESTAMP)]


def lines(count: int = 3000) -> list[str]:
    return ["id,code,seen"] + [
        f"{i},AB-{i},2024-01-0{1 + i % 9}T00:00:0{i % 10}" for i in range(count)
    ]


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(formats, "BLOCK_BYTES", BLOCK)
    monkeypatch.setattr(readers, "_FINGERPRINTS", {})


def second_block_line(text: str) -> int:
    """The 1-based line that starts the second block (the first is cut at a newline)."""
    first = text.encode()[:BLOCK]
    return first.count(b"\n") + 1


def batches(path: Path, hints: list[Any] = HINTS, **csv: Any) -> list[Any]:
    settings = readers.LocalSettings.from_config({}, path.parent)
    options = CsvOptions.model_validate(csv)
    source = readers.open_source(f"file://{path.name}", DataFormat.CSV, options, settings)
    return list(source.batches(hints))


def fails(harness: Harness, *needles: str, schema: list[Any] = SCHEMA) -> str:
    with pytest.raises(PermanentError) as caught:
        harness.apply(document(schema=schema))
    message = str(caught.value)
    for needle in needles:
        assert needle in message, f"{needle!r} not in: {message}"
    assert harness.snapshot_dirs() == []
    return message


@pytest.mark.parametrize("threads", [1, 2])
def test_blocks_read_as_one_parse_of_the_whole_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threads: int
) -> None:
    monkeypatch.setattr(blocks, "PARSE_THREADS", threads)
    rows = lines()
    rows[2500] = "2499,AB-2499,2024-01-01T05:00:00+02:00"  # an offset, late in the file
    path = tmp_path / "t.csv"
    path.write_text("\n".join(rows))  # and no newline after the last line
    got = batches(path)
    assert len(got) > 4  # several blocks
    whole = pacsv.read_csv(
        path, convert_options=pacsv.ConvertOptions(column_types={"seen": pa.string()})
    )
    whole = whole.set_column(2, "seen", parse_timestamps(whole["seen"]))
    assert pa.Table.from_batches(got).equals(whole)
    assert whole["seen"][2499].as_py().hour == 3  # converted to UTC


@pytest.mark.parametrize(
    ("bad", "needles"),
    [
        ("x{i},AB-{i},2024-01-01", ["column id", "'x{i}'", "not a valid int"]),
        ("{i},AB-{i}", ["expected 3 columns, found 2"]),
        ("{i},XY-{i},2024-01-01", ["'XY-{i}' on"]),
        ("{i},AB-{i},yesterday", ["column seen", "'yesterday'", "not a valid timestamp"]),
    ],
)
def test_a_bad_row_right_after_a_block_boundary_names_its_line(
    harness: Harness, bad: str, needles: list[str]
) -> None:
    rows = lines()
    text = "\n".join(rows) + "\n"
    line = second_block_line(text)
    i = line - 2  # the data row on that line
    rows[line - 1] = bad.format(i=i)
    harness.write("t.csv", "\n".join(rows) + "\n")
    fails(harness, f"line {line:,}", *(n.format(i=i) for n in needles))


def test_a_bad_last_line_of_a_file_of_many_blocks(harness: Harness) -> None:
    rows = lines()
    rows.append("oops,AB-1,2024-01-01")
    harness.write("t.csv", "\n".join(rows))  # no newline after it
    fails(harness, f"line {len(rows):,}", "'oops'")


def test_an_encoding_error_in_the_second_block_comes_first(harness: Harness) -> None:
    rows = lines()
    text = "\n".join(rows) + "\n"
    line = second_block_line(text) + 5  # in the second block and beyond the first read
    rows[line - 1] = rows[line - 1].replace("AB-", "K\xf6-")
    rows[-1] = "oops,AB-1,2024-01-01"  # a type error further on: the bytes come first
    path = harness.write("t.csv", ("\n".join(rows) + "\n").encode("latin-1"))
    assert path.read_bytes()[:BLOCK].isascii()
    message = fails(harness, "not UTF-8", f"line {line:,}")
    assert "oops" not in message


def test_an_undeclared_columns_type_is_guessed_from_the_first_block_only(
    harness: Harness,
) -> None:
    rows = [r + f",{n}" for n, r in enumerate(lines())]
    rows[0] = "id,code,seen,extra"
    rows[-1] = rows[-1].rsplit(",", 1)[0] + ",many"
    harness.write("t.csv", "\n".join(rows) + "\n")
    fails(harness, "column extra is not declared", f"line {len(rows):,} holds 'many'")
    harness.write("t.csv", "\n".join(rows[:-1]) + "\n")
    harness.apply(document(schema=SCHEMA))
    assert harness.outputs["rows"] == len(rows) - 2
    assert "extra" in harness.outputs["columns"]


def test_no_header_and_blocks(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("\n".join(lines()[1:]) + "\n")
    got = batches(path, header=False)
    table = pa.Table.from_batches(got)
    assert table.num_rows == 3000 and table["id"].to_pylist() == list(range(3000))
    assert table.schema.names == ["id", "code", "seen"]


def test_json_lines_in_blocks_keep_their_order_and_name_a_late_bad_line(
    harness: Harness,
) -> None:
    rows = [f'{{"id": {i}, "code": "AB-{i}", "extra": {i}}}' for i in range(3000)]
    harness.write("t.jsonl", "\n".join(rows) + "\n")
    doc = document("file://data/t.jsonl", schema=SCHEMA[:2])
    harness.apply(doc)
    assert harness.outputs["rows"] == 3000 and "extra" in harness.outputs["columns"]
    import pyarrow.parquet as pq

    assert pq.read_table(harness.outputs["path"])["id"].to_pylist() == list(range(3000))
    rows[2900] = '{"id": 2900, "code": "AB-2900", "extra": "many"}'
    harness.write("t.jsonl", "\n".join(rows) + "\n")
    with pytest.raises(PermanentError, match=r"column extra: line 2,901 of data/t\.jsonl holds a"):
        harness.apply(doc)


def test_lines_longer_than_a_block_and_crlf_line_ends(tmp_path: Path) -> None:
    rows = lines(2000)
    rows[0] += ",x" + "x" * (5 * BLOCK)  # a header longer than a block
    rows[1:] = [r + ",z" for r in rows[1:]]
    rows[700] += "y" * (3 * BLOCK)  # a row longer than a block
    path = tmp_path / "t.csv"
    path.write_bytes(("\r\n".join(rows) + "\r\n").encode())
    table = pa.Table.from_batches(batches(path))
    assert table.num_rows == 2000 and table["id"].to_pylist() == list(range(2000))
    assert table.column(3)[699].as_py() == "z" + "y" * (3 * BLOCK)
    assert table.column(3)[1999].as_py() == "z"  # no "\r" left on the last column
