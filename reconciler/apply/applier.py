"""Carry out a Plan: graph order, bounded parallelism, state persisted after every resource.

A failure stops the scheduling of what depends on it while independent branches go on;
retryable provider errors are retried with backoff; every outcome is journaled. A crash
at any point is recovered by running apply again: providers adopt what they created but
state did not record yet, and deleting what is already gone succeeds.
"""

from __future__ import annotations

import concurrent.futures as cf
import errno
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

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
from reconciler.plan import cost
from reconciler.plan.model import Action, Plan, ResourceChange
from reconciler.plan.planner import Providers, canonical_hash
from reconciler.state.backend import StateBackend, StateError
from reconciler.state.model import JournalEntry, ResourceState, State, Status, now

MAX_ATTEMPTS = 4
MAX_BACKOFF = 30.0


@dataclass(frozen=True)
class Outcome:
    address: str
    action: Action
    status: str  # succeeded | failed | skipped
    error: str | None = None
    seconds: float = 0.0
    note: str | None = None  # the provider's word on a success (a promotion held back)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "address": self.address,
            "action": self.action.value,
            "status": self.status,
            "error": self.error,
            "seconds": round(self.seconds, 3),
        }
        if self.note:
            out["detail"] = self.note
        return out


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


@dataclass(frozen=True)
class ApplyOptions:
    """How the providers are asked to make each change (``providers.base.ApplyRequest``)."""

    force_conflicts: bool = False  # apply --force-conflicts: take fields other managers hold
    wait: bool = True  # apply --no-wait: record started jobs as running, do not wait


@dataclass
class _Write:
    """One resource's state write waiting for a commit (``resource`` None: a remove)."""

    address: str
    resource: ResourceState | None
    journal: JournalEntry | None
    done: bool = False
    error: BaseException | None = None


