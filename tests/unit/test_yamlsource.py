"""Reading YAML safely: positions, merge keys, duplicates, scalars and the limits."""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path
from typing import Any

import pytest

from reconciler.diagnostics import Diagnostics
from reconciler.spec import source as yamlsource
from reconciler.spec.loader import load_tree
from reconciler.spec.parser import parse_text
from reconciler.spec.source import RawDocument, read_file
from reconciler.spec.validate import parse_document


def parse(text: str) -> tuple[list[RawDocument], Diagnostics]:
    diagnostics = Diagnostics()
    return parse_text(text, "t.yaml", diagnostics), diagnostics


def one(text: str) -> RawDocument:
    documents, diagnostics = parse(text)
    assert not diagnostics.items, [d.render() for d in diagnostics]
    [document] = documents
    return document


def only_error(text: str) -> str:
    _, diagnostics = parse(text)
    [problem] = diagnostics.errors
    return problem.render()


def place(document: RawDocument, *path: str | int) -> tuple[int, int]:
    at = document.position(path)
    return at.line, at.column


NESTED = """\
apiVersion: pipeform/v1
kind: TrainingJob
metadata:
  name: churn
spec:
  model:
    type: mlp
    hidden:
      - 64
      - 32
  gates: [{metric: auc, min: 0.8}, {metric: f1, min: 0.5}]
"""


# --- positions -----------------------------------------------------------------------


def test_scalars_are_placed_where_their_value_is_written() -> None:
    document = one(NESTED)
    assert place(document, "metadata", "name") == (4, 9)
    assert place(document, "spec", "model", "type") == (7, 11)
    assert place(document, "spec", "gates", 1, "metric") == (11, 45)


def test_lists_and_mappings_under_a_key_are_placed_at_the_key() -> None:
    document = one(NESTED)
    assert place(document, "spec") == (5, 1)
    assert place(document, "spec", "model") == (6, 3)
    assert place(document, "spec", "model", "hidden") == (8, 5)
    assert place(document, "spec", "gates") == (11, 3)


def test_list_items_are_placed_where_each_item_is_written() -> None:
    document = one(NESTED)
    assert place(document, "spec", "model", "hidden", 0) == (9, 9)
    assert place(document, "spec", "model", "hidden", 1) == (10, 9)
    assert place(document, "spec", "gates", 0) == (11, 11)
    assert place(document, "spec", "gates", 1) == (11, 36)


def test_keys_have_their_own_positions() -> None:
    document = one(NESTED)
    key = document.key_position(("spec", "model", "type"))
    assert (key.line, key.column) == (7, 5)


def test_an_unwritten_path_falls_back_to_its_nearest_written_ancestor() -> None:
    document = one(NESTED)
    assert place(document, "spec", "model", "dropout") == (6, 3)
    assert place(document, "spec", "gates", 7, "max") == (11, 3)
    assert document.position(("nowhere",)).line == 1


def test_positions_count_documents_in_the_same_file() -> None:
    first, second = parse("a: 1\n---\n# a comment\nb:\n  c: [x, y]\n")[0]
    assert (first.index, second.index) == (1, 2)
    assert place(second, "b", "c", 1) == (5, 10)


def test_a_model_error_points_at_the_value_and_an_unknown_field_at_its_key() -> None:
    text = NESTED.replace("    type: mlp\n", "    type: mlp\n    dropuot: 0.1\n").replace(
        "hidden:\n", "hidden:\n      - big\n"
    )
    model, problems = parse_document(one(text))
    assert model is None
    where = {p.path: (p.position.line, p.position.column) for p in problems if p.position}
    assert where["spec.model.dropuot"] == (8, 5)
    assert where["spec.model.hidden[0]"] == (10, 9)


# --- merge keys and aliases ---------------------------------------------------------


MERGE = """\
defaults: &defaults
  cpu: 2
  memory: 4Gi
small: &small {cpu: 1}
job:
  <<: [*small, *defaults]
  gpus: 1
  memory: 8Gi
"""


def test_merge_keys_merge_and_explicit_keys_win() -> None:
    document = one(MERGE)
    assert document.data["job"] == {"cpu": 1, "memory": "8Gi", "gpus": 1}
    assert list(document.data["job"])[-2:] == ["gpus", "memory"]


