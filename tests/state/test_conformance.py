"""The state backend conformance suite, run unchanged on sqlite, postgres and s3.

What every backend must do for its users: compare-and-swap on serial, one lock with its
holder shown, a stale lock of a dead holder broken, force-unlock by id, concurrent
writers losing no update, a kill -9 during a write leaving a readable state, versions and
``state_at``. The lock and crash cases run the real ``pipeform`` command on a small tree
of Quotas on the fake provider, with the Workspace's state block pointing at the backend.
"""

from __future__ import annotations

import signal
import textwrap
import threading
import uuid
from pathlib import Path

import pytest

from reconciler.state.backend import LockHeld, StateConflict, StateError
from reconciler.state.model import JournalEntry, LockInfo, ResourceState, now
from tests.engine.harness import Result, pipeform
from tests.state.conftest import Spot

QUOTAS = [f"q{n}" for n in range(5)]
ADDRESSES = {f"Quota/{name}" for name in QUOTAS}
APPLY = ("apply", "--auto-approve")


def write_tree(spot: Spot, gpus: int = 4) -> Path:
    """Five Quotas on the fake provider, state on the spot's backend."""
    workspace = f"""
    apiVersion: pipeform/v1
    kind: Workspace
    metadata: {{name: conformance}}
    spec:
      defaults: {{provider: fake}}
      state: {spot.yaml()}
    """
    docs = "---\n".join(
        f"apiVersion: pipeform/v1\nkind: Quota\nmetadata: {{name: {name}}}\nspec: {{gpus: {gpus}}}\n"
        for name in QUOTAS
    )
    (spot.root / "pipeform.yaml").write_text(textwrap.dedent(workspace).lstrip())
    (spot.root / "quotas.yaml").write_text(docs)
    return spot.root


def run(spot: Spot, *args: str, fault: str | None = None) -> Result:
    extra = dict(spot.env)
    if fault:
        extra["PIPEFORM_FAULT"] = fault
    return pipeform(*args, cwd=spot.root, extra_env=extra)


def resource(address: str, value: int) -> ResourceState:
    spec = {"metadata": {"labels": {}, "annotations": {}}, "spec": {"gpus": value}}
    at = f"2026-01-01T00:00:{value % 60:02d}.000000Z"
    return ResourceState(
        address, "Quota", "fake", spec, f"sha256:{value}", outputs={"v": value},
        created_at=at, updated_at=at,
    )  # fmt: skip


def other_host_lock() -> LockInfo:
    """A lock left by a CI job on another machine: nobody here can tell whether it died."""
    return LockInfo(str(uuid.uuid4()), "ci@runner-7", "runner-7", 4242, "pipeform apply", now())


# -- compare-and-swap ------------------------------------------------------------------------


def test_a_write_with_a_stale_serial_is_refused_and_loses_nothing(spot: Spot) -> None:
    ours, theirs = spot.open(), spot.open()
    start = ours.read()
    assert theirs.read().lineage == start.lineage and start.serial == 0

    first = ours.put(start.serial, resource("Quota/a", 1))
    with pytest.raises(StateConflict, match=rf"serial {start.serial} -> {first}"):
        theirs.put(start.serial, resource("Quota/b", 2))
    with pytest.raises(StateConflict):
        theirs.remove(start.serial, "Quota/a")
    assert set(theirs.read().resources) == {"Quota/a"}
    second = theirs.put(first, resource("Quota/b", 2))
    final = ours.read()
    assert final.serial == second == 2
    assert final.resources == {"Quota/a": resource("Quota/a", 1), "Quota/b": resource("Quota/b", 2)}


def test_concurrent_writers_retrying_on_conflict_lose_no_update(spot: Spot) -> None:
    spot.open()  # create the state
    writers, writes = 3, 8
    backends = [spot.open() for _ in range(writers)]
    errors: list[BaseException] = []
    go = threading.Barrier(writers)

    def write(n: int) -> None:
        try:
            go.wait()
            for i in range(writes):
                while True:
                    try:
                        serial = backends[n].read().serial
                        backends[n].put(serial, resource(f"Quota/w{n}-{i}", n * 100 + i))
                        break
                    except StateConflict:
                        continue
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    state = spot.open("read").read()
    assert state.serial == writers * writes
    assert state.resources == {
        f"Quota/w{n}-{i}": resource(f"Quota/w{n}-{i}", n * 100 + i)
        for n in range(writers)
        for i in range(writes)
    }
    assert [v.serial for v in spot.open("read").versions(1000)] == list(
        range(1, writers * writes + 1)
    )


# -- versions and state_at -----------------------------------------------------------------


