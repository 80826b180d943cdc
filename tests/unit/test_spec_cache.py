"""The spec cache: unchanged files are not parsed again, and the cache is never trusted blindly."""

from __future__ import annotations

import hashlib
import marshal
import os
from pathlib import Path
from typing import Any

import pytest

from reconciler.diagnostics import Diagnostics
from reconciler.spec import cache as speccache
from reconciler.spec.loader import SpecTree, load_tree
from tests.unit.conftest import assert_same_documents

QUOTA = """\
apiVersion: pipeform/v1
kind: Quota
metadata:
  name: {name}
  labels: {{team: ml}}
spec:
  gpus: {gpus}
"""


def write_tree(root: Path, gpus: int = 1) -> Path:
    (root / ".pipeform").mkdir(parents=True, exist_ok=True)  # a workspace: plan ran here
    docs = [QUOTA.format(name=f"q-{i}", gpus=gpus) for i in range(3)]
    (root / "quotas.yaml").write_text("---\n".join(docs), encoding="utf-8")
    return root


def load(root: Path) -> tuple[SpecTree, list[str]]:
    diagnostics = Diagnostics()
    tree = load_tree([root], diagnostics)
    return tree, [d.render() for d in diagnostics]


def cache_file(root: Path) -> Path:
    return root / ".pipeform" / "cache" / "specs.bin"


def test_an_unchanged_file_is_read_from_the_cache_with_the_same_data_and_places(
    tmp_path: Path, parses: list[str]
) -> None:
    root = write_tree(tmp_path)
    first, _ = load(root)
    assert parses == ["quotas.yaml"]
    assert oct(cache_file(root).stat().st_mode & 0o777) == "0o600"
    again, problems = load(root)
    assert parses == ["quotas.yaml"], "the second load parsed the file again"
    assert not problems
    assert list(again.documents) == ["Quota/q-0", "Quota/q-1", "Quota/q-2"]
    assert_same_documents(first, again)
    for address, doc in first.documents.items():
        assert again.documents[address].position(("spec", "gpus")) == doc.position(("spec", "gpus"))


def test_an_edited_file_is_parsed_again_and_its_new_values_are_seen(
    tmp_path: Path, parses: list[str]
) -> None:
    root = write_tree(tmp_path)
    load(root)
    write_tree(root, gpus=4)
    tree, _ = load(root)
    assert parses == ["quotas.yaml", "quotas.yaml"]
    assert tree.documents["Quota/q-1"].raw.data["spec"]["gpus"] == 4


def test_errors_read_the_same_from_a_cached_file(tmp_path: Path, parses: list[str]) -> None:
    root = write_tree(tmp_path)
    (root / "bad.yaml").write_text(
        "apiVersion: pipeform/v1\nkind: Quota\nmetadata: {name: b}\nspec: {gpus: 1, gpu: 2}\n",
        encoding="utf-8",
    )
    _, first = load(root)
    _, again = load(root)
    assert parses == ["bad.yaml", "quotas.yaml"]  # valid YAML, so cached: errors are the models'
    assert first == again
    assert "bad.yaml:4:17" in first[0] and "spec.gpu is not a known field" in first[0]


def test_a_file_with_yaml_problems_is_never_cached(tmp_path: Path, parses: list[str]) -> None:
    root = write_tree(tmp_path)
    (root / "broken.yaml").write_text("a: 1\na: 2\n", encoding="utf-8")
    _, first = load(root)
    _, again = load(root)
    assert parses == ["broken.yaml", "quotas.yaml", "broken.yaml"]
    assert first == again and "duplicate key 'a'" in first[0]


