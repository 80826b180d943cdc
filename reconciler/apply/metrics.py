"""The reconciler's own Prometheus metrics: built from state and an apply's outcomes.

Three ways out, all over one collector (``ReconcilerMetrics``):

* ``collect(state, report, drift=n)`` -> a ``CollectorRegistry`` for one apply;
* ``push(registry, url, workspace)`` sends it to a Pushgateway (POST, grouping key
  ``job="pipeform", workspace=<name>``). Counters continue from the values the gateway
  holds for that group, so ``pipeform_apply_total`` counts every apply although each
  one-shot process starts from nothing (the state lock keeps applies of one workspace
  apart, so the read-add-push is not raced). A failed push is a warning, never an error;
* ``serve(port)`` exposes a long-lived collector over HTTP (controller mode), bound to
  127.0.0.1 unless told otherwise; call ``observe`` on it after every reconcile.

docs/reference/metrics.md lists every metric, its labels and who sends it.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, pushadd_to_gateway, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from reconciler.state.model import ResourceState, State, Status

if TYPE_CHECKING:
    from reconciler.apply.report import ApplyReport

log = logging.getLogger("pipeform.metrics")
PUSH_JOB = "pipeform"
TIMEOUT = 5.0
WEEK = 7 * 24 * 3600.0


def _timestamp(text: object) -> float | None:
    """An ISO 8601 time (``2024-05-01T10:00:00Z``) -> unix seconds, or None."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _of_kind(state: State, kind: str) -> list[ResourceState]:
    return sorted((r for r in state.resources.values() if r.kind == kind), key=lambda r: r.address)


def _name(resource: ResourceState) -> str:
    return resource.address.split("/", 1)[1]


def budget_spent_ratio(outputs: Mapping[str, Any]) -> float | None:
    """A Budget's spend as a share of its amount: outputs spentRatio, else spent/amount."""
    ratio = outputs.get("spentRatio")
    if isinstance(ratio, int | float):
        return float(ratio)
    try:
        spent, amount = float(outputs["spent"]), float(outputs["amount"])
    except (KeyError, TypeError, ValueError):
        return None
    return spent / amount if amount > 0 else None