def test_merged_values_keep_the_position_where_they_are_written() -> None:
    document = one(MERGE)
    assert place(document, "job", "cpu") == (4, 21)  # from &small, the first merge wins
    assert place(document, "job", "memory") == (8, 11)  # the explicit key
    assert place(document, "job", "gpus") == (7, 9)


def test_a_single_merged_mapping() -> None:
    document = one("base: &b {x: 1, y: 2}\nthing:\n  <<: *b\n  y: 3\n")
    assert document.data["thing"] == {"x": 1, "y": 3}
    assert place(document, "thing", "x") == (1, 14)


def test_aliases_copy_the_value_and_its_positions() -> None:
    document = one("a: &r {cpu: 2, memory: 4Gi}\nb: *r\nc: [*r]\n")
    assert document.data["b"] == document.data["c"][0] == {"cpu": 2, "memory": "4Gi"}
    assert place(document, "b") == (2, 1)
    assert place(document, "b", "memory") == (1, 24)
    assert place(document, "c", 0, "cpu") == (1, 13)


def test_a_merge_key_needs_a_mapping() -> None:
    message = only_error("a:\n  <<: [1, 2]\n")
    assert message.startswith("t.yaml:2:3: a merge key (<<) takes a mapping or a list of mappings")


# --- safe loading -------------------------------------------------------------------


def test_duplicate_keys_are_rejected_with_both_lines() -> None:
    message = only_error("spec:\n  epochs: 5\n  batchSize: 8\n  epochs: 10\n")
    assert message.startswith("t.yaml:4:3: duplicate key 'epochs' (first at line 2)")
    assert "YAML would silently keep only the last" in message


def test_duplicate_keys_in_a_flow_mapping_are_rejected() -> None:
    assert "duplicate key 'a' (first at line 1)" in only_error("m: {a: 1, b: 2, a: 3}\n")


def test_the_document_with_a_duplicate_key_is_dropped_and_the_next_is_read() -> None:
    documents, diagnostics = parse("a: 1\na: 2\n---\nb: 1\n")
    assert len(diagnostics.errors) == 1
    assert [d.data for d in documents] == [{"b": 1}]


def test_timestamps_and_dates_stay_strings() -> None:
    data = one("day: 2024-01-31\nwhen: 2024-01-31T12:00:00Z\ntagged: !!timestamp 2001-12-14\n").data
    assert data == {"day": "2024-01-31", "when": "2024-01-31T12:00:00Z", "tagged": "2001-12-14"}


def test_core_scalars_are_typed() -> None:
    data = one(
        "i: 42\nh: 0x1F\no: 010\nz: 0\nu: 1_000\nf: 0.5\nb: true\nn: ~\ne:\ns: '42'\nq: \"yes\"\n"
        "t: team-a\ny: yes\n"
    ).data
    assert data == {
        "i": 42,
        "h": 31,
        "o": 8,
        "z": 0,
        "u": 1000,
        "f": 0.5,
        "b": True,
        "n": None,
        "e": None,
        "s": "42",
        "q": "yes",
        "t": "team-a",
        "y": True,
    }


@pytest.mark.parametrize(
    "text, tag",
    [
        ("x: !!python/object/apply:os.system ['true']\n", "!!python/object/apply:os.system"),
        ("x: !!python/name:os.system\n", "!!python/name:os.system"),
        ("x: !include other.yaml\n", "!include"),
        ("x: !!binary aGk=\n", "!!binary"),
        ("x: !!set {a: null}\n", "!!set"),
        ("x: !!omap [a: 1]\n", "!!omap"),
    ],
)
def test_tags_that_build_objects_are_refused(text: str, tag: str) -> None:
    assert f"tag {tag} is not allowed in specs" in only_error(text)


def test_a_wrong_value_for_a_core_tag_is_an_error_not_a_crash() -> None:
    assert "'four' is not a valid !!int" in only_error("x: !!int four\n")


def test_an_alias_inside_its_own_anchor_is_refused() -> None:
    message = only_error("a: &loop\n  b: *loop\n")
    assert message.startswith(
        "t.yaml:2:6: alias *loop is used inside the value of its own anchor &loop"
    )


def test_an_undefined_alias_is_named() -> None:
    assert "alias *nope has no anchor &nope before it" in only_error("a: *nope\n")


def test_empty_documents_between_separators_are_skipped() -> None:
    documents, diagnostics = parse("---\n---\na: 1\n---\n# only a comment\n---\n")
    assert not diagnostics.items
    assert [d.data for d in documents] == [{"a": 1}]


