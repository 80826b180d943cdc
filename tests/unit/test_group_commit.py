"""Group commit: workers that finish together share one state transaction, and each
resource is still in state, with its journal entry, before its worker goes on."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from reconciler import engine
from reconciler.diagnostics import PipeformError
from reconciler.plan.planner import PlanOptions
from reconciler.state.backend import StateConflict

WORKSPACE = "apiVersion: pipeform/v1\nkind: Workspace\nmetadata: {name: t}\nspec: {defaults: {provider: fake}}\n"


def quotas(root: Path, count: int, chained: bool = False) -> Path:
    docs = []
    for i in range(count):
        depends = f", dependsOn: [Quota/q{i - 1}]" if chained and i else ""
        docs.append(
            f"apiVersion: pipeform/v1\nkind: Quota\nmetadata: {{name: q{i}{depends}}}\n"
            "spec: {gpus: 1}\n"
        )
    (root / "ws.yaml").write_text(WORKSPACE)
    (root / "q.yaml").write_text("---\n".join(docs))
    return root


def spy(session: engine.Session, batches: list[list[str]], fail_on: int | None = None) -> list[str]:
    """Record the addresses of each committed write_many call, slowing each commit so that
    writers overlap; the addresses of the call that fail_on makes fail are returned."""
    real = session.backend.write_many
    calls = 0
    failed: list[str] = []

    def write_many(serial: int, writes: list[Any]) -> int:
        nonlocal calls
        calls += 1
        if calls == fail_on:
            failed.extend(address for address, _, _ in writes)
            raise StateConflict("the state changed while this command ran (test)")
        time.sleep(0.02)
        result = real(serial, writes)
        batches.append([address for address, _, _ in writes])
        return result

    session.backend.write_many = write_many  # type: ignore[method-assign]
    return failed


def test_writers_that_finish_together_share_a_commit(tmp_path: Path) -> None:
    session = engine.open_session([quotas(tmp_path, 40)])
    batches: list[list[str]] = []
    spy(session, batches)
    plan = engine.plan(session, PlanOptions())
    report = engine.apply(session, plan, "test", parallelism=10)
    assert not report.failed
    written = [address for batch in batches for address in batch]
    assert sorted(written) == sorted(f"Quota/q{i}" for i in range(40)), "one write each"
    assert max(len(batch) for batch in batches) > 1, "no two writers shared a commit"
    assert len(batches) < 40
    state = session.backend.read()
    assert sorted(state.resources) == sorted(written)
    assert all(r.status.value == "ready" for r in state.resources.values())
    journal = session.backend.journal(limit=100)
    # one entry per resource, written with its state (the apply's own entries list all)
    results = [(e.serial_after, e.results[0]["address"]) for e in journal if len(e.results) == 1]
    assert sorted(address for _, address in results) == sorted(written)  # an entry each
    assert len({serial for serial, _ in results}) == 40  # and a version each
    assert engine.plan(engine.open_session([tmp_path]), PlanOptions()).actionable == []


def test_a_dependent_starts_only_after_its_dependency_is_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = engine.open_session([quotas(tmp_path, 6, chained=True)])
    committed: list[str] = []
    created_after: dict[str, list[str]] = {}  # address -> what was committed when it began
    lock = threading.Lock()
    provider = type(session.providers.instances["fake"])
    real_create, real_write = provider.create, session.backend.write_many

    def create(self: Any, request: Any) -> Any:
        with lock:
            created_after[request.ctx.address] = list(committed)
        return real_create(self, request)

    def write_many(serial: int, writes: list[Any]) -> int:
        time.sleep(0.02)  # a slow disk: the next resource must still wait for it
        result = real_write(serial, writes)
        with lock:
            committed.extend(address for address, _, _ in writes)
        return result

    monkeypatch.setattr(provider, "create", create)
    monkeypatch.setattr(session.backend, "write_many", write_many)
    report = engine.apply(session, engine.plan(session, PlanOptions()), "test", parallelism=10)
    assert not report.failed
    for i in range(1, 6):
        assert f"Quota/q{i - 1}" in created_after[f"Quota/q{i}"], (
            f"q{i} was created before q{i - 1}'s state was committed"
        )


def test_a_failed_commit_fails_every_write_in_it_and_stops_the_apply(tmp_path: Path) -> None:
    session = engine.open_session([quotas(tmp_path, 20)])
    batches: list[list[str]] = []
    failed = spy(session, batches, fail_on=2)
    with pytest.raises(PipeformError, match="state changed"):
        engine.apply(session, engine.plan(session, PlanOptions()), "test", parallelism=10)
    assert len(failed) > 1, "the failing commit held one write: nothing shared it"
    state = session.backend.read()
    ready = sorted(a for a, r in state.resources.items() if r.status.value == "ready")
    assert ready == sorted(a for batch in batches for a in batch)
    assert not set(failed) & set(ready), "a write of the failed commit is recorded ready"
    assert len(ready) < 20, "the apply went on scheduling after the state could not be written"
    # the others stay recorded as pending creates: the next apply adopts or recreates them
    assert len(state.resources) == 20
    again = engine.open_session([tmp_path])
    report = engine.apply(again, engine.plan(again, PlanOptions()), "test", parallelism=10)
    assert not report.failed
    assert engine.plan(engine.open_session([tmp_path]), PlanOptions()).actionable == []
