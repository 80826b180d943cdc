"""kill -9 of `pipeform apply` at many moments: the next run recovers and converges.

Each scenario kills a real `pipeform apply --auto-approve` (or `destroy`) with SIGKILL,
either at a named crash point (``PIPEFORM_FAULT=point:Kind/name``) or after a random
delay, and then checks what a user relies on: the next run breaks the dead process's
lock by itself and succeeds, a following plan shows no changes, the live system holds
exactly one object per desired resource (adopted, not duplicated; nothing left behind
after destroy), and `state list` names exactly the resources in the specs.

Scenarios are independent spec trees, so they run on a thread pool in the background
while the other engine tests run (see conftest.py); each test here collects one outcome.
"""

from __future__ import annotations

import json
import random
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.engine.harness import (
    ADDRESSES,
    EDITED_ADDRESSES,
    Background,
    Result,
    calls,
    copy_tree,
    edit_tree,
    finish,
    live_objects,
    lock_holder,
    pipeform,
    recorded,
    started,
    state_list,
    store,
    write_tree,
)

POINTS = ("before-provider-call", "after-provider-call", "after-state-write", "between-resources")
RANDOM_WINDOW = 0.3  # seconds after the first provider call (the apply phase takes ~0.25 s)
# the first, a middle and the last resource in graph order (levels 1, 3 and 4 of 4)
FIRST, MIDDLE, LAST = "Dataset/events", "TrainingJob/churn-model", "Alert/churn-model-failed"


@dataclass(frozen=True)
class Crash:
    run: str  # create (fresh tree) | update (edited applied tree) | replace | destroy
    fault: str | None = None  # PIPEFORM_FAULT value
    seed: int | None = None  # a random kill instead of a crash point

    def __str__(self) -> str:
        return f"{self.run}-{self.fault or f'random{self.seed}'}"

    @property
    def address(self) -> str | None:
        return self.fault.split(":", 1)[1] if self.fault and ":" in self.fault else None

    @property
    def point(self) -> str | None:
        return self.fault.split(":", 1)[0] if self.fault else None

    @property
    def action(self) -> str:
        """What the run does to the crash point's resource."""
        if self.run in ("destroy", "replace") or self.address == "Alert/ctr-model-failed":
            return "delete"  # a replacement deletes first
        if self.run == "create" or self.address == "Alert/events-stale":
            return "create"
        return "update"

    @property
    def desired(self) -> frozenset[str]:
        if self.run == "destroy":
            return frozenset()
        return EDITED_ADDRESSES if self.run == "update" else ADDRESSES

    @property
    def command(self) -> tuple[str, ...]:
        if self.run == "replace":
            return ("apply", "--auto-approve", "--replace", FIRST)
        return ("destroy" if self.run == "destroy" else "apply", "--auto-approve")


SCENARIOS = [
    # creates: every crash point at the first, a middle and the last resource of the graph
    *(Crash("create", f"{p}:{a}") for p in POINTS for a in (FIRST, MIDDLE, LAST)),
    # an update run (updates flowing down a chain, a create and a delete): the retrain, the delete
    *(Crash("update", f"{p}:{MIDDLE}") for p in POINTS),
    Crash("update", "after-provider-call:Alert/ctr-model-failed"),
    # `apply --replace Dataset/events` killed after the delete, before the create
    Crash("replace", f"after-provider-call:{FIRST}"),
    # destroy: dependents go first, so the last resource created is the first destroyed
    Crash("destroy", f"before-provider-call:{LAST}"),
    Crash("destroy", "after-provider-call:TrainingJob/ctr-model"),
    Crash("destroy", "after-state-write:FeatureSet/churn-features"),
    Crash("destroy", f"between-resources:{FIRST}"),
    # SIGKILL at a random moment of the apply phase
    *(Crash("create", seed=s) for s in (1, 2)),
    Crash("update", seed=3),
    Crash("destroy", seed=4),
]


def prepare(crash: Crash, workdir: Path, runner: Background) -> Path:
    if crash.run == "create":
        return write_tree(workdir / "tree")
    root = copy_tree(runner.applied(), workdir / "tree")
    if crash.run == "update":
        edit_tree(root)
    return root


def kill_at_random(crash: Crash, root: Path) -> Result:
    """Start the run and SIGKILL it 0-300 ms after its first provider call.

    The clock starts at the first provider call rather than at process start: importing
    takes most of a second here, and a kill during imports tests nothing.
    """
    delay = random.Random(crash.seed).uniform(0, RANDOM_WINDOW)
    log = store(root) / "calls.jsonl"
    before = log.stat().st_size if log.exists() else 0
    t0 = time.monotonic()
    with started(*crash.command, cwd=root) as proc:
        while proc.poll() is None and (log.stat().st_size if log.exists() else 0) <= before:
            assert time.monotonic() - t0 < 60, "the run never called its provider"
            time.sleep(0.002)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        return finish(proc, crash.command, t0)


def check_crash_site(crash: Crash, root: Path) -> None:
    """The process died exactly where the crash point says (before recovery)."""
    address, point = crash.address, crash.point
    if address is None or point is None:
        return
    live = live_objects(root).get(address)
    prior = recorded(root).resources.get(address)
    called = point != "before-provider-call"
    written = point in ("after-state-write", "between-resources")
    site = f"at {crash.fault}: live {live is not None}, recorded {prior is not None}"
    if crash.action == "create":
        # a pending record names the resource from before the provider call on
        ready = prior is not None and prior.status.value != "pending"
        assert (live is not None, ready) == (called, written), site
        assert prior is not None, site
    elif crash.action == "delete":
        assert (live is None, prior is None) == (called, written), site
    else:  # an update: the live object is one version ahead until the state write
        assert live is not None and prior is not None, site
        ahead = 1 if called and not written else 0
        assert live["version"] == prior.outputs["version"] + ahead, site


