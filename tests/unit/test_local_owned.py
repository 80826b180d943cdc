"""The local provider's list_owned: the records that carry ownership labels, for the
engine's warning when an empty state sits beside objects pipeform made."""

from __future__ import annotations

import json

from providers import base
from providers.local import LocalProvider
from tests.unit.test_local_provider import ENV_VAR, LINEAGE, create, provider, value

__all__ = ["provider", "value"]  # fixtures


def test_list_owned_finds_every_labelled_record_and_nothing_else(
    provider: LocalProvider, value: str
) -> None:
    """What the engine's empty-state warning rests on: each kind's records, whatever the
    lineage, with the id `pipeform import` takes; unlabelled or damaged files are skipped."""
    create(provider, "Quota", "team-a", {"gpus": 2})
    create(
        provider, "Secret", "token", {"from": {"env": ENV_VAR}, "targets": [{"provider": "local"}]}
    )
    data = provider.root / ".pipeform/data"
    labels = {base.OWNER_ADDRESS: "Dataset/events", base.OWNER_LINEAGE: "old-lineage"}
    (data / "datasets/events").mkdir(parents=True)
    (data / "datasets/events/current.json").write_text(json.dumps({"labels": labels}))
    run = data / "runs/churn/run-1"
    run.mkdir(parents=True)
    owner = {base.OWNER_ADDRESS: "TrainingJob/churn", base.OWNER_LINEAGE: LINEAGE}
    (run / "run.json").write_text(json.dumps({"labels": owner}))
    (data / "quotas/by-hand.json").write_text(json.dumps({"limits": {"gpus": 1}}))
    (data / "quotas/broken.json").write_text("{not json")

    found = provider.list_owned(base.ListOwnedRequest(provider.root, LINEAGE)).objects
    assert sorted((o.address, o.lineage, o.id, o.where) for o in found) == [
        ("Dataset/events", "old-lineage", "events", ".pipeform/data/datasets/events/current.json"),
        ("Quota/team-a", LINEAGE, "team-a", ".pipeform/data/quotas/team-a.json"),
        ("Secret/token", LINEAGE, "token", ".pipeform/data/secrets/token.json"),
        ("TrainingJob/churn", LINEAGE, "run-1", ".pipeform/data/runs/churn/run-1/run.json"),
    ]
    assert all(value not in repr(o) for o in found)


def test_list_owned_of_a_tree_never_applied_finds_nothing_and_creates_nothing(
    provider: LocalProvider,
) -> None:
    assert provider.list_owned(base.ListOwnedRequest(provider.root, "")).objects == []
    assert not (provider.root / ".pipeform").exists()