@pytest.mark.parametrize(
    "damage",
    [
        lambda blob: blob[: len(blob) // 2],  # truncated
        lambda blob: blob[:-10] + b"x" * 10,  # payload changed: checksum fails
        lambda blob: b"not a cache at all",
    ],
    ids=["truncated", "bad-checksum", "garbage"],
)
def test_a_damaged_cache_is_ignored_and_rewritten(
    tmp_path: Path, parses: list[str], damage: Any
) -> None:
    root = write_tree(tmp_path)
    load(root)
    path = cache_file(root)
    path.write_bytes(damage(path.read_bytes()))
    tree, problems = load(root)
    assert not problems and len(tree.documents) == 3
    assert parses == ["quotas.yaml", "quotas.yaml"]
    load(root)
    assert len(parses) == 2, "the damaged cache was not replaced by a good one"


def _poison(root: Path) -> None:
    """Rewrite the cache, with a valid checksum, to claim other data for the same bytes."""
    path = cache_file(root)
    blob = path.read_bytes()
    payload = blob[len(speccache.MAGIC) + 32 :]
    format_key, entries = marshal.loads(payload)
    for entry in entries.values():
        for i, (index, data, packed, facts) in enumerate(entry):
            facts = [*facts[:7], {**facts[7], "gpus": 99}, *facts[8:]]  # the spec's JSON
            entry[i] = (index, {**data, "spec": {"gpus": 99}}, packed, facts)
    payload = marshal.dumps((format_key, entries))
    path.write_bytes(speccache.MAGIC + hashlib.sha256(payload).digest() + payload)


def test_a_cache_others_may_write_is_not_trusted(tmp_path: Path, parses: list[str]) -> None:
    root = write_tree(tmp_path)
    load(root)
    _poison(root)
    os.chmod(cache_file(root), 0o666)
    tree, _ = load(root)
    assert tree.documents["Quota/q-0"].raw.data["spec"]["gpus"] == 1
    assert tree.documents["Quota/q-0"].facts.spec["gpus"] == 1
    assert parses == ["quotas.yaml", "quotas.yaml"]


def test_a_poisoned_cache_is_believed_so_the_test_above_can_fail(
    tmp_path: Path, parses: list[str]
) -> None:
    root = write_tree(tmp_path)
    load(root)
    _poison(root)
    tree, _ = load(root)
    assert tree.documents["Quota/q-0"].facts.spec["gpus"] == 99
    assert parses == ["quotas.yaml"]


def test_the_cache_is_keyed_by_the_parser_version(
    tmp_path: Path, parses: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_tree(tmp_path)
    load(root)
    _poison(root)
    monkeypatch.setattr(speccache, "_format", lambda: "another parser")
    tree, _ = load(root)
    assert tree.documents["Quota/q-0"].raw.data["spec"]["gpus"] == 1
    assert tree.documents["Quota/q-0"].facts.spec["gpus"] == 1
    assert parses == ["quotas.yaml", "quotas.yaml"]


def test_the_format_follows_the_models_and_pydantic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Facts are what validation gave: another model source or pydantic must miss."""
    before = speccache._format()
    assert before is not None
    real_read = Path.read_bytes

    # a kind's model, the loader, and a module outside the spec package (any of them can
    # change what validation gives)
    for module in ("kinds/platform.py", "spec/loader.py", "graph.py", "cli/startup.py"):

        def edited(path: Path, module: str = module) -> bytes:
            data = real_read(path)
            return data + b"# edited" if path.as_posix().endswith(module) else data

        monkeypatch.setattr(Path, "read_bytes", edited)
        assert speccache._format() not in (None, before), f"{module} is not in the format"
    monkeypatch.setattr(Path, "read_bytes", real_read)
    real_key = speccache._package_key
    monkeypatch.setattr(
        speccache,
        "_package_key",
        lambda name: "another" if name == "pydantic" else real_key(name),
    )
    assert speccache._format() not in (None, before), "pydantic's version is not in the format"


def test_nothing_is_written_outside_a_workspace_or_when_turned_off(
    tmp_path: Path, parses: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = tmp_path / "checkout"
    plain.mkdir()
    (plain / "q.yaml").write_text(QUOTA.format(name="q", gpus=1), encoding="utf-8")
    load(plain)
    assert not (plain / ".pipeform").exists()  # validating a checkout leaves nothing behind
    root = write_tree(tmp_path / "workspace")
    monkeypatch.setenv(speccache.DISABLE_ENV, "0")
    load(root)
    load(root)
    assert not cache_file(root).exists()
    assert parses == ["q.yaml", "quotas.yaml", "quotas.yaml"]