class Applier:
    def __init__(
        self,
        backend: StateBackend,
        state: State,
        providers: Providers,
        root: Path,
        parallelism: int = 10,
        listener: Listener | None = None,
        sleep: Callable[[float], None] = time.sleep,
        journal: Callable[[Outcome], JournalEntry] | None = None,
        stop: threading.Event | None = None,
        options: ApplyOptions | None = None,
    ):
        """journal(outcome) makes the journal entry for one result; a success is journaled
        in the same transaction as its state write, so history never misses a change.
        options: what every create and update is asked with (``ApplyOptions``)."""
        self.options = options or ApplyOptions()
        self.journal = journal
        self.stop = stop  # once set, nothing new starts; what runs finishes and is persisted
        self._journaled: set[str] = set()
        self.backend = backend
        self.state = state
        self.resources = dict(state.resources)
        self.serial = state.serial
        self.providers = providers
        self.root = root
        self.parallelism = max(1, parallelism)
        self.listener = listener or (lambda event, change, outcome: None)
        self.sleep = sleep
        self._write_lock = threading.Lock()  # the backend's connection: one user at a time
        self._commit_ready = threading.Condition()  # guards the two below
        self._queued: list[_Write] = []  # writes waiting for the next commit
        self._committing = False  # a worker is committing a batch now
        self._fatal: StateError | None = None  # set when state cannot be written: stop scheduling
        self._pricing: dict[str, object] | None = None  # the plan's prices, for actual run costs

    # -- state -------------------------------------------------------------------------
    def _record(self, change: ResourceChange | None) -> JournalEntry | None:
        """The journal entry saying `change` succeeded, written with its state write."""
        if change is None or self.journal is None:
            return None
        self._journaled.add(change.address)
        return self.journal(Outcome(change.address, change.action, "succeeded"))

    def _put(
        self,
        resource: ResourceState,
        point: str = "after-state-write",
        done: ResourceChange | None = None,
    ) -> None:
        self._commit(_Write(resource.address, resource, self._record(done)))
        faults.point(point, resource.address)

    def _remove(self, address: str, done: ResourceChange | None = None) -> None:
        if address in self.resources:  # one worker per address: no other can add it now
            self._commit(_Write(address, None, self._record(done)))
        faults.point("after-state-write", address)

    def _commit(self, write: _Write) -> None:
        """Write one resource's state, durably, before returning (group commit).

        Workers whose writes arrive while another worker's commit is in progress wait,
        and the first of them then commits all of theirs in one transaction: each resource
        is still in state before its worker goes on, and a busy apply pays one commit
        (one fsync) per batch instead of one per resource."""
        with self._commit_ready:
            self._queued.append(write)
            while not write.done:
                if self._committing:
                    self._commit_ready.wait()
                    continue
                self._committing = True
                batch, self._queued = self._queued, []
                self._commit_ready.release()
                error: BaseException | None = None
                try:
                    with self._write_lock:
                        writes = [(w.address, w.resource, w.journal) for w in batch]
                        self.serial = self.backend.write_many(self.serial, writes)
                        for w in batch:
                            if w.resource is None:
                                self.resources.pop(w.address, None)
                            else:
                                self.resources[w.address] = w.resource
                except BaseException as exc:  # every write of the batch failed with it
                    error = exc
                finally:
                    self._commit_ready.acquire()
                    self._committing = False
                    for w in batch:
                        w.done, w.error = True, error
                    self._commit_ready.notify_all()
        if write.error is not None:
            raise write.error

    # -- provider calls ----------------------------------------------------------------
    def _ctx(self, change: ResourceChange) -> ResourceContext:
        return ResourceContext.of(change.address, self.state.lineage, self.root)

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
        # no lock: only committers change self.resources, one key at a time, and a
        # dependency's record is committed before its dependents are scheduled
        resources = self.resources
        return {d: dict(resources[d].outputs) for d in change.dependencies if d in resources}

    def _create_or_update(self, change: ResourceChange, create: bool) -> str | None:
        """Create or update; returns the provider's note on the result (or None)."""
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
            force_conflicts=self.options.force_conflicts,
            wait=self.options.wait,
        )
        # The plan may only have known "(known after apply)"; now the inputs are real.
        fingerprint = provider.plan(
            PlanRequest(
                request.ctx, request.prior_spec, change.after, request.prior_outputs, upstream
            )
        ).inputs_fingerprint
        pending = self.resources.get(change.address)
        if create and not (pending and pending.status is Status.PENDING):
            # recorded first, so a crash before the state write cannot orphan the object
            self._put(_pending(change), point="after-pending-write")
        faults.point("before-provider-call", change.address)
        call = provider.create if create else provider.update
        try:
            response = self._retrying(lambda: call(request))
        except ProviderError:
            if prior is not None and not create:
                self._put(replace(prior, status=Status.FAILED, updated_at=now()))
            elif create:  # the provider says it failed: by contract nothing is left to adopt
                self._remove(change.address)
            raise
        assert isinstance(response, ApplyResponse)
        faults.point("after-provider-call", change.address)
        outputs = response.outputs
        if change.kind == "TrainingJob" and self._pricing is not None:
            outputs = cost.with_run_costs(outputs, self._pricing)  # what budgets add up
        self._put(
            ResourceState(
                address=change.address,
                kind=change.kind,
                provider=change.provider,
                spec=change.after,
                spec_hash=canonical_hash(change.after),
                inputs_fingerprint=fingerprint,
                outputs=outputs,
                observed=response.observed,
                external_id=response.external_id,
                dependencies=list(change.dependencies),
                status=Status.READY,
                prevent_destroy=change.prevent_destroy,
                created_at=prior.created_at if prior and not create else now(),
                updated_at=now(),
            ),
            done=change,
        )
        return response.note

    def _delete(self, change: ResourceChange, final: bool = True) -> None:
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
        self._remove(change.address, done=change if final else None)

    def _run(self, change: ResourceChange) -> Outcome:
        started = time.monotonic()
        self.listener("start", change, None)
        note = None
        try:
            if change.action is Action.CREATE:
                note = self._create_or_update(change, create=True)
            elif change.action is Action.UPDATE:
                note = self._create_or_update(change, create=False)
            elif change.action is Action.DELETE:
                self._delete(change)
            elif change.action.is_replace:
                if change.action is Action.DELETE_THEN_CREATE:
                    self._delete(change, final=False)
                    faults.point("mid-replace", change.address)
                note = self._create_or_update(change, create=True)
            elif change.action is Action.NOOP:
                prior = self.resources.get(change.address)
                if prior is not None and prior.prevent_destroy != change.prevent_destroy:
                    self._put(replace(prior, prevent_destroy=change.prevent_destroy))
            outcome = Outcome(
                change.address,
                change.action,
                "succeeded",
                seconds=time.monotonic() - started,
                note=note,
            )
        except StateError:
            raise  # the state cannot be written: stop, do not report it as this provider's fault
        except ProviderError as exc:
            error = _without_address(change.address, str(exc))
            outcome = Outcome(
                change.address, change.action, "failed", error, time.monotonic() - started
            )
        except Exception as exc:  # a provider bug must not abandon the other branches
            outcome = Outcome(
                change.address,
                change.action,
                "failed",
                _unexpected(change.provider, exc),
                time.monotonic() - started,
            )
        if (
            self.journal is not None
            and change.action is not Action.NOOP
            and change.address not in self._journaled
        ):
            with self._write_lock:  # failures, and successes that wrote no state
                self.backend.append_journal(self.journal(outcome))
        self.listener("finish", change, outcome)
        faults.point("between-resources", change.address)
        return outcome

    # -- scheduling --------------------------------------------------------------------
    def apply(self, plan: Plan) -> ApplyReport:
        """Run every change once its prerequisites finished; at most `parallelism` at once."""
        report = ApplyReport()
        self._pricing = plan.pricing
        changes = {c.address: c for c in plan.changes}
        creates = [_pending(c) for c in plan.changes if c.action is Action.CREATE]
        if creates:  # one transaction records every create this apply may start
            self.serial = self.backend.put_many(self.serial, creates)
            self.resources.update((r.address, r) for r in creates)
            faults.point("after-pending-write")
        waits = _prerequisites(changes)
        unblocks: dict[str, list[str]] = {}
        for address, prerequisites in waits.items():
            for prerequisite in prerequisites:
                unblocks.setdefault(prerequisite, []).append(address)
        remaining = {address: len(w) for address, w in waits.items()}
        ready = deque(a for a in changes if remaining[a] == 0)
        results: queue.Queue[tuple[str, Outcome]] = queue.Queue()
        held = _Held(changes)
        finished = in_flight = 0

        def complete(address: str, outcome: Outcome | None) -> None:
            """outcome None: an unchanged resource held back by a failure (not reported)."""
            nonlocal finished
            finished += 1
            if outcome is not None and (
                outcome.action is not Action.NOOP or outcome.status != "succeeded"
            ):
                report.outcomes.append(outcome)
            if outcome is not None and outcome.status == "failed":
                held.failed.add(address)
            for waiting in unblocks.get(address, ()):
                remaining[waiting] -= 1
                if remaining[waiting] == 0:
                    ready.append(waiting)

        with cf.ThreadPoolExecutor(max_workers=self.parallelism) as pool:
            while finished < len(changes):
                while ready and in_flight < self.parallelism and self._fatal is None:
                    address = ready.popleft()
                    if self.stop is not None and self.stop.is_set():
                        change = changes[address]
                        complete(address, _stopped(change))
                        continue
                    if held.blocked(address, waits[address]):
                        outcome = held.skip(address, waits[address])
                        if outcome is not None:
                            self.listener("skip", changes[address], outcome)
                        complete(address, outcome)
                        continue
                    pool.submit(self._run_into, changes[address], results)
                    in_flight += 1
                if in_flight == 0:
                    if self._fatal is not None:
                        raise self._fatal
                    if finished < len(changes) and not ready:  # cannot happen with an acyclic graph
                        raise RuntimeError("apply found changes it cannot schedule")
                    continue
                address, outcome = results.get()
                in_flight -= 1
                complete(address, outcome)
        for outcome in report.outcomes:  # creates that never started hold no object
            if outcome.status == "skipped" and changes[outcome.address].action is Action.CREATE:
                self._remove(outcome.address)
        report.serial = self.serial
        return report

    def _run_into(self, change: ResourceChange, results: queue.Queue[tuple[str, Outcome]]) -> None:
        """Run one change and always report back, so the scheduler never waits forever."""
        try:
            outcome = self._run(change)
        except StateError as exc:
            self._fatal = exc
            outcome = Outcome(change.address, change.action, "failed", str(exc))
        except BaseException as exc:  # reported as this resource's failure
            outcome = Outcome(change.address, change.action, "failed", f"internal error: {exc!r}")
        results.put((change.address, outcome))