class ReconcilerMetrics(Collector):
    """Counters that add up over applies, gauges that show the latest state."""

    def __init__(self) -> None:
        self.applies: dict[str, float] = {}
        self.changed: dict[str, float] = {}
        self.gauges: list[Metric] = []
        self.budget_ratios: dict[str, float] = {}

    def observe(
        self,
        state: State,
        report: ApplyReport | None = None,
        *,
        drift: int | None = None,
        at: float | None = None,
        budgets: Mapping[str, float] | None = None,
    ) -> None:
        """Take in one apply (report, may be None for a refresh) and the state after it.

        budgets: each Budget's spend in its current period as a share of its amount, by
        budget name (the engine computes it from the recorded run costs)."""
        at = time.time() if at is None else at
        if budgets is not None:
            self.budget_ratios = dict(budgets)
        failed: set[str] = set()
        if report is not None:
            result = "failed" if report.failed else "succeeded"
            self.applies[result] = self.applies.get(result, 0) + 1
            for outcome in report.outcomes:
                if outcome.status == "succeeded" and outcome.action.value != "no-op":
                    action = outcome.action.value
                    self.changed[action] = self.changed.get(action, 0) + 1
                elif outcome.status == "failed":
                    failed.add(outcome.address)
        self.gauges = list(self._gauges(state, report, drift, at, failed))

    def _gauges(
        self,
        state: State,
        report: ApplyReport | None,
        drift: int | None,
        at: float,
        failed: set[str],
    ) -> Iterator[Metric]:
        if report is not None and not report.failed:
            yield GaugeMetricFamily(
                "pipeform_last_successful_apply_timestamp_seconds",
                "Unix time the last apply without failures finished.",
                value=at,
            )
        if drift is not None:
            yield GaugeMetricFamily(
                "pipeform_drift_resources",
                "Resources whose live object differed from state at the last refresh.",
                value=drift,
            )
        yield GaugeMetricFamily("pipeform_state_serial", "The state's serial.", value=state.serial)
        resources = GaugeMetricFamily(
            "pipeform_resources",
            "Resources in state by kind and status.",
            labels=["kind", "status"],
        )
        counts: dict[tuple[str, str], int] = {}
        for r in state.resources.values():
            counts[(r.kind, r.status.value)] = counts.get((r.kind, r.status.value), 0) + 1
        for (kind, status), n in sorted(counts.items()):
            resources.add_metric([kind, status], n)
        yield resources
        yield from self._datasets(state, failed)
        yield from self._budgets_and_jobs(state, at)

    def _datasets(self, state: State, failed: set[str]) -> Iterator[Metric]:
        snapshot = GaugeMetricFamily(
            "pipeform_dataset_last_snapshot_timestamp_seconds",
            "Unix time the Dataset's current snapshot was made.",
            labels=["dataset"],
        )
        invalid = GaugeMetricFamily(
            "pipeform_dataset_validation_failed",
            "1 when the Dataset's last apply failed (validation refused the data), else 0.",
            labels=["dataset"],
        )
        psi = GaugeMetricFamily(
            "pipeform_dataset_drift_psi",
            "PSI of each column of the Dataset's current snapshot against the snapshot "
            "before it (the columns its validation.drift checks).",
            labels=["dataset", "column"],
        )
        for r in _of_kind(state, "Dataset"):
            created = _timestamp(r.outputs.get("createdAt"))
            if created is not None:
                snapshot.add_metric([_name(r)], created)
            bad = r.address in failed or r.status in (Status.FAILED, Status.TAINTED)
            invalid.add_metric([_name(r)], 1.0 if bad else 0.0)
            drift = r.outputs.get("drift")
            for column, value in sorted((drift if isinstance(drift, dict) else {}).items()):
                if isinstance(value, int | float):
                    psi.add_metric([_name(r), str(column)], float(value))
        yield snapshot
        yield invalid
        yield psi

    def _budgets_and_jobs(self, state: State, at: float) -> Iterator[Metric]:
        spent = GaugeMetricFamily(
            "pipeform_budget_spent_ratio",
            "Share of the Budget's amount spent in the current period (1 = all of it).",
            labels=["budget"],
        )
        ratios = dict(self.budget_ratios)
        for r in _of_kind(state, "Budget"):
            ratio = budget_spent_ratio(r.outputs)
            if ratio is not None:
                ratios.setdefault(_name(r), ratio)
        for name, ratio in sorted(ratios.items()):
            spent.add_metric([name], ratio)
        yield spent
        registration = GaugeMetricFamily(
            "pipeform_registration_duration_seconds",
            "Seconds from the start of the TrainingJob's newest registered run to its model "
            "version being registered.",
            labels=["pipeform_job"],
        )
        for r in _of_kind(state, "TrainingJob"):
            out = r.outputs
            seconds = out.get("durationSeconds")
            registered = out.get("status") == "succeeded" and out.get("modelVersion") is not None
            if registered and isinstance(seconds, int | float):
                registration.add_metric([_name(r)], float(seconds))
        yield registration
        yield from self._runs(state, at)
        yield from self._promotions(state)

    def _runs(self, state: State, at: float) -> Iterator[Metric]:
        """The newest run of each TrainingJob (with its id) and the week's recorded cost."""
        newest = GaugeMetricFamily(
            "pipeform_training_last_run_info",
            "1 for the TrainingJob's newest recorded run, labelled with its id and status.",
            labels=["pipeform_job", "run_id", "status"],
        )
        cost = GaugeMetricFamily(
            "pipeform_training_cost_week",
            "Recorded cost of the TrainingJob's runs that finished in the 7 days before "
            "this apply, in the Workspace's pricing currency.",
            labels=["pipeform_job", "currency"],
        )
        for r in _of_kind(state, "TrainingJob"):
            runs = [run for run in r.outputs.get("runs") or [] if isinstance(run, dict)]
            if runs and runs[-1].get("id"):
                last = runs[-1]
                newest.add_metric([_name(r), str(last["id"]), str(last.get("status"))], 1.0)
            totals: dict[str, float] = {}
            for run in runs:
                finished = _timestamp(run.get("finishedAt"))
                spent = run.get("cost")
                if finished is None or at - finished > WEEK or not isinstance(spent, dict):
                    continue
                try:
                    amount = float(spent["amount"])
                except (KeyError, TypeError, ValueError):
                    continue
                currency = str(spent.get("currency") or "")
                totals[currency] = totals.get(currency, 0.0) + amount
            for currency, amount in sorted(totals.items()):
                cost.add_metric([_name(r), currency], amount)
        yield newest
        yield cost
        yield from self._requested(state)

    def _requested(self, state: State) -> Iterator[Metric]:
        """What each TrainingJob's newest run asked for: the trainer's resource use over
        these is its saturation."""
        cpu = GaugeMetricFamily(
            "pipeform_training_requested_cpu_cores",
            "CPU cores the TrainingJob's newest run asked for (spec.resources.cpu).",
            labels=["pipeform_job"],
        )
        memory = GaugeMetricFamily(
            "pipeform_training_requested_memory_bytes",
            "Memory the TrainingJob's newest run asked for (spec.resources.memory).",
            labels=["pipeform_job"],
        )
        for r in _of_kind(state, "TrainingJob"):
            runs = [run for run in r.outputs.get("runs") or [] if isinstance(run, dict)]
            asked = runs[-1].get("resources") if runs else None
            if not isinstance(asked, dict):
                continue
            if isinstance(asked.get("cpu"), int | float):
                cpu.add_metric([_name(r)], float(asked["cpu"]))
            if isinstance(asked.get("memoryGiB"), int | float):
                memory.add_metric([_name(r)], float(asked["memoryGiB"]) * 2**30)
        yield cpu
        yield memory

    def _promotions(self, state: State) -> Iterator[Metric]:
        triggered = GaugeMetricFamily(
            "pipeform_retrain_triggers",
            "Retrains a retrain policy (on: drift) triggered, by whether the new model beat "
            "the one it replaced (useful: true or false).",
            labels=["pipeform_job", "useful"],
        )
        accuracy = GaugeMetricFamily(
            "pipeform_retrain_trigger_accuracy_ratio",
            "Share of triggered retrains whose model beat the one it replaced (0..1).",
            labels=["pipeform_job"],
        )
        waiting = GaugeMetricFamily(
            "pipeform_model_versions_awaiting_approval",
            "1 when the TrainingJob's newest version waits for pipeform approve, else 0.",
            labels=["pipeform_job"],
        )
        for r in _of_kind(state, "TrainingJob"):
            counts = r.outputs.get("retrainTriggers")
            if isinstance(counts, dict) and int(counts.get("total") or 0) > 0:
                total, useful = int(counts["total"]), int(counts.get("useful") or 0)
                triggered.add_metric([_name(r), "true"], useful)
                triggered.add_metric([_name(r), "false"], total - useful)
                accuracy.add_metric([_name(r)], useful / total)
            promotion = r.outputs.get("promotion")
            if isinstance(promotion, dict):
                held = promotion.get("status") == "awaiting-approval"
                waiting.add_metric([_name(r)], 1.0 if held else 0.0)
        yield triggered
        yield accuracy
        yield waiting

    def collect(self) -> Iterator[Metric]:
        applies = CounterMetricFamily(
            "pipeform_apply", "Applies by result (succeeded, failed).", labels=["result"]
        )
        for result, n in sorted(self.applies.items()):
            applies.add_metric([result], n)
        changed = CounterMetricFamily(
            "pipeform_resources_changed",
            "Resources changed by applies, by action (create, update, delete...).",
            labels=["action"],
        )
        for action, n in sorted(self.changed.items()):
            changed.add_metric([action], n)
        yield applies
        yield changed
        yield from self.gauges


