"""The controller's loop: each cycle pulls the branch, plans with a refresh, and (with
auto-apply) applies when the plan has changes: a new commit, drift (an object deleted
or edited by hand) or new data upstream. One instance per state: the cycle runs under
the state lock, taken without waiting; a controller that finds it held waits for the
next cycle and says who holds it. Failures back off exponentially, up to a cap."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler import engine
from reconciler.controller import logs
from reconciler.controller.git import Clone, Commit, redact_url
from reconciler.controller.metrics import ControllerMetrics
from reconciler.controller.status import Status, Sync, snapshot
from reconciler.diagnostics import PipeformError
from reconciler.state.backend import LockHeld

if TYPE_CHECKING:
    from reconciler.plan.model import Plan


@dataclass(frozen=True)
class Settings:
    repo: str
    branch: str = "main"
    path: str = "."  # the spec tree inside the repository
    interval: float = 60.0
    auto_apply: bool = True
    home: Path = Path(".pipeform-controller")  # the working clone lives here
    max_backoff: float = 600.0
    parallelism: int = 10


class Controller:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.clone = Clone(settings.repo, settings.branch, settings.home / "clone")
        self.stop = threading.Event()  # SIGTERM: finish what runs, then leave
        self.wake = threading.Event()  # the webhook: reconcile now
        self.metrics = ControllerMetrics()
        self._status_lock = threading.Lock()
        self.status = Status(
            mode="auto-apply" if settings.auto_apply else "plan-only",
            repo=redact_url(settings.repo),
            branch=settings.branch,
        )
        self.metrics.observe(self.status)

    @property
    def tree(self) -> Path:
        return self.clone.path / self.settings.path

    def _set(self, **changes: Any) -> Status:
        with self._status_lock:
            self.status = replace(self.status, **changes)
            status = self.status
        self.metrics.observe(status)
        return status

    # -- one cycle ---------------------------------------------------------------------
    def cycle(self) -> Sync:
        """One reconcile; the sync status it leaves. Raises on failure (the loop backs off)."""
        if not (self.clone.path / ".git").exists():
            self.clone.sync()  # the first checkout: the state's location is in the tree
        if not self.tree.is_dir():
            raise PipeformError(f"--path {self.settings.path}: no such directory in the repository")
        backend = engine.open_state(self.tree, "create")
        try:
            with engine.locked(backend, 0.0, "pipeform controller") as notes:
                for note in notes:
                    logs.event("lock", message=note)
                return self._locked_cycle()
        except LockHeld as exc:
            holder = exc.holder.describe() if exc.holder else "another process"
            self._set(waiting=holder)
            logs.event("waiting", message=f"state locked: {holder}")
            return self.status.sync
        finally:
            backend.close()

    def _locked_cycle(self) -> Sync:
        head = self.clone.sync()
        self._set(head=head, waiting=None)
        session = engine.open_session([self.tree])
        try:
            from reconciler.plan.planner import PlanOptions

            options = PlanOptions(
                mode="normal", refresh=True, parallelism=self.settings.parallelism
            )
            plan = engine.plan(session, options)
            self.metrics.drift.set(len(plan.drift))
            if not plan.has_changes:
                sync = Sync.SYNCED
            elif not self.settings.auto_apply:
                sync = Sync.OUT_OF_SYNC
            else:
                sync = self._apply(session, plan, head)
                if sync is Sync.SYNCED:
                    plan = engine.plan(session, replace(options, refresh=False))
            synced = head if sync is Sync.SYNCED else self.status.synced
            self._set(sync=sync, synced=synced, snapshot=snapshot(session, plan), ready=True)
            if sync is Sync.DEGRADED:
                raise PipeformError("the apply failed; see the status page")
            return sync
        finally:
            session.backend.close()

    def _apply(self, session: engine.Session, plan: Plan, head: Commit) -> Sync:
        from reconciler.plan import policy

        engine.preflight(session, plan)
        policy.enforce(plan)
        self._set(sync=Sync.PROGRESSING, snapshot=snapshot(session, plan))
        logs.event("apply", message=plan.summary(), commit=head.sha, changes=len(plan.actionable))
        started = time.monotonic()
        report = engine.apply(
            session,
            plan,
            "pipeform controller",
            self.settings.parallelism,
            _log_resource,
            self.stop,
        )
        seconds = time.monotonic() - started
        self.metrics.applies.observe(seconds)
        failed = report.count("failed")
        stopped = report.count("skipped") and self.stop.is_set()
        logs.event(
            "applied",
            commit=head.sha,
            seconds=round(seconds, 3),
            failed=failed,
            serial=report.serial,
            stopped=bool(stopped),
        )
        if failed:
            return Sync.DEGRADED
        return Sync.OUT_OF_SYNC if stopped else Sync.SYNCED

    # -- the loop ----------------------------------------------------------------------
    def delay(self) -> float:
        """Seconds to the next cycle: the interval, or after failures an exponential
        backoff (interval x 2^failures) capped at max_backoff."""
        failures = self.status.failures
        if failures == 0:
            return self.settings.interval
        cap = max(self.settings.max_backoff, self.settings.interval)
        return float(min(self.settings.interval * 2 ** min(failures, 30), cap))

    def run_once(self) -> None:
        """A cycle with its failures recorded (never raises): the loop's step."""
        try:
            self.cycle()
        except Exception as exc:  # any failure backs off; the loop must go on
            message = str(exc) if isinstance(exc, PipeformError) else f"internal error: {exc!r}"
            failures = self.status.failures + 1
            sync = Sync.DEGRADED
            self._set(sync=sync, failures=failures, error=message)
            self.metrics.cycles.labels("failed").inc()
            logs.event("failed", level="error", message=message, failures=failures)
        else:
            if self.status.waiting is None:
                self._set(failures=0, error=None)
            self.metrics.cycles.labels("ok" if self.status.waiting is None else "waiting").inc()
        delay = self.delay()
        self._set(last_reconcile=time.time(), next_at=time.time() + delay)

    def run(self) -> None:
        """Reconcile every interval, or at once when woken, until stopped."""
        logs.event(
            "started",
            repo=self.status.repo,
            branch=self.settings.branch,
            mode=self.status.mode,
            interval=self.settings.interval,
        )
        while not self.stop.is_set():
            self.run_once()
            if self.stop.is_set():
                break
            self.wake.wait(max(0.0, (self.status.next_at or 0) - time.time()))
            self.wake.clear()
        logs.event("stopped", message="state persisted and lock released")


def _log_resource(event: str, change: Any, outcome: Any) -> None:
    fields: dict[str, Any] = {"address": change.address, "action": change.action.value}
    if outcome is not None:
        fields["status"] = outcome.status
        if outcome.error:
            fields["error"] = outcome.error
    logs.event(f"resource-{event}", **fields)
