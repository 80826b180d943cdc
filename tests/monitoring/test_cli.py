"""The real CLI (in this process, the provider registered) on a tree of Alerts and SLOs.

With the Workspace's default provider local, the engine sends Alert and SLO documents to
the prometheus provider: apply writes the rules file, a second plan shows no changes,
and a hand edit of the file shows as drift.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from providers import base
from providers.prometheus import PrometheusProvider
from reconciler.cli import main

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
