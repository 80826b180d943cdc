"""Applies on the quickstart (stand-in trainer, slowed down): SIGTERM finishes the change in
flight and exits 0 with the lock released; two controllers on one state never apply at once."""

from __future__ import annotations

import itertools
import json
import sqlite3

from tests.controller.conftest import Repo, lock_rows, wait_for

SLOW = {"FAKE_EPOCH_SECONDS": "0.15"}  # 20 epochs: about 3 s of training
JOB = "TrainingJob/expense-model"


def applies(tree) -> list[tuple[str, str]]:
    """(started, finished) of every apply that finished, from the journal."""
    with sqlite3.connect(tree / ".pipeform" / "state.db") as db:
        rows = db.execute("SELECT data FROM journal").fetchall()
    import json

    found = {}
    for (data,) in rows:
        entry = json.loads(data)
        if entry["finished_at"] and entry["serial_after"] != entry["serial_before"]:
            found[entry["started_at"]] = entry["finished_at"]
    return sorted(found.items())


def test_sigterm_finishes_the_training_in_flight_and_exits_0(quickstart_repo: Repo, start) -> None:
    controller = start(quickstart_repo, "--auto-apply", "--parallelism", "1", env=SLOW)
    started = controller.wait_event("resource-start", timeout=60)
    while started["address"] != JOB:
        started = controller.wait_event(
            "resource-start", after=controller.events.index(started) + 1, timeout=60
        )
    assert controller.stop() == 0
    events = [e for e in controller.events if e.get("address") == JOB]
    assert events[-1]["event"] == "resource-finish" and events[-1]["status"] == "succeeded"
    stopped = [e for e in controller.events if e.get("status") == "skipped"]
    assert all("not started" in e["error"] for e in stopped)
    assert controller.events[-1]["event"] == "stopped"
    assert lock_rows(controller.tree) == 0


def test_two_controllers_on_one_state_never_apply_at_once(
    quickstart_repo: Repo, start, tmp_path
) -> None:
    home = tmp_path / "shared"
    first = start(quickstart_repo, "--auto-apply", home=home, env=SLOW)
    first.wait_event("apply", timeout=60)
    second = start(quickstart_repo, "--auto-apply", home=home, env=SLOW)
    waiting = second.wait_event("waiting", timeout=30)
    assert f"pid {first.process.pid}" in waiting["message"]
    first.wait_event("applied", timeout=90)
    wait_for(lambda: second.get("/readyz")[0] == 200, timeout=30, what="the second takes over")
    quickstart_repo.commit(
        "retrain",
        **{
            "training.yaml": (quickstart_repo.path / "training.yaml")
            .read_text()
            .replace("epochs: 20", "epochs: 10")
        },
    )
    wait_for(lambda: len(applies(home / "clone")) >= 2, timeout=60, what="the retrain applied")
    done = applies(home / "clone")
    for (_, finished), (next_start, _) in itertools.pairwise(done):
        assert finished <= next_start, done  # never two applies at once
    assert not [e for e in first.events + second.events if e.get("event") == "failed"]


def _finished(controller, address: str, after: int) -> dict:
    event = controller.wait_event("resource-finish", timeout=90, after=after)
    while event["address"] != address:
        event = controller.wait_event(
            "resource-finish", timeout=90, after=controller.events.index(event) + 1
        )
    return event


def test_new_data_committed_is_snapshotted_again_and_retrained(
    quickstart_repo: Repo, start
) -> None:
    controller = start(quickstart_repo, "--auto-apply")
    assert _finished(controller, JOB, 0)["status"] == "succeeded"
    controller.wait_event("applied", timeout=60)
    before = len(controller.events)
    # a new participant's five study years arrive in the CSV
    csv = quickstart_repo.path / "data" / "randhie.csv"
    last = csv.read_text().splitlines()[-1].split(",")
    rows = []
    for year in range(1, 6):
        last[4], last[5] = str(year), "999001"
        rows.append(",".join(last))
    with csv.open("a") as out:
        out.write("\n".join(rows) + "\n")
    quickstart_repo.commit("append participant 999001")
    snapshot = _finished(controller, "Dataset/rand-hie", before)
    assert (snapshot["action"], snapshot["status"]) == ("update", "succeeded")
    retrained = _finished(controller, JOB, before)
    assert retrained["status"] == "succeeded", retrained
    runs = list((controller.tree / ".pipeform" / "data" / "runs" / "expense-model").glob("*/"))
    assert len(runs) == 2, "the new data trained a second run"
    with sqlite3.connect(controller.tree / ".pipeform" / "state.db") as db:
        [(data,)] = db.execute("SELECT data FROM resources WHERE address = 'Dataset/rand-hie'")
    assert json.loads(data)["outputs"]["rows"] == 20195, "the snapshot holds the new rows"
    assert controller.stop() == 0
