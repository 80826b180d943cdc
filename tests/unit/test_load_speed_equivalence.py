"""The cheaper load path gives what the plain one gave: data, positions, order, frozen records."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from reconciler.diagnostics import Diagnostics
from reconciler.graph import Edge
from reconciler.kinds import KINDS, Reference
from reconciler.spec.checks import check
from reconciler.spec.facts import Facts
from reconciler.spec.loader import LoadedDocument, load_tree
from reconciler.spec.source import RawDocument
from tests.unit.conftest import assert_same_documents

ANCHORED = """\
apiVersion: pipeform/v1
kind: Quota
metadata:
  name: first
  labels: &team {team: ml, tier: gold}
  annotations:
    <<: *team
    tier: silver
spec: {gpus: 1, gpuTypes: [a100, h100]}
---
apiVersion: pipeform/v1
kind: Quota
metadata: {name: second, labels: &same {team: ml}, annotations: *same}
spec: {gpus: 2, gpuTypes: [a100]}
"""


def quota(name: str, extra: str = "") -> str:
    return f"apiVersion: pipeform/v1\nkind: Quota\nmetadata: {{name: {name}{extra}}}\nspec: {{gpus: 1}}\n"


def test_anchors_and_merges_read_the_same_from_the_cache(tmp_path: Path, parses: list[str]) -> None:
    (tmp_path / ".pipeform").mkdir()
    (tmp_path / "q.yaml").write_text(ANCHORED, encoding="utf-8")
    fresh = load_tree([tmp_path], Diagnostics())
    cached = load_tree([tmp_path], Diagnostics())
    assert parses == ["q.yaml"], "the second load parsed the file again"
    assert list(cached.documents) == ["Quota/first", "Quota/second"]
    assert_same_documents(fresh, cached)
    first = cached.documents["Quota/first"].model.metadata
    assert first.annotations == {"team": "ml", "tier": "silver"}
    second = cached.documents["Quota/second"].raw.data["metadata"]
    assert second["labels"] is second["annotations"], "an alias is one value, cached or not"


def test_cross_checks_report_in_address_order_whatever_the_file_order(tmp_path: Path) -> None:
    bad_ignore = ", lifecycle: {ignoreChanges: [gpuz]}"
    bad_ref = ", dependsOn: [Quota/nowhere]"
    docs = [quota("zeta", bad_ignore + bad_ref), quota("alpha", bad_ignore + bad_ref)]
    (tmp_path / "a.yaml").write_text("---\n".join(docs), encoding="utf-8")
    found = [(d.address, d.message.split(" ")[0]) for d in check([tmp_path]).diagnostics]
    assert found == [
        ("Quota/alpha", "metadata.dependsOn[0]"),  # the graph's, by address
        ("Quota/zeta", "metadata.dependsOn[0]"),
        ("Quota/alpha", "metadata.lifecycle.ignoreChanges[0]:"),  # then each check's, by address
        ("Quota/zeta", "metadata.lifecycle.ignoreChanges[0]:"),
    ]


def test_a_document_without_lifecycle_reads_the_defaults_and_cannot_change_them() -> None:
    model = KINDS["Quota"]
    plain = model.model_validate({**_quota_data("a")})
    other = model.model_validate({**_quota_data("b")})
    kept = model.model_validate(
        {**_quota_data("c"), "metadata": {"name": "c", "lifecycle": {"preventDestroy": True}}}
    )
    for doc in (plain, other):
        assert doc.metadata.lifecycle.prevent_destroy is False
        assert doc.metadata.lifecycle.ignore_changes == []
        assert "lifecycle" not in doc.metadata.model_fields_set
    assert kept.metadata.lifecycle.prevent_destroy is True
    with pytest.raises(ValidationError):
        plain.metadata.lifecycle.prevent_destroy = True  # type: ignore[misc]
    assert other.metadata.lifecycle.prevent_destroy is False


def _quota_data(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "pipeform/v1",
        "kind": "Quota",
        "metadata": {"name": name},
        "spec": {"gpus": 1},
    }


@pytest.mark.parametrize(
    "record",
    [
        Edge("Quota/a", "Quota/b", "metadata.dependsOn[0]"),
        Reference("Quota", "a", ("metadata", "dependsOn", 0)),
        LoadedDocument(
            Facts.of(KINDS["Quota"].model_validate(_quota_data("a"))),
            RawDocument("q.yaml", 0, {}),
            KINDS["Quota"].model_validate(_quota_data("a")),
        ),
        Facts.of(KINDS["Quota"].model_validate(_quota_data("a"))),
    ],
)
def test_per_document_records_stay_frozen_dataclasses(record: Any) -> None:
    first = dataclasses.fields(record)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(record, first, "changed")
    values = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    assert type(record)(**values) == record
    assert repr(record).startswith(f"{type(record).__name__}({first}=")
    assert dataclasses.replace(record) == record
    if not isinstance(record, LoadedDocument | Facts):  # they hold dicts: not hashable
        assert hash(type(record)(**values)) == hash(record)
        assert pickle.loads(pickle.dumps(record)) == record
