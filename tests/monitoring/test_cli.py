"""The real CLI (in this process, the provider registered) on a tree of Alerts and SLOs.

With the Workspace's default provider local, the engine sends Alert and SLO documents to
the prometheus provider: apply writes the rules file, a second plan shows no changes,
and a hand edit of the file shows as drift.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from providers import base
from providers.prometheus import PrometheusProvider
from reconciler.cli import main
from tests.conftest import run_cli

TREE = {
    "pipeform.yaml": """
        apiVersion: pipeform/v1
        kind: Workspace
        metadata: {name: shop}
        spec:
          providers:
            prometheus: {rulesDir: .pipeform/alerting}
    """,
    "monitoring.yaml": """
        apiVersion: pipeform/v1
        kind: Alert
        metadata: {name: api-errors}
        spec:
          expr: sum(rate(http_requests_total{code=~"5.."}[5m])) > 1
          for: 5m
          severity: critical
        ---
        apiVersion: pipeform/v1
        kind: SLO
        metadata: {name: api-availability}
        spec:
          sli:
            good: sum(rate(http_requests_total{code!~"5.."}[{{window}}]))
            total: sum(rate(http_requests_total[{{window}}]))
          objective: 99.5
          window: 30d
    """,
}


@pytest.fixture(autouse=True)
def registered() -> Iterator[None]:
    known = base.load("prometheus")
    base.register(PrometheusProvider)
    yield
    if known is None or known is not PrometheusProvider:
        base.unregister("prometheus")


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    out = capsys.readouterr()
    return int(exited.value.code or 0), out.out + out.err


def test_apply_then_plan_shows_no_changes_and_a_hand_edit_shows_drift(
    write_tree: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_tree(**TREE)
    code, out = _run(capsys, "apply", "--auto-approve", str(root))
    assert code == 0, out
    rules_file = root / ".pipeform/alerting/pipeform-shop.rules.yml"
    text = rules_file.read_text()
    assert "name: Alert/api-errors" in text and "name: SLO/api-availability" in text
    written = rules_file.stat().st_mtime_ns

    code, out = _run(capsys, "plan", "--detailed-exitcode", str(root))
    assert code == 0, out
    code, out = _run(capsys, "apply", "--auto-approve", str(root))
    assert code == 0, out
    assert rules_file.stat().st_mtime_ns == written  # a no-op apply rewrote nothing

    rules_file.write_text(text.replace("> 1\n", "> 100\n"))
    code, out = _run(capsys, "plan", "--detailed-exitcode", str(root))
    assert code == 2, out
    assert "~ Alert/api-errors" in out and "changed outside pipeform" in out
    assert "rules.ApiErrors.expr" in out and "> 100" in out
    assert "SLO/api-availability" not in out
    code, out = _run(capsys, "apply", "--auto-approve", str(root))
    assert code == 0, out
    assert rules_file.read_text() == text


def _without_promtool(tmp_path: Path, **env: str) -> dict[str, str]:
    """The environment with a PATH that holds git (for the lineage) and no promtool."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    git = shutil.which("git")
    if git is not None:
        (bin_dir / "git").symlink_to(git)
    return {**os.environ, "PATH": str(bin_dir), "NO_COLOR": "1", **env}


def test_without_promtool_a_workspace_that_requires_it_fails_the_apply(
    write_tree: Callable[..., Path], tmp_path: Path
) -> None:
    workspace = TREE["pipeform.yaml"].replace(
        "{rulesDir: .pipeform/alerting}", "{rulesDir: .pipeform/alerting, requirePromtool: true}"
    )
    root = write_tree(**{**TREE, "pipeform.yaml": workspace})
    done = run_cli("apply", "--auto-approve", str(root), env=_without_promtool(tmp_path))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "promtool is not installed" in done.stdout
    assert "requirePromtool: true" in done.stdout and "apt-get install prometheus" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    assert not (root / ".pipeform/alerting/pipeform-shop.rules.yml").exists()


def test_without_promtool_the_apply_warns_once_and_writes_the_rules_even_in_ci(
    write_tree: Callable[..., Path], tmp_path: Path
) -> None:
    root = write_tree(**TREE)  # requirePromtool left at its default; CI must not change it
    done = run_cli("apply", "--auto-approve", str(root), env=_without_promtool(tmp_path, CI="true"))
    assert done.returncode == 0, done.stdout + done.stderr
    warnings = [line for line in done.stderr.splitlines() if "promtool" in line]
    assert len(warnings) == 1, done.stderr
    assert warnings[0].startswith("warning: promtool is not installed")
    assert "requirePromtool: true" in warnings[0]
    assert (
        "name: Alert/api-errors"
        in (root / ".pipeform/alerting/pipeform-shop.rules.yml").read_text()
    )
