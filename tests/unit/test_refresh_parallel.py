"""Refresh reads live objects up to --parallelism at once when the provider's reads wait
on a server (Provider.concurrent_reads), and one at a time otherwise."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

import pytest

from providers import base
from providers.base import ReadRequest, ReadResponse
from providers.testing import FakeProvider
from reconciler import engine
from reconciler.diagnostics import PipeformError
from reconciler.plan.model import Plan
from reconciler.plan.planner import PlanOptions

N = 40
DELAY = 0.05  # one simulated round trip


class SlowApi(FakeProvider):
    """The fake provider behind a 50 ms API, counting how many reads overlap."""

    name: ClassVar[str] = "slowapi"
    concurrent_reads: ClassVar[bool] = True
    lock = threading.Lock()
    running = 0
    most = 0
    failing: ClassVar[set[str]] = set()

    def read(self, request: ReadRequest) -> ReadResponse:
        cls = type(self)
        with cls.lock:
            cls.running += 1
            cls.most = max(cls.most, cls.running)
        try:
            time.sleep(DELAY)
            if request.ctx.address in cls.failing:
                raise base.PermanentError("the API answered 403")
            return super().read(request)
        finally:
            with cls.lock:
                cls.running -= 1


class SlowDisk(SlowApi):
    name: ClassVar[str] = "slowdisk"
    concurrent_reads: ClassVar[bool] = False


@pytest.fixture(autouse=True)
def providers() -> Iterator[None]:
    base.register(SlowApi)
    base.register(SlowDisk)
    yield
    base.unregister(SlowApi.name)
    base.unregister(SlowDisk.name)


def tree(root: Path, provider: str) -> Path:
    docs = [
        f"apiVersion: pipeform/v1\nkind: Workspace\nmetadata: {{name: t}}\n"
        f"spec: {{defaults: {{provider: {provider}}}}}\n"
    ]
    docs += [
        f"apiVersion: pipeform/v1\nkind: Quota\nmetadata: {{name: q{i}}}\nspec: {{gpus: 1}}\n"
        for i in range(N)
    ]
    (root / "specs.yaml").write_text("---\n".join(docs))
    session = engine.open_session([root])
    report = engine.apply(session, engine.plan(session, PlanOptions()), "test", parallelism=8)
    assert not report.failed
    SlowApi.most = 0
    return root


def timed_plan(root: Path, parallelism: int) -> tuple[Plan, float]:
    session = engine.open_session([root])
    started = time.monotonic()
    result = engine.plan(session, PlanOptions(parallelism=parallelism))
    return result, time.monotonic() - started


def test_reads_that_wait_on_a_server_overlap_up_to_parallelism(tmp_path: Path) -> None:
    root = tree(tmp_path, "slowapi")
    result, seconds = timed_plan(root, 10)
    assert not result.has_changes and not result.drift
    assert SlowApi.most == 10
    assert seconds < N * DELAY / 2, f"{N} reads of {DELAY}s took {seconds:.2f}s"


def test_parallelism_one_reads_one_at_a_time(tmp_path: Path) -> None:
    root = tree(tmp_path, "slowapi")
    _, seconds = timed_plan(root, 1)
    assert SlowApi.most == 1
    assert seconds >= N * DELAY


def test_providers_with_cpu_bound_reads_are_read_in_turn(tmp_path: Path) -> None:
    root = tree(tmp_path, "slowdisk")
    timed_plan(root, 10)
    assert SlowDisk.most == 1


def test_drift_found_by_parallel_reads_is_reported_in_address_order(tmp_path: Path) -> None:
    root = tree(tmp_path, "slowapi")
    store = root / ".pipeform" / "fake"
    for i in (3, 17, 31):
        (store / f"Quota__q{i}.json").unlink()
    result, _ = timed_plan(root, 10)
    assert [d.address for d in result.drift] == ["Quota/q17", "Quota/q3", "Quota/q31"]
    assert all(not d.exists for d in result.drift)


def test_a_failed_read_names_its_resource(tmp_path: Path) -> None:
    root = tree(tmp_path, "slowapi")
    SlowApi.failing = {"Quota/q7"}
    try:
        with pytest.raises(PipeformError, match=r"Quota/q7: provider slowapi could not read it"):
            timed_plan(root, 10)
    finally:
        SlowApi.failing = set()


class BatchApi(SlowApi):
    """Reads every object in one call (Provider.read_batch), as a LIST would."""

    name: ClassVar[str] = "batchapi"
    batches: ClassVar[list[int]] = []

    def read_batch(self, requests: Sequence[ReadRequest]) -> list[ReadResponse] | None:
        type(self).batches.append(len(requests))
        return [FakeProvider.read(self, request) for request in requests]

    def read(self, request: ReadRequest) -> ReadResponse:
        raise AssertionError("a provider with read_batch is not read one object at a time")


def test_a_provider_that_reads_in_batches_is_asked_once_per_refresh(tmp_path: Path) -> None:
    base.register(BatchApi)
    try:
        BatchApi.batches.clear()
        root = tree(tmp_path, "batchapi")
        BatchApi.batches.clear()
        (root / ".pipeform" / "fake" / "Quota__q5.json").unlink()
        result, _ = timed_plan(root, 10)
        assert BatchApi.batches == [N]
        assert [d.address for d in result.drift] == ["Quota/q5"]
    finally:
        base.unregister(BatchApi.name)
