"""An apply that would fail on a Secret it cannot read is refused before anything changes.

Providers are asked (``Provider.check``) about every create and update before the first
one starts; the local provider's Secret answers whether its source can be read now.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from providers.base import CheckRequest, ResourceContext
from providers.local import LocalProvider
from tests.conftest import run_cli

ENV_VAR = "PIPEFORM_TEST_PREFLIGHT_SECRET"
WORKSPACE = """\
apiVersion: pipeform/v1
kind: Workspace
metadata: {name: ws}
spec:
  defaults: {provider: local}
"""
RESOURCES = f"""\
apiVersion: pipeform/v1
kind: Quota
metadata: {{name: team-a}}
spec: {{gpus: 2, concurrentJobs: 1}}
---
apiVersion: pipeform/v1
kind: Secret
metadata: {{name: api-token}}
spec:
  from: {{env: {ENV_VAR}}}
"""
#: where spec.from.env of Secret/api-token is written in RESOURCES
SECRET_AT = "resources.yaml:10:15"
UNSET = (
    f"{SECRET_AT}: Secret/api-token: environment variable {ENV_VAR} is not set "
    "(set it or change spec.from)"
)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "pipeform.yaml").write_text(WORKSPACE)
    (tmp_path / "resources.yaml").write_text(RESOURCES)
    return tmp_path


def environment(secret: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    env["NO_COLOR"] = "1"
    if secret is not None:
        env[ENV_VAR] = secret
    return env


def managed(tree: Path) -> list[str]:
    listed = run_cli("state", "list", "--json", cwd=tree, env=environment(None))
    assert listed.returncode == 0, listed.stderr
    return [r["address"] for r in json.loads(listed.stdout)["resources"]]


def test_an_unset_environment_variable_refuses_the_apply_before_any_change(tree: Path) -> None:
    applied = run_cli("apply", "--auto-approve", cwd=tree, env=environment(None))
    assert applied.returncode == 1, applied.stdout + applied.stderr
    assert applied.stderr.splitlines() == [UNSET, "Nothing was changed."]
    assert "will be created" not in applied.stdout  # refused before the plan is shown
    assert not (tree / ".pipeform/data/quotas/team-a.json").exists()
    assert managed(tree) == []


def test_a_saved_plan_is_refused_the_same_way(tree: Path) -> None:
    planned = run_cli("plan", "--out", "plan.out", cwd=tree, env=environment(None))
    assert planned.returncode == 0, planned.stderr  # plan itself is left as it was
    applied = run_cli("apply", "plan.out", cwd=tree, env=environment(None))
    assert applied.returncode == 1, applied.stdout + applied.stderr
    assert applied.stderr.splitlines() == [UNSET, "Nothing was changed."]
    assert managed(tree) == []


def test_a_source_gone_since_the_last_apply_holds_back_the_other_changes(tree: Path) -> None:
    assert run_cli("apply", "--auto-approve", cwd=tree, env=environment("v1")).returncode == 0
    resources = tree / "resources.yaml"
    resources.write_text(RESOURCES.replace("gpus: 2", "gpus: 3"))
    applied = run_cli("apply", "--auto-approve", cwd=tree, env=environment(None))
    assert applied.returncode == 1, applied.stdout + applied.stderr
    assert UNSET in applied.stderr.splitlines()
    quota = json.loads((tree / ".pipeform/data/quotas/team-a.json").read_text())
    assert quota["limits"]["gpus"] == 2  # the Quota's change waits for the Secret's source


def test_every_unreadable_source_is_named_at_once(tree: Path) -> None:
    (tree / "more.yaml").write_text(
        "apiVersion: pipeform/v1\nkind: Secret\nmetadata: {name: db-password}\n"
        "spec:\n  from: {file: secrets/db.txt}\n"
    )
    applied = run_cli("apply", "--auto-approve", cwd=tree, env=environment(None))
    assert applied.returncode == 1
    assert applied.stderr.splitlines() == [
        "more.yaml:5:16: Secret/db-password: spec.from.file 'secrets/db.txt' does not exist "
        "(create it, or change spec.from)",
        UNSET,
        "2 errors in 2 files.",
        "Nothing was changed.",
    ]


def test_the_local_provider_says_which_source_field_cannot_be_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = LocalProvider({}, tmp_path)
    ctx = ResourceContext.of("Secret/token", "", tmp_path)

    def check(source: dict[str, str]) -> list[tuple[str | None, str]]:
        request = CheckRequest(ctx, {"metadata": {}, "spec": {"from": source}}, None)
        return [(d.path, d.message) for d in provider.check(request)]

    monkeypatch.delenv(ENV_VAR, raising=False)
    assert check({"env": ENV_VAR}) == [
        ("spec.from.env", f"environment variable {ENV_VAR} is not set (set it or change spec.from)")
    ]
    monkeypatch.setenv(ENV_VAR, "value")
    assert check({"env": ENV_VAR}) == []
    (tmp_path / "token.txt").write_text("value")
    assert check({"file": "token.txt"}) == []
    assert not (tmp_path / ".pipeform").exists()  # asking writes nothing
