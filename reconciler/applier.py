"""Carry out a Plan: graph order, bounded parallelism, state persisted after every resource.

A failure stops the scheduling of what depends on it while independent branches go on;
retryable provider errors are retried with backoff; every outcome is journaled. A crash
at any point is recovered by running apply again: providers adopt what they created but
state did not record yet, and deleting what is already gone succeeds.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from providers.base import (
    ApplyRequest,
    ApplyResponse,
    DeleteRequest,
    PlanRequest,
    ProviderError,
    ResourceContext,
    RetryableError,
)
from reconciler import faults
from reconciler.plan import Action, Plan, ResourceChange
from reconciler.planner import Providers, canonical_hash
from reconciler.state.backend import StateBackend
from reconciler.state.model import ResourceState, State, Status, now

MAX_ATTEMPTS = 4
MAX_BACKOFF = 30.0


@dataclass(frozen=True)
class Outcome:
    address: str
    action: Action
    status: str  # succeeded | failed | skipped
    error: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "address": self.address,
            "action": self.action.value,
            "status": self.status,
            "error": self.error,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class ApplyReport:
    outcomes: list[Outcome] = field(default_factory=list)
    serial: int = 0

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def failed(self) -> bool:
        return self.count("failed") > 0


Listener = Callable[[str, ResourceChange, Outcome | None], None]


class Applier:
    def __init__(
        self,
        backend: StateBackend,
        state: State,
        providers: Providers,
        root: object,
        parallelism: int = 10,
        listener: Listener | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.backend = backend
        self.state = state
        self.resources = dict(state.resources)
        self.serial = state.serial
        self.providers = providers
        self.root = root
        self.parallelism = max(1, parallelism)
        self.listener = listener or (lambda event, change, outcome: None)
        self.sleep = sleep
        self._write_lock = threading.Lock()

    # -- state -------------------------------------------------------------------------
    def _put(self, resource: ResourceState) -> None:
        with self._write_lock:
            self.serial = self.backend.put(self.serial, resource)
            self.resources[resource.address] = resource
        faults.point("after-state-write", resource.address)

    def _remove(self, address: str) -> None:
        with self._write_lock:
            if address in self.resources:
                self.serial = self.backend.remove(self.serial, address)
                del self.resources[address]
        faults.point("after-state-write", address)

    # -- provider calls ----------------------------------------------------------------
    def _ctx(self, change: ResourceChange) -> ResourceContext:
        from pathlib import Path

        kind, name = change.address.split("/", 1)
        return ResourceContext(change.address, kind, name, self.state.lineage, Path(str(self.root)))

    def _retrying(self, call: Callable[[], object]) -> object:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                return call()
            except RetryableError as exc:
                if attempt == MAX_ATTEMPTS:
                    raise
                self.sleep(min(MAX_BACKOFF, exc.delay * 2 ** (attempt - 1)))
        raise AssertionError("unreachable")

    def _upstream(self, change: ResourceChange) -> dict[str, dict[str, object]]:
        with self._write_lock:
            return {
                d: dict(self.resources[d].outputs)
                for d in change.dependencies
                if d in self.resources
            }

    def _create_or_update(self, change: ResourceChange, create: bool) -> None:
        provider = self.providers.get(change.provider, change.address)
        prior = self.resources.get(change.address)
        assert change.after is not None
        upstream = self._upstream(change)
        request = ApplyRequest(
            self._ctx(change),
            change.after,
            prior.spec if prior else None,
            prior.outputs if prior else {},
            prior.external_id if prior else None,
            upstream,
        )
        # The plan may only have known "(known after apply)"; now the inputs are real.
        fingerprint = provider.plan(
            PlanRequest(
                request.ctx, request.prior_spec, change.after, request.prior_outputs, upstream
            )
        ).inputs_fingerprint
        faults.point("before-provider-call", change.address)
        call = provider.create if create else provider.update
        try:
            response = self._retrying(lambda: call(request))
        except ProviderError:
            if prior is not None and not create:
                self._put(replace(prior, status=Status.FAILED, updated_at=now()))
            raise
        assert isinstance(response, ApplyResponse)
        faults.point("after-provider-call", change.address)
        self._put(
            ResourceState(
                address=change.address,
                kind=change.kind,
                provider=change.provider,
                spec=change.after,
                spec_hash=canonical_hash(change.after),
                inputs_fingerprint=fingerprint,
                outputs=response.outputs,
                observed=response.observed,
                external_id=response.external_id,
                dependencies=list(change.dependencies),
                status=Status.READY,
                prevent_destroy=change.prevent_destroy,
                created_at=prior.created_at if prior and not create else now(),
                updated_at=now(),
            )
        )

    def _delete(self, change: ResourceChange) -> None:
        prior = self.resources.get(change.address)
        if prior is None:
            return
        provider = self.providers.get(prior.provider, change.address)
        faults.point("before-provider-call", change.address)
        self._retrying(
            lambda: provider.delete(
                DeleteRequest(self._ctx(change), prior.spec, prior.outputs, prior.external_id)
            )
        )
        faults.point("after-provider-call", change.address)
        self._remove(change.address)

    def _run(self, change: ResourceChange) -> Outcome:
        started = time.monotonic()
        self.listener("start", change, None)
        try:
            if change.action is Action.CREATE:
                self._create_or_update(change, create=True)
            elif change.action is Action.UPDATE:
                self._create_or_update(change, create=False)
            elif change.action is Action.DELETE:
                self._delete(change)
            elif change.action.is_replace:
                if change.action is Action.DELETE_THEN_CREATE:
                    self._delete(change)
                    self._create_or_update(change, create=True)
                else:
                    self._create_or_update(change, create=True)
            elif change.action is Action.NOOP:
                prior = self.resources.get(change.address)
                if prior is not None and prior.prevent_destroy != change.prevent_destroy:
                    self._put(replace(prior, prevent_destroy=change.prevent_destroy))
            outcome = Outcome(
                change.address, change.action, "succeeded", seconds=time.monotonic() - started
            )
        except ProviderError as exc:
            outcome = Outcome(
                change.address, change.action, "failed", str(exc), time.monotonic() - started
            )
        except Exception as exc:  # a provider bug must not abandon the other branches
            outcome = Outcome(
                change.address,
                change.action,
                "failed",
                f"provider {change.provider} crashed: {type(exc).__name__}: {exc}",
                time.monotonic() - started,
            )
        self.listener("finish", change, outcome)
        faults.point("between-resources", change.address)
        return outcome

    # -- scheduling --------------------------------------------------------------------
    def apply(self, plan: Plan) -> ApplyReport:
        report = ApplyReport()
        changes = {c.address: c for c in plan.changes}
        deleting = {a for a, c in changes.items() if c.action is Action.DELETE}
        # what must finish before each change may start
        waits: dict[str, set[str]] = {a: set() for a in changes}
        for address, change in changes.items():
            if address in deleting:  # dependents go first when deleting
                waits[address] |= {
                    d
                    for d, other in changes.items()
                    if address in other.dependencies and d in deleting
                }
            else:
                waits[address] |= {
                    d for d in change.dependencies if d in changes and d not in deleting
                }
        failed: set[str] = set()
        done: set[str] = set()
        pending = dict(waits)
        with cf.ThreadPoolExecutor(max_workers=self.parallelism) as pool:
            running: dict[cf.Future[Outcome], str] = {}
            while pending or running:
                for address in [a for a, w in pending.items() if w <= done]:
                    del pending[address]
                    blocked = waits[address] & failed
                    if blocked:
                        outcome = Outcome(
                            address,
                            changes[address].action,
                            "skipped",
                            f"skipped because {', '.join(sorted(blocked))} failed",
                        )
                        self.listener("skip", changes[address], outcome)
                        report.outcomes.append(outcome)
                        failed.add(address)
                        done.add(address)
                        continue
                    running[pool.submit(self._run, changes[address])] = address
                if not running:
                    if pending:  # only unreachable work left (cannot happen with an acyclic graph)
                        raise RuntimeError(f"apply cannot schedule {sorted(pending)}")
                    break
                finished, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                for future in finished:
                    address = running.pop(future)
                    outcome = future.result()
                    if outcome.action is not Action.NOOP:
                        report.outcomes.append(outcome)
                    if outcome.status == "failed":
                        failed.add(address)
                    done.add(address)
        report.serial = self.serial
        return report