def _unexpected(provider: str, exc: Exception) -> str:
    """What an exception a provider did not expect means: a full disk is the user's to
    fix, not a provider's crash."""
    if (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)) or (
        "No space left on device" in str(exc)
    ):
        filename = exc.filename if isinstance(exc, OSError) else None
        where = f" while writing {filename}" if filename else ""
        return (
            f"the disk is full (no space left on device){where}: free space on it, or "
            "give it more, and apply again"
        )
    return f"provider {provider} crashed: {type(exc).__name__}: {exc}"


def _without_address(address: str, message: str) -> str:
    """A provider's error without the resource's address in front: the outcome names it,
    and every line that shows the error starts with it already."""
    return message.removeprefix(f"{address}: ") or message


class _Held:
    """What a failure holds back: resources that depend on a failed one are not started.

    A held change is reported as skipped, saying which dependency failed or was itself
    skipped (and, then, which failure upstream caused it). A held resource that had
    nothing to do (no-op) is not reported at all, and is looked through: what depends on
    it names the failure behind it."""

    def __init__(self, changes: dict[str, ResourceChange]) -> None:
        self.changes = changes
        self.failed: set[str] = set()
        self.roots: dict[str, set[str]] = {}  # held address -> the failures that hold it

    def blocked(self, address: str, waits: set[str]) -> bool:
        return any(w in self.failed or w in self.roots for w in waits)

    def skip(self, address: str, waits: set[str]) -> Outcome | None:
        """Hold back address: its skipped outcome, or None for a no-op."""
        through = [w for w in waits if w in self.roots]
        roots = {w for w in waits if w in self.failed}.union(*(self.roots[w] for w in through))
        self.roots[address] = roots
        change = self.changes[address]
        if change.action is Action.NOOP:
            return None
        unchanged = [w for w in through if self.changes[w].action is Action.NOOP]
        failed = {w for w in waits if w in self.failed}.union(*(self.roots[w] for w in unchanged))
        skipped = sorted(w for w in through if w not in unchanged)
        if not failed:  # only skipped dependencies: name the failure behind them
            were = "was" if len(skipped) == 1 else "were"
            reason = (
                f"depends on {' and '.join(skipped)}, which {were} skipped because "
                f"{' and '.join(sorted(roots))} failed"
            )
        else:
            parts = [f"{d}, which failed" for d in sorted(failed)]
            parts += [f"{d}, which was skipped" for d in skipped]
            reason = "depends on " + ", and on ".join(parts)
        return Outcome(address, change.action, "skipped", reason)


