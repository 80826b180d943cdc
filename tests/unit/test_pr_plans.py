"""A pull request's plan runs without production secrets: a Secret whose source cannot be
read there keeps its stored value, plans no update and leaves the exit code alone, while
apply still refuses to change a Secret it cannot read."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.conftest import run_cli

TREE = """
apiVersion: pipeform/v1
kind: Secret
metadata: {name: api-token}
spec:
  from: {env: PR_PLAN_TOKEN}
---
apiVersion: pipeform/v1
kind: Quota
metadata: {name: team}
spec: {gpus: 1}
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PR_PLAN_TOKEN"}
    return {**env, **extra}


def _applied(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    root.mkdir()
    (root / "specs.yaml").write_text(TREE.lstrip())
    done = run_cli("apply", "--auto-approve", str(root), env=_env(PR_PLAN_TOKEN="v-1-secret"))
    assert done.returncode == 0, done.stderr
    return root


def test_a_plan_without_the_secrets_source_is_clean_and_says_what_it_kept(
    tmp_path: Path,
) -> None:
    root = _applied(tmp_path)
    text = run_cli("plan", "--detailed-exitcode", str(root), env=_env())
    assert text.returncode == 0, text.stdout + text.stderr
    assert "No changes" in text.stdout
    assert "Secret/api-token" in text.stdout and "stored value kept" in text.stdout
    assert "drift" not in text.stdout
    as_json = json.loads(run_cli("plan", "--json", str(root), env=_env()).stdout)
    assert as_json["notes"] == [
        {
            "address": "Secret/api-token",
            "note": "source not readable here: environment variable PR_PLAN_TOKEN is not set "
            "(set it or change spec.from); stored value kept",
        }
    ]
    assert as_json["resource_drift"] == [] and not as_json["has_changes"]
    markdown = run_cli("plan", "--format", "markdown", str(root), env=_env()).stdout
    assert "**Not checked here:**" in markdown and "stored value kept" in markdown
    assert "v-1-secret" not in text.stdout + markdown + json.dumps(as_json)


def test_a_rotated_source_still_plans_an_update_where_it_is_readable(tmp_path: Path) -> None:
    root = _applied(tmp_path)
    rotated = run_cli("plan", "--detailed-exitcode", str(root), env=_env(PR_PLAN_TOKEN="v-2"))
    assert rotated.returncode == 2
    assert "Secret/api-token" in rotated.stdout


def test_apply_refuses_to_change_a_secret_it_cannot_read(tmp_path: Path) -> None:
    root = _applied(tmp_path)
    (root / "specs.yaml").write_text(TREE.replace("PR_PLAN_TOKEN", "PR_PLAN_OTHER").lstrip())
    refused = run_cli("apply", "--auto-approve", str(root), env=_env())
    assert refused.returncode == 1
    assert "PR_PLAN_OTHER is not set" in refused.stderr
    assert "Nothing was changed." in refused.stderr + refused.stdout


def test_plan_without_the_lock_runs_beside_an_apply_and_a_stale_saved_plan_is_refused(
    tmp_path: Path,
) -> None:
    import uuid

    from reconciler.state.model import LockInfo, now
    from reconciler.state.sqlite import SqliteBackend

    root = _applied(tmp_path)
    env = _env(PR_PLAN_TOKEN="v-1-secret")
    backend = SqliteBackend(root / ".pipeform" / "state.db")
    apply_running = LockInfo(
        str(uuid.uuid4()), "ci@main", "runner-1", 4242, "pipeform apply", now()
    )
    backend.acquire_lock(apply_running)
    try:
        locked = run_cli("plan", str(root), env=env)
        assert locked.returncode == 1 and apply_running.id in locked.stderr
        out = tmp_path / "pr.plan"
        planned = run_cli("plan", "--lock=false", "--out", str(out), str(root), env=env)
        assert planned.returncode == 0, planned.stderr
        assert "No changes" in planned.stdout
    finally:
        backend.release_lock(apply_running.id)
        backend.close()
    # the apply it ran beside moved the state on: the saved plan is refused
    (root / "specs.yaml").write_text(TREE.replace("gpus: 1", "gpus: 2").lstrip())
    assert run_cli("apply", "--auto-approve", str(root), env=env).returncode == 0
    (root / "specs.yaml").write_text(TREE.lstrip())
    stale = run_cli("apply", str(out), str(root), env=env)
    assert stale.returncode == 1
    assert "saved plan is stale" in stale.stderr