def test_versions_and_state_at_give_back_every_past_state(spot: Spot) -> None:
    backend = spot.open()
    serial = backend.put(0, resource("Quota/a", 1))
    serial = backend.write_many(
        serial, [("Quota/b", resource("Quota/b", 2), None), ("Quota/a", None, None)]
    )
    serial = backend.put(serial, resource("Quota/a", 3))
    assert serial == 4
    listed = [(v.serial, v.operation, v.address) for v in backend.versions()]
    assert listed == [(1, "put", "Quota/a"), (2, "put", "Quota/b"), (3, "remove", "Quota/a"),
                      (4, "put", "Quota/a")]  # fmt: skip
    assert backend.state_at(1).resources == {"Quota/a": resource("Quota/a", 1)}
    assert backend.state_at(3).resources == {"Quota/b": resource("Quota/b", 2)}
    assert backend.state_at(4).resources == backend.read().resources

    entry = JournalEntry("pipeform state restore 1", "me@here", now(), "", None, None, 0, 0)
    new, changes = backend.restore(1, entry)
    assert new == 5 and changes == {"Quota/a": "changed", "Quota/b": "removed"}
    reopened = spot.open("read")
    assert reopened.read().resources == {"Quota/a": resource("Quota/a", 1)}
    assert reopened.versions()[-1].restored_from == 1
    assert reopened.state_at(4).resources == backend.state_at(4).resources
    assert reopened.journal()[-1].serial_after == 5
    with pytest.raises(StateError, match="there is no state version 99"):
        backend.restore(99, entry)


# -- the lock ----------------------------------------------------------------------------------


def test_the_lock_shows_its_holder_and_keeps_a_second_writer_out(spot: Spot) -> None:
    write_tree(spot)
    holder_backend = spot.open()
    held = other_host_lock()
    holder_backend.acquire_lock(held)
    assert spot.open("read").lock_holder() == held
    with pytest.raises(LockHeld) as caught:
        spot.open().acquire_lock(LockInfo.for_this_process("pipeform plan"), timeout=0.3)
    assert caught.value.holder == held

    blocked = run(spot, *APPLY)
    assert blocked.returncode == 1, blocked
    message = " ".join(blocked.stderr.split())
    assert f"lock id {held.id} held by ci@runner-7 (pid 4242" in message
    assert f"pipeform force-unlock {held.id}" in message
    assert "Traceback" not in blocked.output
    assert spot.open("read").read().serial == 0, "the blocked apply wrote to the state"

    holder_backend.release_lock(held.id)
    assert spot.open("read").lock_holder() is None
    applied = run(spot, *APPLY)
    assert applied.returncode == 0, applied
    assert set(spot.open("read").read().resources) == ADDRESSES


def test_force_unlock_releases_a_lock_by_its_id_only(spot: Spot) -> None:
    write_tree(spot)
    held = other_host_lock()
    spot.open().acquire_lock(held)  # its backend stays open: for postgres, a live session

    wrong = run(spot, "force-unlock", "not-the-id", "-C", str(spot.root))
    assert wrong.returncode == 1, wrong
    assert f"no lock with id not-the-id (the current lock is {held.id})" in wrong.stderr
    assert spot.open("read").lock_holder() == held

    released = run(spot, "force-unlock", held.id, "-C", str(spot.root))
    assert released.returncode == 0, released
    assert f"Released lock id {held.id}" in released.stdout
    assert spot.open("read").lock_holder() is None
    applied = run(spot, *APPLY)
    assert applied.returncode == 0, applied
    assert set(spot.open("read").read().resources) == ADDRESSES


def test_a_stale_lock_of_a_killed_holder_is_broken_by_the_next_command(spot: Spot) -> None:
    write_tree(spot)
    killed = run(spot, *APPLY, fault="after-lock")
    assert killed.returncode == -signal.SIGKILL, killed
    holder = spot.open("read").lock_holder()
    assert holder is not None and holder.pid == killed.pid, "the killed apply left no lock"

    after = run(spot, *APPLY)
    assert after.returncode == 0, after
    assert f"broke a stale lock: lock id {holder.id}" in after.stderr
    assert spot.open("read").lock_holder() is None
    assert set(spot.open("read").read().resources) == ADDRESSES


# -- crashes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("point", ["mid-state-write", "mid-state-write:Quota/q3"])
def test_a_kill_during_a_write_leaves_a_readable_state_and_apply_converges(
    spot: Spot, point: str
) -> None:
    write_tree(spot)
    killed = run(spot, *APPLY, fault=point)
    assert killed.returncode == -signal.SIGKILL, killed
    listed = run(spot, "state", "list", "--json", "-C", str(spot.root))
    assert listed.returncode == 0, listed
    state = spot.open("read").read()
    assert len(spot.open("read").versions(1000)) == state.serial, "a version without its write"

    again = run(spot, *APPLY)
    assert again.returncode == 0, again
    final = spot.open("read").read()
    assert set(final.resources) == ADDRESSES
    assert all(r.status.value == "ready" for r in final.resources.values())
    noop = run(spot, "plan")
    assert noop.returncode == 0 and "No changes" in noop.stdout, noop
