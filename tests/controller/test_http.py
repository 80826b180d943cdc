"""The webhook (HMAC-SHA256 signed pushes reconcile at once; others are refused with 401
and change nothing), /healthz, /readyz, /metrics, and the status page in headless chromium."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.controller.conftest import WORKSPACE, Repo, quota, wait_for

SECRET = "hook-secret-for-tests"
PUSH = json.dumps({"ref": "refs/heads/main", "after": "0" * 40}).encode()


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "X-GitHub-Event": "push"}


def test_a_signed_push_reconciles_at_once_and_bad_ones_are_refused(repo: Repo, start) -> None:
    repo.commit("workspace", **{"pipeform.yaml": WORKSPACE, "q.yaml": quota("a")})
    controller = start(
        repo,
        "--auto-apply",
        "--interval",
        "1h",
        "--webhook-secret-env",
        "HOOK",
        env={"HOOK": SECRET},
    )
    wait_for(lambda: controller.get("/readyz")[0] == 200, what="first reconcile")
    repo.commit("a second quota", **{"q.yaml": quota("a") + quota("b")})
    made = controller.tree / ".pipeform" / "data" / "quotas" / "b.json"
    for headers in [
        {"X-GitHub-Event": "push"},  # unsigned
        signed(PUSH, "wrong-secret"),
        {**signed(b"another body"), "X-GitHub-Event": "push"},
    ]:
        assert controller.post("/webhook", PUSH, headers) == 401
    time.sleep(1.5)
    assert not made.exists(), "a refused webhook must change nothing"
    assert controller.post("/webhook", PUSH, signed(PUSH)) == 202
    wait_for(made.exists, timeout=5, what="the push applied at once")
    refused = [e for e in controller.events if e["event"] == "webhook-refused"]
    assert len(refused) == 3 and SECRET not in "".join(controller.raw)


def test_health_and_metrics(repo: Repo, start) -> None:
    repo.commit("one quota", **{"pipeform.yaml": WORKSPACE, "q.yaml": quota("a")})
    controller = start(repo, "--plan-only")
    assert controller.get("/healthz") == (200, "ok\n")
    wait_for(lambda: controller.get("/readyz")[0] == 200, what="ready")
    metrics = controller.get("/metrics")[1]
    assert (
        'pipeform_controller_sync_status{pipeform_controller_sync_status="OutOfSync"} 1.0'
        in metrics
    )
    assert "pipeform_controller_drift_resources 0.0" in metrics


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed (Debian: apt-get install chromium)")
        pytest.skip("chromium is not installed")
    return found


def _browser(url: str, *args: str) -> str:
    command = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--user-data-dir=" + str(Path(args[-1]).parent if args else "/tmp"),
        *args[:-1],
    ]
    done = subprocess.run([*command, url], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_status_page_in_a_browser(repo: Repo, start, tmp_path: Path) -> None:
    script = "<script>document.title='pwned'</script>"
    docs = quota("a", note=script) + quota("b")
    repo.commit(
        "quotas <b>bold</b>", author="eve <i>", **{"pipeform.yaml": WORKSPACE, "q.yaml": docs}
    )
    controller = start(repo, "--plan-only")
    profile = tmp_path / "profile"
    profile.mkdir()

    def dom() -> str:
        return _browser(controller.url + "/", "--dump-dom", str(profile / "x"))

    page = wait_for(lambda: (d := dom()) and ("OutOfSync" in d) and d, timeout=30, what="page")
    assert "create Quota/a" in page and "Quota/b" in page
    assert "&lt;script&gt;document.title='pwned'&lt;/script&gt;" in page  # shown as text
    assert "<script>" not in page and "pwned</title>" not in page
    assert "quotas &lt;b&gt;bold&lt;/b&gt;" in page
    # apply by hand, then delete one object by hand: the page shows Synced, then drift
    from tests.conftest import run_cli

    tree = controller.tree  # the controller's own plans hold the lock now and then: wait
    applied = run_cli("apply", "--auto-approve", "--lock-timeout", "60s", str(tree), timeout=90)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    wait_for(lambda: "Synced" in dom(), what="Synced after the apply")
    (tree / ".pipeform" / "data" / "quotas" / "b.json").unlink()
    page = wait_for(lambda: (d := dom()) and "deleted outside pipeform" in d and d, what="drift")
    assert "OutOfSync" in page and "Quota/b" in page
    shot = tmp_path / "controller-status.png"
    _browser(
        controller.url + "/", f"--screenshot={shot}", "--window-size=1280,900", str(profile / "x")
    )
    assert shot.stat().st_size > 5000
    print(f"status page screenshot: {shot}")
    artifacts = os.environ.get("PIPEFORM_TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(artifacts) / shot.name)
