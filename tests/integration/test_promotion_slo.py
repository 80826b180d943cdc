"""A promotion held while an SLO burns, against a real Prometheus: the quickstart with
``register.promoteWhen.sloNotBurning`` registers a new version while the SLO's fast-burn
alert fires, leaves the alias, says why in apply and plan, and a later plan and apply move
the alias once the alert resolved."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.prometheus_stack import Stack, wait_until
from tests.integration.test_alerting import push_run_counts
from tests.promotion.test_approval import champion, set_epochs, set_register
from tests.training import quickstart as qs

pytestmark = pytest.mark.slow  # a real Prometheus and three applies: about 30s

SLO = "expense-model-success"
ALERT_WAIT = 30.0


def _firing(stack: Stack) -> list[dict[str, Any]]:
    return [
        a
        for a in stack.prometheus_alerts()
        if a["labels"].get("slo") == SLO and a.get("state") == "firing"
    ]


def _point_at(root: Path, stack: Stack) -> None:
    path = root / "pipeform.yaml"
    text = path.read_text()
    old = "      rulesDir: .pipeform/rules"
    assert old in text
    path.write_text(
        text.replace(old, f"      rulesDir: {stack.rules_dir}\n      url: {stack.prometheus}")
    )


def test_a_promotion_waits_while_the_slo_burns_and_goes_ahead_when_it_stops(
    prometheus_stack: Stack, tmp_path: Path
) -> None:
    root = qs.copy(tmp_path)
    _point_at(root, prometheus_stack)
    set_register(root, f", promoteWhen: {{sloNotBurning: {SLO}}}")
    push_run_counts(prometheus_stack, "expense-model", 0, 0)  # a baseline to increase from
    assert wait_until(
        lambda: prometheus_stack.query(
            'pipeform_training_runs_total{pipeform_job="expense-model"}'
        ),
        10,
    )
    first = qs.apply(root)  # the SLO's rules are loaded; nothing burns yet: v1 promoted
    assert "registered expense-model v1, alias champion -> v1" in first.stdout
    assert champion(root) == 1

    time.sleep(1.5)  # one more scrape of the baseline
    push_run_counts(prometheus_stack, "expense-model", 9, 1)  # 90% failed: a fast burn
    assert wait_until(lambda: _firing(prometheus_stack), ALERT_WAIT), "the SLO never burned"

    set_epochs(root, 3)
    held = qs.apply(root)
    assert re.search(
        r"registered expense-model v2; alias champion not moved: held: SLO/expense-model-success "
        r"is burning its error budget \(ExpenseModelSuccessFastBurn[^)]* firing\)",
        held.stdout,
    ), held.stdout
    assert champion(root) == 1
    plan = qs.pipeform(root, "plan")
    assert plan.returncode == 0, plan.stderr
    assert "expense-model v2 -> alias champion: held: SLO/expense-model-success is burning" in (
        plan.stdout
    )
    assert "No changes." in plan.stdout

    push_run_counts(prometheus_stack, "expense-model", 9, 100_000)  # the failures drown
    assert wait_until(lambda: not _firing(prometheus_stack), ALERT_WAIT), "it kept burning"
    released = qs.pipeform(root, "plan")
    assert released.returncode == 0, released.stderr
    assert (
        "(promote expense-model v2 to alias champion: SLO/expense-model-success is no longer "
        "burning)" in released.stdout
    ), released.stdout
    assert "held:" not in released.stdout
    after = qs.apply(root)
    assert "registered expense-model v2, alias champion -> v2" in after.stdout
    assert champion(root) == 2
    assert "No changes." in qs.pipeform(root, "plan").stdout
