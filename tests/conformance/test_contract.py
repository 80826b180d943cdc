"""The provider protocol's contract, checked against every provider in ``cases.CASES``.

What the engine relies on (Crossplane's external-client rules): reading an object that
was never made says it is gone; what create reports is what a read then observes; a
create retried after a crash adopts what the first one made, as it is; an update shows
in what is observed, and repeating it changes nothing more; deleting twice succeeds;
reading changes nothing on disk; an object that another resource owns is never taken
over, only imported on request.
"""

from __future__ import annotations

import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from providers.base import (
    ApplyRequest,
    ApplyResponse,
    DeleteRequest,
    ImportRequest,
    PermanentError,
    Provider,
    ReadRequest,
    ReadResponse,
    ResourceContext,
)
from tests.conformance.cases import KindSample, ProviderCase, load_cases

OURS = "11111111-1111-4111-8111-111111111111"
THEIRS = "22222222-2222-4222-8222-222222222222"

SUBJECTS = [
    pytest.param((case, sample), id=f"{case.id}-{sample.kind}-{sample.name}")
    for case in load_cases()
    for sample in case.samples
]


@dataclass
class Subject:
    """One provider, one sample object, a fresh spec tree."""

    case: ProviderCase
    sample: KindSample
    provider: Provider
    root: Path
    upstream: Mapping[str, Any]  # outputs of what the sample depends on, made in the tree

    def ctx(self, lineage: str = OURS) -> ResourceContext:
        return ResourceContext(
            self.sample.address, self.sample.kind, self.sample.name, lineage, self.root
        )

    def create(self, lineage: str = OURS) -> ApplyResponse:
        return self.provider.create(
            ApplyRequest(self.ctx(lineage), self.sample.spec, None, {}, None, self.upstream)
        )

    def update(self, prior: ApplyResponse) -> ApplyResponse:
        return self.provider.update(
            ApplyRequest(
                self.ctx(),
                self.sample.changed,
                self.sample.spec,
                prior.outputs,
                prior.external_id,
                self.upstream,
            )
        )

    def read(
        self,
        prior: ApplyResponse | None = None,
        spec: dict[str, Any] | None = None,
        lineage: str = OURS,
    ) -> ReadResponse:
        return self.provider.read(
            ReadRequest(
                self.ctx(lineage),
                spec or self.sample.spec,
                prior.outputs if prior else {},
                prior.external_id if prior else None,
            )
        )

    def delete(self, prior: ApplyResponse | None, spec: dict[str, Any] | None = None) -> None:
        self.provider.delete(
            DeleteRequest(
                self.ctx(),
                spec or self.sample.spec,
                prior.outputs if prior else {},
                prior.external_id if prior else None,
            )
        )

    def tree(self) -> dict[str, tuple[int, int, bytes | None]]:
        """Every path under the tree with its mode, mtime and bytes (scratch files left out)."""
        # A directory holding scratch files changes its mtime when they are written.
        holders = {Path(p).parent.as_posix() for p in self.case.scratch}
        out: dict[str, tuple[int, int, bytes | None]] = {}
        for path in sorted(self.root.rglob("*")):
            relative = path.relative_to(self.root).as_posix()
            if relative in self.case.scratch:
                continue
            info = path.lstat()
            content = path.read_bytes() if stat.S_ISREG(info.st_mode) else None
            mtime = 0 if relative in holders else info.st_mtime_ns
            out[relative] = (stat.S_IMODE(info.st_mode), mtime, content)
        return out