def crash_and_recover(crash: Crash, workdir: Path, runner: Background) -> None:
    root = prepare(crash, workdir, runner)
    if crash.seed is not None:
        crashed = kill_at_random(crash, root)
        assert crashed.returncode in (0, -signal.SIGKILL), crashed
    else:
        crashed = pipeform(
            *crash.command, cwd=root, extra_env={"PIPEFORM_FAULT": crash.fault or ""}
        )
        assert crashed.returncode == -signal.SIGKILL, f"the crash point was not reached:\n{crashed}"
        check_crash_site(crash, root)
    stale = lock_holder(root)
    if crashed.returncode == -signal.SIGKILL and crash.seed is None:
        assert stale is not None and stale.pid == crashed.pid, "the crashed run held no lock"
    else:
        assert stale is None or stale.pid == crashed.pid

    recovered = pipeform(*crash.command[:2], cwd=root)  # as is, or a plain apply
    assert recovered.returncode == 0, recovered
    if crash.run == "create":  # a create the dead run recorded but never finished (or
        # never started) is planned as a create, not as "deleted outside pipeform"
        assert "outside pipeform" not in recovered.stdout, recovered
    if crash.action == "delete" and crash.address:  # a delete the dead run started is
        # finished, not shown as drift
        address = re.escape(crash.address)
        gone = re.search(rf"{address}\s+deleted outside pipeform", recovered.stdout)
        assert gone is None, recovered
        if crash.point == "after-provider-call":
            finished = "replacement" if crash.run == "replace" else "delete"
            said = rf"{address} .*\(an interrupted {finished} is finished\)"
            assert re.search(said, recovered.stdout), recovered
    if stale is not None:  # the dead holder's lock is broken, and the user is told
        note = re.search(r"note: broke a stale lock: lock id (\S+) .*\(pid (\d+)", recovered.stderr)
        assert note, recovered
        assert (note[1], int(note[2])) == (stale.id, crashed.pid)
    assert lock_holder(root) is None
    if crash.point == "after-provider-call" and crash.action == "create":
        # what the dead run created but did not record is adopted, not made a second time
        # (other resources of the same level may have been in that window too)
        adopted = [c["address"] for c in calls(root) if c["call"] == "adopt"]
        assert crash.address in adopted and len(adopted) == len(set(adopted)), adopted

    check = pipeform(
        "plan", "--detailed-exitcode", *(("--destroy",) if crash.run == "destroy" else ()), cwd=root
    )
    assert check.returncode == 0, f"not converged after recovery:\n{check}"
    live = live_objects(root)
    assert set(live) == crash.desired, "live objects differ from the specs (orphan or duplicate)"
    state = recorded(root)
    assert set(state.resources) == crash.desired, "a record was lost, or one is left over"
    assert {r.status.value for r in state.resources.values()} <= {"ready"}
    for address, body in live.items():  # each object is this state's, none a stray
        assert body["labels"]["pipeform.dev/lineage"] == state.lineage, address
        assert body["version"] == state.resources[address].outputs["version"], address
    if crash.seed is not None:  # and as the user sees it (a process: ~1 s, so not always)
        listed = state_list(root)
        assert {r["address"] for r in listed["resources"]} == crash.desired
    if crash.run == "update":
        assert live["Quota/gpu-team"]["spec"]["spec"]["gpus"] == 8
    if crash.run == "replace":  # the object was made anew (a fresh object starts at 1)
        assert live[FIRST]["version"] == 1


def schedule_in_background(
    runner: Background, params: dict[str, object], tmp_path_factory: pytest.TempPathFactory
) -> None:
    crash = params["crash"]
    assert isinstance(crash, Crash)
    workdir = tmp_path_factory.mktemp(re.sub(r"[^A-Za-z0-9-]+", "-", str(crash)))
    runner.submit(crash, crash_and_recover, crash, workdir, runner)


@pytest.mark.parametrize("crash", SCENARIOS, ids=str)
def test_next_apply_converges_after_kill(crash: Crash, background: Background) -> None:
    background.result(crash)


# -- after a crash: destroy leaves no orphan, history accounts for every change ----------


def test_destroy_after_a_crashed_create_leaves_no_orphan(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "tree")
    crashed = pipeform(
        "apply",
        "--auto-approve",
        cwd=root,
        extra_env={"PIPEFORM_FAULT": f"after-provider-call:{FIRST}"},
    )
    assert crashed.returncode == -signal.SIGKILL, crashed
    destroyed = pipeform("destroy", "--auto-approve", cwd=root)
    assert destroyed.returncode == 0, destroyed
    assert not recorded(root).resources
    assert not live_objects(root), "objects made by the crashed apply are still live"


def test_history_accounts_for_changes_made_before_a_crash(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "tree")
    fault = {"PIPEFORM_FAULT": f"after-state-write:{MIDDLE}"}
    crashed = pipeform("apply", "--auto-approve", cwd=root, extra_env=fault)
    assert crashed.returncode == -signal.SIGKILL, crashed
    made_by_crashed_run = set(recorded(root).resources)
    assert FIRST in made_by_crashed_run
    assert pipeform("apply", "--auto-approve", cwd=root).returncode == 0
    history = pipeform("history", "--json", "-C", str(root), cwd=root)
    assert history.returncode == 0, history
    journaled = {
        r["address"]
        for entry in json.loads(history.stdout)
        for r in entry["changes"]
        if r["status"] == "succeeded"
    }
    assert made_by_crashed_run <= journaled, made_by_crashed_run - journaled
