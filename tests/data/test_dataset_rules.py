"""Every validation rule passes once and fails once; drift, freshness, formats, content addressing."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from providers.base import PermanentError
from tests.data.conftest import Harness, document

ROWS = ["id,score,city,code,seen"] + [
    f"{i},{i * 1.5},{['paris', 'oslo', 'rome'][i % 3]},AB-{i:03d},2024-01-{1 + i % 28:02d}T10:00:00Z"
    for i in range(1, 41)
]
DATA = "\n".join(ROWS) + "\n"


def col(name: str, type_: str, **checks: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **checks}


BASE = [col("id", "int"), col("score", "float"), col("city", "string"), col("code", "string"),
        col("seen", "timestamp")]  # fmt: skip


def with_column(name: str, **checks: Any) -> list[dict[str, Any]]:
    return [{**c, **checks} if c["name"] == name else c for c in BASE]


# (spec fields that pass, spec fields that fail, words the failure shows)
CASES: dict[str, tuple[dict[str, Any], dict[str, Any], list[str]]] = {
    "nullable": ({"schema": with_column("id", nullable=False)},
                 {"schema": with_column("score", nullable=False)}, ["column score", "nullable", "1 missing", "line 42"]),
    "unique": ({"schema": with_column("id", unique=True)},
               {"schema": with_column("city", unique=True)}, ["column city", "unique", "'oslo'", "line 2 and line 5"]),
    "min": ({"schema": with_column("score", min=1.5)},
            {"schema": with_column("score", min=2)}, ["column score", "min", "1 value", "1.5", "line 2"]),
    "max": ({"schema": with_column("id", max=41)},
            {"schema": with_column("id", max=40)}, ["column id", "max", "above 40", "41", "line 42"]),
    "allowed": ({"schema": with_column("city", allowed=["paris", "oslo", "rome"])},
                {"schema": with_column("city", allowed=["paris", "oslo"])}, ["column city", "allowed", "14 value", "'rome'"]),
    "regex": ({"schema": with_column("code", regex=r"AB-\d{3}")},
              {"schema": with_column("code", regex=r"AB-\d{2}")}, ["column code", "regex", "41 value", "'AB-001'"]),
    "minRows": ({"validation": {"minRows": 41}}, {"validation": {"minRows": 42}}, ["minRows", "41 rows", "fewer than 42"]),
    "maxRows": ({"validation": {"maxRows": 41}}, {"validation": {"maxRows": 39}}, ["maxRows", "41 rows", "more than 39"]),
    "maxNullFraction": ({"validation": {"maxNullFraction": {"score": 0.05}}},
                        {"validation": {"maxNullFraction": {"*": 0.01}}}, ["column score", "maxNullFraction", "2.44%"]),
    "strictColumns": ({"strictColumns": True}, {"strictColumns": True, "schema": BASE[:4]}, ["not declared", "seen"]),
    "columns": ({}, {"schema": [*BASE, col("missing", "int")]}, ["missing from the source: missing"]),
}  # fmt: skip


@pytest.mark.parametrize("rule", sorted(CASES))
def test_each_rule_passes_and_fails(harness: Harness, rule: str) -> None:
    passing, failing, words = CASES[rule]
    harness.write("t.csv", DATA + "41,,rome,AB-999,2024-02-01T00:00:00Z\n")
    spec = {"schema": BASE, **passing}
    harness.apply(document(**spec))
    report = json.loads(Path(harness.outputs["report"]).read_text())
    assert report["passed"] and all(c["passed"] for c in report["checks"])
    assert any(c["rule"] == rule for c in report["checks"]), report["checks"]
    current = harness.tree_bytes()
    with pytest.raises(PermanentError) as caught:
        harness.apply(document(**{"schema": BASE, **failing}))
    message = str(caught.value)
    assert "failed validation" in message
    for word in words:
        assert word in message, (word, message)
    assert harness.tree_bytes() == current
    failed = sorted((harness.dir / "reports").glob("*-failed.json"))
    assert len(failed) == 1
    saved = json.loads(failed[0].read_text())
    assert not saved["passed"] and any(
        c["rule"] == rule and not c["passed"] for c in saved["checks"]
    )


def test_all_failures_are_listed_most_important_first(harness: Harness) -> None:
    harness.write("t.csv", DATA)
    spec = {
        "schema": with_column("id", max=10),
        "validation": {"minRows": 100},
        "strictColumns": True,
    }
    with pytest.raises(PermanentError) as caught:
        harness.apply(
            document(**{**spec, "schema": [c for c in spec["schema"] if c["name"] != "seen"]})
        )
    lines = str(caught.value).splitlines()
    assert "strictColumns" in lines[1] and "max" in lines[2] and "minRows" in lines[3]


def test_freshness(harness: Harness) -> None:
    now = dt.datetime.now(dt.UTC)
    recent = (now - dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    harness.write("t.csv", f"id,seen\n1,2020-01-01T00:00:00Z\n2,{recent}\n")
    schema = [col("id", "int"), col("seen", "timestamp")]
    harness.apply(
        document(schema=schema, validation={"freshness": {"column": "seen", "maxAge": "3h"}})
    )
    with pytest.raises(
        PermanentError,
        match=r"column seen: freshness: newest value .* is 2\.0h old, older than 1\.0h",
    ):
        harness.apply(
            document(schema=schema, validation={"freshness": {"column": "seen", "maxAge": "1h"}})
        )


def numbers(shift: float) -> str:
    return "x,kind\n" + "".join(f"{i / 10 + shift},{'ab'[i % 2]}\n" for i in range(2000))


def test_drift_psi_against_the_previous_snapshot(harness: Harness) -> None:
    schema = [col("x", "float"), col("kind", "string")]
    doc = document(schema=schema, validation={"drift": {"maxPsi": 0.2, "bins": 10}})
    harness.write("t.csv", numbers(0))
    harness.apply(doc)
    first = json.loads(Path(harness.outputs["report"]).read_text())
    assert [c["detail"] for c in first["checks"] if c["rule"] == "drift"] == [
        "no previous snapshot"
    ] * 2
    harness.write("t.csv", numbers(1))  # a small shift: 10 of 200 units
    harness.apply(doc)
    second = json.loads(Path(harness.outputs["report"]).read_text())
    psi = {c["column"]: c["observed"] for c in second["checks"] if c["rule"] == "drift"}
    assert 0 < psi["x"] < 0.2 and psi["kind"] == pytest.approx(0, abs=1e-6)
    current = harness.outputs["snapshot"]
    harness.write("t.csv", numbers(100))  # the whole column moved
    with pytest.raises(
        PermanentError,
        match=r"column x: drift: PSI \d+\.\d{3} against the previous snapshot, above 0\.2",
    ):
        harness.apply(doc)
    assert json.loads((harness.dir / "current.json").read_text())["snapshot"] == current


def test_same_source_twice_gives_the_same_snapshot_untouched(harness: Harness) -> None:
    harness.write("t.csv", DATA)
    doc = document(schema=BASE)
    harness.apply(doc)
    first = dict(harness.outputs)
    directory = harness.dir / "snapshots" / first["snapshot"]
    stats = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in directory.iterdir()}
    record = (harness.dir / "current.json").stat().st_mtime_ns
    assert harness.plan(doc).unknown_outputs == []
    harness.apply(doc)
    assert harness.outputs == first
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in directory.iterdir()} == stats
    assert (harness.dir / "current.json").stat().st_mtime_ns == record
    # a description is not part of the snapshot: same id
    described = document(schema=[{**BASE[0], "description": "the id"}, *BASE[1:]])
    assert harness.plan(described).unknown_outputs == []


def test_csv_parquet_and_jsonl_give_the_same_table(harness: Harness) -> None:
    import pyarrow.parquet as pq

    harness.write("t.csv", DATA)
    harness.apply(document(schema=BASE))
    table = pq.read_table(harness.outputs["path"])
    pq.write_table(table, harness.root / "data" / "t.parquet")
    with (harness.root / "data" / "t.jsonl").open("w") as fh:
        for row in table.to_pylist():
            fh.write(json.dumps({**row, "seen": row["seen"].isoformat() + "Z"}) + "\n")
    for uri in ("file://data/t.parquet", "file://data/t.jsonl"):
        other = Harness(harness.root)
        other.ctx = type(other.ctx).of(f"Dataset/t-{uri[-4:]}", other.ctx.lineage, harness.root)
        response = other.handler.create(
            __import__("providers.base").base.ApplyRequest(
                other.ctx, document(uri, schema=BASE), None, {}, None, {}
            )
        )
        again = pq.read_table(response.outputs["path"])
        assert again.schema == table.schema, uri
        assert again.to_pylist() == table.to_pylist(), uri
