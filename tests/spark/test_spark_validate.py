"""Dataset validation on Spark local[2] gives the local engine's checks, report and verdict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.spark.conftest import require_engine

ROWS = 3000

SPEC: dict[str, Any] = {
    "source": {"uri": "file://data.csv", "format": "csv"},
    "schema": [
        {"name": "id", "type": "int", "nullable": False, "unique": True},
        {"name": "amount", "type": "float", "min": 0, "max": 100},
        {"name": "city", "type": "string", "allowed": ["oslo", "rome", "lima"],
         "regex": "[a-z]+"},
        {"name": "code", "type": "string", "unique": True},
        {"name": "visits", "type": "int", "nullable": False, "min": 0},
        {"name": "seen", "type": "timestamp"},
    ],
    "validation": {"minRows": 100, "maxNullFraction": {"*": 0.2},
                   "freshness": {"column": "seen", "maxAge": "1h"}},
}  # fmt: skip


def write_source(path: Path, bad: bool) -> None:
    """ROWS rows; with ``bad``, offenders of every rule spread over several Arrow batches."""
    lines = ["id,amount,city,code,visits,seen"]
    cities = ["oslo", "rome", "lima"]
    for i in range(ROWS):
        row = [str(i), f"{(i * 37) % 100 + 0.5}", cities[i % 3], f"c{i}", str(i % 9),
               f"2024-01-{1 + i % 28:02d}T{i % 24:02d}:00:00"]  # fmt: skip
        if bad and i % 700 == 650:  # one offender of each rule per 700 rows, late in a batch
            row = [
                str(i - 1),
                "-3.5" if i % 1400 == 650 else "250",
                "Paris",
                f"c{i - 5}",
                "",
                row[5],
            ]
        lines.append(",".join(row))
    path.write_text("\n".join(lines) + "\n")


def take(tmp: Path, bad: bool, engine: dict[str, Any] | None) -> tuple[dict[str, Any], str]:
    """The snapshot's report (or the failure's) and the error (empty when it passed)."""
    from providers.base import PermanentError
    from providers.local.data import snapshot
    from providers.local.data.readers import open_source
    from providers.local.settings import LocalSettings
    from reconciler.kinds.data import DatasetSpec

    tmp.mkdir()
    write_source(tmp / "data.csv", bad)
    config = {"dataDir": "data-dir", **({"engine": engine} if engine else {})}
    settings = LocalSettings.from_config(config, tmp)
    rules = SPEC["validation"] if bad else {"minRows": 100}  # stale times fail freshness
    spec = DatasetSpec.model_validate({**SPEC, "validation": rules})
    source = open_source(spec.source.uri, spec.source.inferred_format(), spec.source.csv, settings)
    try:
        taken = snapshot.take(settings, "d", spec, source, None)
    except PermanentError as exc:
        (report,) = (tmp / "data-dir/datasets/d/reports").glob("*-failed.json")
        return json.loads(report.read_text()), str(exc).rsplit("\nfull report:", 1)[0]
    return json.loads(taken.report.read_text()), ""


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    """The report without its time, and freshness without the age (it grows as we run)."""
    checks = [{**c, "observed": None} if c["rule"] == "freshness" else c for c in report["checks"]]
    return {**{k: v for k, v in report.items() if k != "createdAt"}, "checks": checks}


@pytest.mark.parametrize("bad", [False, True], ids=["passing", "failing"])
def test_spark_validation_equals_the_local_engine(tmp_path: Path, bad: bool) -> None:
    require_engine()
    engine = {"type": "spark", "master": "local[2]", "driverHost": "127.0.0.1",
              "conf": {"spark.sql.execution.arrow.maxRecordsPerBatch": "500",
                       "spark.sql.shuffle.partitions": "4"}}  # fmt: skip
    local, local_error = take(tmp_path / "local", bad, None)
    spark, spark_error = take(tmp_path / "spark", bad, engine)
    assert comparable(spark) == comparable(local)
    assert spark_error == local_error
    failed = {c["rule"] for c in local["checks"] if not c["passed"]}
    if bad:  # every per-value rule failed, and said where first
        assert failed == {"nullable", "unique", "min", "max", "allowed", "regex", "freshness"}
        assert "first 'Paris' on" in spark_error and "line 652" in spark_error, spark_error
    else:
        assert not failed and spark["passed"] is True and len(spark["checks"]) > 10