def _stopped(change: ResourceChange) -> Outcome | None:
    """A change not started because the apply was asked to stop (SIGTERM to the
    controller); a no-op is not reported."""
    if change.action is Action.NOOP:
        return None
    return Outcome(change.address, change.action, "skipped", "not started: the apply was stopped")


def _pending(change: ResourceChange) -> ResourceState:
    """The record written before a create starts: the resource may exist from here on."""
    assert change.after is not None
    return ResourceState(
        address=change.address,
        kind=change.kind,
        provider=change.provider,
        spec=change.after,
        spec_hash=canonical_hash(change.after),
        dependencies=list(change.dependencies),
        status=Status.PENDING,
        prevent_destroy=change.prevent_destroy,
    )


def _prerequisites(changes: dict[str, ResourceChange]) -> dict[str, set[str]]:
    """What must finish before each change starts: dependencies first; when deleting,
    dependents first."""
    deleting = {a for a, c in changes.items() if c.action is Action.DELETE}
    users: dict[str, set[str]] = {}
    for address, change in changes.items():
        for dependency in change.dependencies:
            users.setdefault(dependency, set()).add(address)
    waits: dict[str, set[str]] = {}
    for address, change in changes.items():
        if address in deleting:
            waits[address] = {u for u in users.get(address, ()) if u in deleting}
        else:
            waits[address] = {d for d in change.dependencies if d in changes and d not in deleting}
    return waits
