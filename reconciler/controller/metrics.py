"""The controller's Prometheus metrics, on a registry of its own (served at /metrics):
sync status, the last synced commit (an info metric), apply durations, drift count,
reconciles by result and consecutive failures. docs/reference/metrics.md lists them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram, Info

if TYPE_CHECKING:
    from reconciler.controller.status import Status

STATES = ["Unknown", "Synced", "OutOfSync", "Progressing", "Degraded"]
BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, float("inf"))


class ControllerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.sync = Enum(
            "pipeform_controller_sync_status", "The sync status.", states=STATES, registry=r
        )
        self.commit = Info(
            "pipeform_controller_last_synced_commit",
            "The last commit the live state matched.",
            registry=r,
        )
        self.applies = Histogram(
            "pipeform_controller_apply_duration_seconds",
            "Time each apply took.",
            buckets=BUCKETS,
            registry=r,
        )
        self.drift = Gauge(
            "pipeform_controller_drift_resources",
            "Resources whose live object differed from state at the last refresh.",
            registry=r,
        )
        self.cycles = Counter(
            "pipeform_controller_reconciles", "Reconcile cycles by result.", ["result"], registry=r
        )
        self.failures = Gauge(
            "pipeform_controller_consecutive_failures",
            "Failed cycles in a row (the backoff grows with it).",
            registry=r,
        )

    def observe(self, status: Status) -> None:
        self.sync.state(status.sync.value)
        self.failures.set(status.failures)
        if status.synced is not None:
            self.commit.info(
                {
                    "commit": status.synced.sha,
                    "branch": status.branch,
                    "author": status.synced.author,
                }
            )

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
