"""Data files as people have them: a tab-separated survey export with single-quoted header
names and no key column, read with the CSV options and keyed by row number."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from providers.base import PermanentError
from providers.local.data import readers
from providers.local.data.layout import spec_material
from providers.local.settings import LocalSettings
from reconciler.kinds.data import ColumnType, CsvOptions, DataFormat, DatasetSpec
from reconciler.spec.checks import check
from tests.conftest import run_cli
from tests.data.conftest import Harness

SURVEY = (
    "'age'\t'income'\t'smoker'\t'label'\n"
    "34\t52000\t0\t1\n45\t61000\t1\t0\n29\t38000\t0\t1\n"
    "34\t52000\t0\t1\n51\t72000\t1\t0\n38\t45000\t0\t1\n"
)  # rows 0 and 3 are the same answers: no column, nor all of them, is a key
SCHEMA = [
    {"name": "age", "type": "int"},
    {"name": "income", "type": "float"},
    {"name": "smoker", "type": "int"},
    {"name": "label", "type": "int"},
]
DATASET = """\
apiVersion: pipeform/v1
kind: Dataset
metadata: {name: survey}
spec:
  source:
    uri: file://survey.tsv
    format: csv
    csv: {delimiter: "\\t", headerStrip: "'"}
  schema:
    - {name: age, type: int}
    - {name: income, type: float}
    - {name: smoker, type: int}
    - {name: label, type: int}
"""
FEATURES = """\
apiVersion: pipeform/v1
kind: FeatureSet
metadata: {name: answers}
spec:
  dataset: survey
  entity: %s
  label: {column: label}
  features: [{name: age, transforms: [standardize]}, {name: income}, {name: smoker}]
  split: {type: random, validationFraction: 0.5}
"""
WORKSPACE = "apiVersion: pipeform/v1\nkind: Workspace\nmetadata: {name: s}\nspec: {}\n"


def dataset(csv: dict[str, Any], schema: list[dict[str, str]] = SCHEMA) -> dict[str, Any]:
    """The survey's Dataset document with these CSV options, as the planner passes it."""
    source = {"uri": "file://data/survey.tsv", "format": "csv", "csv": csv}
    spec = {"source": source, "schema": schema}
    dumped = DatasetSpec.model_validate(spec).model_dump(mode="json", by_alias=True)
    return {"metadata": {"labels": {}, "annotations": {}}, "spec": dumped}


def test_a_tab_separated_file_read_as_commas_says_which_settings_fix_it(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    harness.write("survey.tsv", SURVEY)
    with pytest.raises(PermanentError) as failed:
        harness.apply(dataset({}))
    message = str(failed.value)
    assert "declared column(s) missing from the source: age, income, smoker, label" in message
    assert "the file looks tab-separated, so set spec.source.csv.delimiter: " in message
    assert '"\\t" (in double quotes)' in message
    with pytest.raises(PermanentError) as quoted:
        harness.apply(dataset({"delimiter": "\t"}))
    assert "tab-separated" not in str(quoted.value)
    assert (
        "the header writes its names in quotes ('age'), so set "
        'spec.source.csv.headerStrip: "\'"' in str(quoted.value)
    )


def test_header_strip_and_rename_give_the_columns_the_declared_names(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    harness.write("survey.tsv", SURVEY)
    schema = [{**c, "name": "smokes"} if c["name"] == "smoker" else c for c in SCHEMA]
    csv = {"delimiter": "\t", "headerStrip": "'", "rename": {"smoker": "smokes"}}
    doc = dataset(csv, schema)
    outputs = harness.apply(doc).outputs
    assert outputs["rows"] == 6
    assert outputs["columns"] == ["age", "income", "smokes", "label"]


def test_a_rename_of_a_name_the_header_lacks_is_named(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    harness.write("survey.tsv", SURVEY)
    csv = {"delimiter": "\t", "headerStrip": "'", "rename": {"smoking": "smokes"}}
    with pytest.raises(PermanentError, match=r"csv.rename names 'smoking', which the header"):
        harness.apply(dataset(csv))


def test_the_quote_option_reads_values_quoted_with_another_character(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("name|n\n'a|b'|1\nO\"Brien|2\n")
    options = CsvOptions.model_validate({"delimiter": "|", "quote": "'"})
    settings = LocalSettings.from_config({}, tmp_path)
    source = readers.open_source("file://t.csv", DataFormat.CSV, options, settings)
    (batch,) = list(source.batches([("name", ColumnType.STRING), ("n", ColumnType.INT)]))
    assert batch.to_pydict() == {"name": ["a|b", 'O"Brien'], "n": [1, 2]}


def test_a_backslash_t_in_single_quotes_is_told_how_to_write_a_tab(write_tree: Any) -> None:
    root = write_tree(**{"data.yaml": DATASET.replace('"\\t"', "'\\t'")})
    [err] = check([root]).diagnostics.errors
    assert err.render().endswith(
        "Dataset/survey: spec.source.csv.delimiter: '\\t' is two characters here, a backslash "
        'and a t (as YAML reads it plain or in single quotes); write a tab as "\\t" in double '
        "quotes"
    )
    assert err.position is not None and (err.position.line, err.position.column) == (8, 22)


def test_csv_options_left_unset_keep_the_snapshots_of_existing_trees() -> None:
    def material(**csv: str) -> dict[str, Any]:
        source = {"uri": "file://t.csv", "csv": csv}
        return spec_material(DatasetSpec.model_validate({"source": source}))

    assert material()["source"]["csv"] == {
        "delimiter": ",",
        "header": True,
        "nullValues": ["", "NA", "NaN", "null"],
    }  # as before the options existed: no spec hash, plan or snapshot id moves
    assert material(quote="'")["source"]["csv"]["quote"] == "'"  # set, it names the snapshot
    assert material(headerStrip="'") != material()


def test_a_table_without_a_key_is_keyed_by_row_number(tmp_path: Path) -> None:
    (tmp_path / "pipeform.yaml").write_text(WORKSPACE)
    (tmp_path / "survey.tsv").write_text(SURVEY)
    (tmp_path / "data.yaml").write_text(DATASET)
    (tmp_path / "features.yaml").write_text(FEATURES % "[age, income, smoker]")
    env = {**os.environ, "NO_COLOR": "1"}
    refused = run_cli("apply", "--auto-approve", cwd=tmp_path, env=env)
    assert refused.returncode == 1
    assert "entity key (age, income, smoker) is not unique" in refused.stdout
    assert "with entity: {rowNumber: true}" in refused.stdout
    (tmp_path / "features.yaml").write_text(FEATURES % "{rowNumber: true}")
    applied = run_cli("apply", "--auto-approve", cwd=tmp_path, env=env)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    [table_dir] = (tmp_path / ".pipeform/data/features/answers").glob("fs-*")
    keys = sorted(
        key
        for split in ("train", "validation")
        for key in pq.read_table(table_dir / f"{split}.parquet")["row_number"].to_pylist()
    )
    assert keys == [0, 1, 2, 3, 4, 5]
    manifest = json.loads((table_dir / "manifest.json").read_text())
    assert manifest["entity"] == ["row_number"]
