"""The reader interface: schemes, typed streaming batches, timestamps, bounded blocks."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from providers.base import PermanentError
from providers.local.data import readers
from providers.local.settings import LocalSettings
from reconciler.kinds.data import ColumnType, CsvOptions, DataFormat


def settings(root: Path, external: bool = False) -> LocalSettings:
    return LocalSettings.from_config({"allowExternalPaths": external}, root)


def open_csv(root: Path, name: str, **options: object) -> readers.Source:
    csv = CsvOptions.model_validate(options)
    return readers.open_source(f"file://{name}", DataFormat.CSV, csv, settings(root))


def test_declared_types_drive_the_arrow_types(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text(
        "i,f,s,b,t,d\n1,1.5,x,true,2024-01-01T10:00:00Z,2024-01-02\n"
        "-,2,NA,false,2024-01-01T12:00:00+02:00,2024-01-03\n"
    )
    hints = [("i", ColumnType.INT), ("f", ColumnType.FLOAT), ("s", ColumnType.STRING),
             ("b", ColumnType.BOOL), ("t", ColumnType.TIMESTAMP), ("d", ColumnType.DATE)]  # fmt: skip
    source = open_csv(tmp_path, "t.csv", nullValues=["-", "NA"])
    (batch,) = list(source.batches(hints))
    assert [str(t) for t in batch.schema.types] == [
        "int64", "double", "string", "bool", "timestamp[us]", "date32[day]"
    ]  # fmt: skip
    rows = batch.to_pylist()
    assert rows[1]["i"] is None and rows[1]["s"] is None
    assert rows[0]["t"] == dt.datetime(2024, 1, 1, 10) and rows[1]["t"] == dt.datetime(
        2024, 1, 1, 10
    )


def test_csv_streams_in_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers, "BLOCK_BYTES", 1 << 16)
    monkeypatch.setattr("providers.local.data.formats.BLOCK_BYTES", 1 << 16)
    (tmp_path / "t.csv").write_text("a\n" + "".join(f"{i}\n" for i in range(100_000)))
    batches = list(open_csv(tmp_path, "t.csv").batches([("a", ColumnType.INT)]))
    assert len(batches) > 5 and sum(b.num_rows for b in batches) == 100_000


def test_header_false_uses_the_declared_names(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("1;x\n2;y\n")
    source = open_csv(tmp_path, "t.csv", header=False, delimiter=";")
    (batch,) = list(source.batches([("n", ColumnType.INT), ("s", ColumnType.STRING)]))
    assert batch.to_pydict() == {"n": [1, 2], "s": ["x", "y"]}


def test_schemes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """s3:// goes to the object store (here: without credentials, one clear error, before
    anything is read); an unknown scheme is refused by name."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    source = readers.open_source("s3://b/k.csv", DataFormat.CSV, CsvOptions(), settings(tmp_path))
    with pytest.raises(PermanentError, match="no AWS credentials were found"):
        source.fingerprint()
    with pytest.raises(PermanentError, match="ftp"):
        readers.open_source("ftp://h/k.csv", DataFormat.CSV, CsvOptions(), settings(tmp_path))


def test_symlink_out_of_the_tree_is_refused_unless_allowed(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    (tmp_path / "out.csv").write_text("a\n1\n")
    (root / "in.csv").symlink_to(tmp_path / "out.csv")
    with pytest.raises(PermanentError, match="outside the spec tree"):
        open_csv(root, "in.csv")
    allowed = readers.open_source(
        "file://in.csv", DataFormat.CSV, CsvOptions(), settings(root, True)
    )
    assert allowed.fingerprint().startswith("sha256:")


@pytest.mark.parametrize("in_kernel", [True, False])
def test_copy_file_copies_every_byte_never_over_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_kernel: bool
) -> None:
    import os

    if not in_kernel:
        monkeypatch.delattr(os, "copy_file_range", raising=False)
    data = os.urandom(3 * readers.HASH_CHUNK // 2)  # more than one chunk
    (tmp_path / "a").write_bytes(data)
    readers.copy_file(tmp_path / "a", tmp_path / "b")
    assert (tmp_path / "b").read_bytes() == data
    with pytest.raises(FileExistsError):  # never over an existing file
        readers.copy_file(tmp_path / "a", tmp_path / "b")