def collect(
    state: State,
    report: ApplyReport | None = None,
    *,
    drift: int | None = None,
    budgets: Mapping[str, float] | None = None,
) -> CollectorRegistry:
    """A registry holding the metrics of one apply (or refresh: report None)."""
    metrics = ReconcilerMetrics()
    metrics.observe(state, report, drift=drift, budgets=budgets)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics)
    return registry


class _Fixed(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def _pushed_counters(
    url: str, workspace: str
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The counter samples the Pushgateway holds for job=pipeform, workspace=<name>."""
    request = urllib.request.Request(url.rstrip("/") + "/api/v1/metrics")
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        data = json.loads(response.read())
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for group in data.get("data") or []:
        labels = group.get("labels") or {}
        if labels.get("job") != PUSH_JOB or labels.get("workspace") != workspace:
            continue
        for name, family in group.items():
            if not isinstance(family, dict) or family.get("type") != "COUNTER":
                continue
            for sample in family.get("metrics") or []:
                own = {
                    k: v
                    for k, v in (sample.get("labels") or {}).items()
                    if k not in ("job", "workspace", "instance")
                }
                out[(name, tuple(sorted(own.items())))] = float(sample.get("value", 0))
    return out


def push(registry: CollectorRegistry, url: str, workspace: str) -> bool:
    """Add the registry's metrics to the Pushgateway's group for this workspace.

    Counters continue from what the gateway holds. Returns False (after a warning) when
    the gateway cannot be reached: metrics never fail an apply.
    """
    try:
        prior = _pushed_counters(url, workspace)
        families = []
        for family in registry.collect():
            if family.type == "counter":
                for i, s in enumerate(family.samples):
                    key = (s.name, tuple(sorted(s.labels.items())))
                    if s.name.endswith("_total") and key in prior:
                        family.samples[i] = s._replace(value=s.value + prior[key])
            families.append(family)
        out = CollectorRegistry(auto_describe=False)
        out.register(_Fixed(families))
        pushadd_to_gateway(
            url, job=PUSH_JOB, grouping_key={"workspace": workspace}, registry=out, timeout=TIMEOUT
        )
    except (OSError, urllib.error.URLError, ValueError) as exc:
        log.warning("could not push pipeform's metrics to the Pushgateway at %s: %s", url, exc)
        return False
    return True


def serve(port: int, addr: str = "127.0.0.1") -> ReconcilerMetrics:
    """Expose a long-lived collector on http://addr:port/metrics (controller mode)."""
    metrics = ReconcilerMetrics()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics)
    start_http_server(port, addr=addr, registry=registry)
    return metrics