@pytest.fixture(params=SUBJECTS)
def subject(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Subject:
    case, sample = request.param
    if case.fixture:
        request.getfixturevalue(case.fixture)
    root = tmp_path / "tree"
    root.mkdir()
    sample.prepare(monkeypatch, root)
    upstream = sample.upstream(root)
    return Subject(case, sample, case.factory(root), root, upstream)


def test_reading_an_object_never_created_says_it_is_gone(subject: Subject) -> None:
    before = subject.tree()
    assert subject.read().exists is False
    assert subject.tree() == before


def test_a_read_after_create_observes_what_create_reported(subject: Subject) -> None:
    created = subject.create()
    live = subject.read(created)
    assert live.exists is True
    assert live.observed == created.observed
    assert live.external_id == created.external_id


def test_a_create_retried_after_a_crash_adopts_instead_of_duplicating(subject: Subject) -> None:
    first = subject.create()
    paths = set(subject.tree())
    again = subject.create()  # state never recorded the first create
    assert again.external_id == first.external_id
    assert again.observed == first.observed, "adopting changed the object"
    assert again.outputs == first.outputs
    assert set(subject.tree()) == paths, "the retried create made a second object"
    assert subject.read(again).exists is True


def test_an_update_repeated_changes_nothing_more(subject: Subject) -> None:
    created = subject.create()
    updated = subject.update(created)
    contents = _contents(subject.tree())
    again = subject.update(created)  # state never recorded the first update
    assert (again.observed, again.outputs, again.external_id) == (
        updated.observed,
        updated.outputs,
        updated.external_id,
    )
    assert _contents(subject.tree()) == contents, "repeating the update changed files"


def test_an_update_changes_what_is_observed(subject: Subject) -> None:
    created = subject.create()
    updated = subject.update(created)
    assert updated.observed != created.observed
    assert subject.read(updated, subject.sample.changed).observed == updated.observed


def test_deleting_twice_succeeds_and_the_object_is_gone(subject: Subject) -> None:
    created = subject.create()
    subject.delete(created)
    assert subject.read(created).exists is False
    subject.delete(created)  # already gone: still a success
    subject.delete(None)  # and one that was never recorded at all


def test_reading_changes_nothing_on_disk(subject: Subject) -> None:
    created = subject.create()
    before = subject.tree()
    for _ in range(2):
        subject.read(created)
        subject.read(None)  # as on import, without outputs or an external id
    assert subject.tree() == before


def test_an_object_owned_by_another_state_is_not_adopted(subject: Subject) -> None:
    theirs = subject.create(lineage=THEIRS)
    before = subject.tree()
    if not subject.sample.exclusive:  # each state makes its own: ours beside theirs
        ours = subject.create(lineage=OURS)
        assert ours.external_id != theirs.external_id, "another state's object was adopted"
        after = _contents(subject.tree())
        held = [p for p in _contents(before) if str(theirs.external_id) in p]
        assert held and all(after[p] == _contents(before)[p] for p in held), "theirs changed"
    else:
        with pytest.raises(PermanentError) as refused:
            subject.create(lineage=OURS)
        importable = subject.case.supports_import and subject.sample.importable
        message = str(refused.value)
        assert (f"pipeform import {subject.sample.address}" in message) == importable, (
            "the refusal should say how to adopt it, and only where import can"
        )
        assert THEIRS in message, "the refusal should name the owner"
        assert subject.tree() == before
    assert subject.read(theirs, lineage=THEIRS).observed == theirs.observed


def test_import_adopts_an_object_another_state_owns(subject: Subject) -> None:
    if not (subject.case.supports_import and subject.sample.importable):
        pytest.skip(f"provider {subject.case.id} does not import {subject.sample.kind}")
    theirs = subject.create(lineage=THEIRS)
    assert theirs.external_id is not None
    imported = subject.provider.import_(ImportRequest(subject.ctx(), theirs.external_id))
    assert imported.external_id == theirs.external_id
    subject.create()  # now ours: a create adopts it
    assert subject.read(theirs).exists is True


def _contents(tree: dict[str, tuple[int, int, bytes | None]]) -> dict[str, bytes]:
    """The bytes of every file in a tree() listing (rewriting the same bytes is allowed)."""
    return {path: content for path, (_, _, content) in tree.items() if content is not None}
