"""The loop: converge on each commit, repair drift, one applier per state, crash recovery,
backoff, clear errors for bad arguments."""

from __future__ import annotations

import signal

from tests.conftest import run_cli
from tests.controller.conftest import WORKSPACE, Repo, lock_rows, quota, wait_for


def page_with(controller, text: str, timeout: float = 30) -> str:
    """The status page once it shows text."""

    def check() -> str:
        page = controller.get("/")[1]
        return page if text in page else ""

    return str(wait_for(check, timeout, what=f"{text!r} on the status page"))


def record(controller, name):  # the local provider's record of a Quota
    return controller.tree / ".pipeform" / "data" / "quotas" / f"{name}.json"


def test_the_controller_converges_after_each_commit(repo: Repo, start) -> None:
    first = repo.commit(
        "two quotas", **{"pipeform.yaml": WORKSPACE, "q.yaml": quota("a") + quota("b")}
    )
    controller = start(repo, "--auto-apply")
    wait_for(lambda: record(controller, "b").exists(), what="the first commit applied")
    wait_for(lambda: f"<code>{first[:7]}</code>" in controller.get("/")[1], what="synced page")
    assert controller.get("/readyz")[0] == 200

    second = repo.commit("drop b, add c", author="bob", **{"q.yaml": quota("a", 2) + quota("c")})
    wait_for(lambda: record(controller, "c").exists(), what="the second commit applied")
    wait_for(lambda: not record(controller, "b").exists(), what="b deleted")
    wait_for(lambda: '"gpus": 2' in record(controller, "a").read_text(), what="a updated")
    page = page_with(controller, second[:7])
    assert "Synced" in page and "drop b, add c" in page and "(bob)" in page
    metrics = controller.get("/metrics")[1]
    assert f'commit="{second}"' in metrics
    assert (
        'pipeform_controller_sync_status{pipeform_controller_sync_status="Synced"} 1.0' in metrics
    )
    assert "pipeform_controller_apply_duration_seconds_count 2.0" in metrics
    assert controller.stop() == 0
    assert lock_rows(controller.tree) == 0


def test_an_object_deleted_by_hand_is_recreated_within_an_interval(repo: Repo, start) -> None:
    repo.commit("one quota", **{"pipeform.yaml": WORKSPACE, "q.yaml": quota("a")})
    controller = start(repo, "--auto-apply")
    path = wait_for(lambda: record(controller, "a") if record(controller, "a").exists() else None)
    seen = len(controller.events)
    path.unlink()
    wait_for(path.exists, timeout=3, what="the deleted quota recreated")  # interval 0.5s
    applied = controller.wait_event("applied", after=seen)
    assert applied["failed"] == 0


def test_plan_only_reports_out_of_sync_and_changes_nothing(repo: Repo, start) -> None:
    repo.commit("one quota", **{"pipeform.yaml": WORKSPACE, "q.yaml": quota("a")})
    controller = start(repo, "--plan-only")
    page = page_with(controller, "OutOfSync")
    assert "create Quota/a" in page
    assert not record(controller, "a").exists()


def test_a_controller_killed_mid_apply_restarts_and_recovers_the_lock(
    repo: Repo, start, tmp_path
) -> None:
    repo.commit("two quotas", **{"pipeform.yaml": WORKSPACE, "q.yaml": quota("a") + quota("b")})
    home = tmp_path / "ctl"
    doomed = start(repo, "--auto-apply", home=home, env={"PIPEFORM_FAULT": "after-pending-write"})
    assert doomed.process.wait(30) == -signal.SIGKILL  # killed -9 with the lock held
    assert lock_rows(home / "clone") == 1
    controller = start(repo, "--auto-apply", home=home)
    note = controller.wait_event("lock")
    assert "broke a stale lock" in note["message"]
    wait_for(lambda: record(controller, "b").exists(), what="the apply finished after restart")
    wait_for(lambda: "Synced" in controller.get("/")[1], what="Synced")


def test_failures_back_off_and_show_on_the_page(repo: Repo, start) -> None:
    repo.commit("broken", **{"pipeform.yaml": WORKSPACE, "q.yaml": "kind: Quota\nmetadata: {}\n"})
    controller = start(repo, "--auto-apply")
    failures = [controller.wait_event("failed")]
    failures.append(controller.wait_event("failed", after=controller.events.index(failures[0]) + 1))
    assert failures[1]["failures"] == 2
    page = controller.get("/")[1]
    assert "Degraded" in page and "backing off" in page and "q.yaml" in page
    assert controller.get("/readyz")[0] == 503 or "Degraded" in page


def test_bad_arguments_are_one_clear_error(repo: Repo, tmp_path) -> None:
    repo.commit("empty", **{"pipeform.yaml": WORKSPACE})
    base = ["controller", "--repo", str(repo.path), "--state-dir", str(tmp_path / "c")]
    for extra, words in [
        (["--webhook-secret-env", "PIPEFORM_TEST_UNSET_SECRET"], "is not set"),
        (["--listen", "nowhere"], "give HOST:PORT"),
        (["--interval", "soon"], "soon"),
    ]:
        result = run_cli(*base, *extra, timeout=30)
        assert result.returncode in (1, 2), result.stderr
        assert words in result.stderr and "Traceback" not in result.stderr
