"""The local executor reads both preemption exits as preempted: 143 (trainer config v4)
and 5 (versions 1 to 3)."""

from __future__ import annotations

import pytest

from providers.local import executor
from providers.local import training_runs as runs


@pytest.mark.parametrize("code", [143, 5])
def test_a_preemption_exit_is_preempted(code: int) -> None:
    exit_ = executor.Exit(code, None, timed_out=False, interrupted=False, seconds=1.0)
    assert runs.outcome(exit_, None) == "preempted"
    assert runs.attempt_status("preempted") == "preempted"


def test_a_crash_is_still_a_retry() -> None:
    exit_ = executor.Exit(1, None, timed_out=False, interrupted=False, seconds=1.0)
    assert runs.outcome(exit_, None) == "retry"