# --- limits --------------------------------------------------------------------------


def billion_laughs(levels: int = 9) -> str:
    lines = [f"a: &a [{', '.join(['lol'] * 9)}]"]
    for prev, cur in itertools.pairwise("abcdefghijklmnop"[:levels]):
        lines.append(f"{cur}: &{cur} [{', '.join([f'*{prev}'] * 9)}]")
    return "\n".join(lines) + "\n"


def test_billion_laughs_fails_fast_and_names_the_limit() -> None:
    start = time.perf_counter()
    documents, diagnostics = parse(billion_laughs())
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0
    [problem] = diagnostics.errors
    assert f"more than {yamlsource.MAX_NODES_PER_DOCUMENT:,} values" in problem.message
    assert "YAML bomb" in problem.message
    assert documents == []


def test_many_small_bombs_in_one_file_hit_the_file_limit_fast() -> None:
    text = "".join("---\n" + billion_laughs(5) for _ in range(10_000))  # 59,000 values each
    assert len(text) < yamlsource.MAX_FILE_BYTES
    start = time.perf_counter()
    documents, diagnostics = parse(text)
    assert time.perf_counter() - start < 1.5
    assert (
        f"more than {yamlsource.MAX_NODES_PER_FILE:,} values in all"
        in diagnostics.errors[-1].message
    )
    assert len(documents) < 5


def test_deep_nesting_is_refused() -> None:
    message = only_error("x: " + "[" * 100 + "]" * 100 + "\n")
    assert f"nesting deeper than {yamlsource.MAX_DEPTH} levels" in message


def test_nesting_through_aliases_is_refused() -> None:
    anchored = "[" * 40 + "1" + "]" * 40  # fine on its own, too deep 30 levels further down
    message = only_error(f"a: &a {anchored}\nb: {'[' * 30}*a{']' * 30}\n")
    assert "t.yaml:2:34: nesting deeper than 64 levels once alias *a is expanded" in message


def test_a_tab_in_the_indentation_is_named() -> None:
    assert "t.yaml:2:1: invalid YAML: a tab character is used for indentation" in only_error(
        "a:\n\tb: 1\n"
    )


def test_an_unclosed_quote_points_where_it_opens() -> None:
    assert only_error('a: 1\nb: "open\nc: 2\n').startswith(
        "t.yaml:2:4: invalid YAML: the quoted string"
    )


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\xff\xfea\x00:\x00", "UTF-16"),
        (b"a: 1\nb: caf\xe9\n", "t.yaml:2:7: file is not valid UTF-8 (byte 0xe9)"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "t.yaml:3:1: binary file"),
        (b"", "file holds no documents"),
        (b"# nothing\n", "file holds no documents"),
    ],
)
def test_files_that_are_not_yaml_text(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "t.yaml").write_bytes(content)
    diagnostics = Diagnostics()
    assert read_file(tmp_path / "t.yaml", "t.yaml", diagnostics) == []
    [problem] = diagnostics.errors
    assert message in problem.render()


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_bytes(b"\xef\xbb\xbfa: 1\n")
    diagnostics = Diagnostics()
    [document] = read_file(tmp_path / "t.yaml", "t.yaml", diagnostics)
    assert document.data == {"a": 1} and not diagnostics.items


def test_an_oversized_file_is_refused_before_it_is_read(tmp_path: Path, monkeypatch: Any) -> None:
    path = tmp_path / "big.yaml"
    path.touch()
    os.truncate(path, 3 * 2**30)
    monkeypatch.setattr(Path, "open", lambda *a, **k: pytest.fail("the file was opened"))
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("the file was read"))
    diagnostics = Diagnostics()
    start = time.perf_counter()
    assert read_file(path, "big.yaml", diagnostics) == []
    assert time.perf_counter() - start < 0.1
    assert "file is 3072.0 MiB; spec files may be at most 8 MiB" in diagnostics.errors[0].message


def test_load_tree_keeps_going_after_a_broken_file(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("a:\n\tb: 1\n")
    (tmp_path / "b.yaml").write_text(
        "apiVersion: pipeform/v1\nkind: Quota\nmetadata: {name: q}\nspec: {cpu: 1}\n"
    )
    diagnostics = Diagnostics()
    tree = load_tree([tmp_path], diagnostics)
    assert list(tree.documents) == ["Quota/q"]
    assert len(diagnostics.errors) == 1
