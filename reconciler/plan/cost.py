"""Cost: estimates for planned training runs, and the actual cost of finished runs.

An estimate prices one worker (GPUs at the Workspace's ``pricing.gpuHour`` for its
``gpuType``, else ``defaultGpuHour``; CPU cores at ``cpuHour``; memory GiB at
``memoryGiBHour``), multiplies by workers x nodes, and by the expected hours: the median
duration of the job's past succeeded or gated runs recorded in state, else its
``maxDuration``. The actual cost of a run is the same price over its measured duration
and recorded resources; the applier writes it into each run of a TrainingJob's outputs,
and budgets add those up. All arithmetic is Decimal; amounts are kept to 6 places and
shown in cents.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any

from reconciler.kinds.quantities import format_duration
from reconciler.kinds.reads import DefaultResourcesRead, TrainingJobRead, WorkspaceRead
from reconciler.plan.model import MONEY_CONTEXT, Action, CostEstimate, ResourceChange
from reconciler.spec.checks import CheckedTree
from reconciler.state.model import State

MICRO = Decimal("0.000001")
GIB = Decimal(2**30)
HOUR = Decimal(3600)
#: the actions that start a training run
TRAINING_ACTIONS = frozenset(
    {Action.CREATE, Action.UPDATE, Action.DELETE_THEN_CREATE, Action.CREATE_THEN_DELETE}
)
#: run statuses whose durations predict the next run (failed runs stop early)
PREDICTIVE_STATUSES = frozenset({"succeeded", "gated"})


@dataclass(frozen=True)
class Prices:
    """The Workspace's prices as Decimals (from ``spec.pricing`` or a plan's copy)."""

    currency: str
    cpu_hour: Decimal
    memory_gib_hour: Decimal
    gpu_hour: Mapping[str, Decimal]
    default_gpu_hour: Decimal

    @classmethod
    def of(cls, workspace: WorkspaceRead) -> Prices:
        p = workspace.spec.pricing
        return cls(p.currency, p.cpu_hour, p.memory_gib_hour, dict(p.gpu_hour), p.default_gpu_hour)

    def to_json(self) -> dict[str, Any]:
        """Plain decimal strings (never exponents), as saved in a plan."""
        return {
            "currency": self.currency,
            "cpuHour": amount_text(self.cpu_hour),
            "memoryGiBHour": amount_text(self.memory_gib_hour),
            "gpuHour": {k: amount_text(v) for k, v in sorted(self.gpu_hour.items())},
            "defaultGpuHour": amount_text(self.default_gpu_hour),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Prices:
        return cls(
            str(data["currency"]),
            Decimal(str(data["cpuHour"])),
            Decimal(str(data["memoryGiBHour"])),
            {k: Decimal(str(v)) for k, v in dict(data.get("gpuHour") or {}).items()},
            Decimal(str(data["defaultGpuHour"])),
        )

    def gpu(self, gpu_type: str | None) -> Decimal:
        if gpu_type is not None and gpu_type in self.gpu_hour:
            return self.gpu_hour[gpu_type]
        return self.default_gpu_hour


@dataclass(frozen=True)
class Shape:
    """What a job runs on: resources per worker, and how many workers on how many nodes."""

    cpu: Decimal  # cores per worker
    memory_gib: Decimal  # per worker
    gpus: int  # per worker
    gpu_type: str | None
    workers: int = 1  # per node
    nodes: int = 1

    @property
    def replicas(self) -> int:
        return self.workers * self.nodes


def amount_text(value: Decimal) -> str:
    return format(value.normalize(MONEY_CONTEXT), "f") if value else "0"


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() and number >= 0 else None


def job_shape(job: TrainingJobRead, defaults: DefaultResourcesRead) -> Shape:
    """A TrainingJob's resources, the Workspace defaults filling what it leaves out."""
    r, d = job.spec.resources, job.spec.distributed
    cpu = r.cpu if r.cpu is not None else defaults.cpu
    memory = r.memory if r.memory is not None else defaults.memory
    return Shape(Decimal(cpu), Decimal(memory) / GIB, r.gpus, r.gpu_type, d.workers, d.nodes)


def run_shape(resources: Any) -> Shape | None:
    """The shape recorded with a run (outputs ``runs[].resources``), or None if unreadable."""
    if not isinstance(resources, Mapping):
        return None
    cpu, memory = _decimal(resources.get("cpu")), _decimal(resources.get("memoryGiB"))
    gpus, workers, nodes = (
        _decimal(resources.get(k, d)) for k, d in (("gpus", 0), ("workers", 1), ("nodes", 1))
    )
    if cpu is None or memory is None or gpus is None or workers is None or nodes is None:
        return None
    gpu_type = resources.get("gpuType")
    return Shape(
        cpu,
        memory,
        int(gpus),
        gpu_type if isinstance(gpu_type, str) else None,
        int(workers),
        int(nodes),
    )


def hourly(shape: Shape, prices: Prices) -> Decimal:
    """The price of one hour of the whole job: every worker on every node."""
    per_worker = (
        shape.gpus * prices.gpu(shape.gpu_type)
        + shape.cpu * prices.cpu_hour
        + shape.memory_gib * prices.memory_gib_hour
    )
    return per_worker * shape.replicas


def past_durations(outputs: Mapping[str, Any]) -> list[Decimal]:
    """Durations in seconds of the recorded runs that ran to the end (succeeded, gated)."""
    runs = outputs.get("runs")
    out = []
    for run in runs if isinstance(runs, list) else []:
        if isinstance(run, Mapping) and run.get("status") in PREDICTIVE_STATUSES:
            seconds = _decimal(run.get("durationSeconds"))
            if seconds is not None:
                out.append(seconds)
    return out


def expected_hours(job: TrainingJobRead, outputs: Mapping[str, Any]) -> tuple[Decimal, str]:
    """(hours, basis): the median of past runs, else maxDuration."""
    durations = past_durations(outputs)
    if durations:
        n = len(durations)
        basis = f"median of {n} past run{'s' if n != 1 else ''}"
        import statistics  # with random and fractions: loaded only for a TrainingJob's cost

        return Decimal(statistics.median(durations)) / HOUR, basis
    seconds = job.spec.max_duration
    return Decimal(str(seconds)) / HOUR, f"maxDuration {format_duration(seconds)}"


def estimate(
    job: TrainingJobRead, workspace: WorkspaceRead, prior_outputs: Mapping[str, Any]
) -> CostEstimate:
    """The expected cost of the next run of job."""
    prices = Prices.of(workspace)
    shape = job_shape(job, workspace.spec.defaults.resources)
    with localcontext(MONEY_CONTEXT):
        per_hour = hourly(shape, prices)
        hours, basis = expected_hours(job, prior_outputs)
        return CostEstimate(
            amount=amount_text((per_hour * hours).quantize(MICRO)),
            currency=prices.currency,
            hours=amount_text(hours.quantize(MICRO)),
            hourly=amount_text(per_hour.quantize(MICRO)),
            basis=basis,
            workers=shape.replicas,
        )


def estimate_changes(
    checked: CheckedTree, state: State, changes: Iterable[ResourceChange]
) -> tuple[list[ResourceChange], dict[str, str]]:
    """Changes with an estimate on every change that trains, and totals per currency (a
    change that adopts an existing run trains nothing, and costs nothing)."""
    workspace = checked.tree.workspace
    totals: dict[str, Decimal] = {}
    out = []
    for change in changes:
        loaded = checked.tree.documents.get(change.address)
        trains = change.action in TRAINING_ACTIONS and not change.adopts
        if trains and loaded and loaded.facts.kind == "TrainingJob":
            prior = state.resources.get(change.address)
            job = loaded.training_job()
            found = estimate(job, workspace, prior.outputs if prior else {})
            total = totals.get(found.currency, Decimal(0))
            totals[found.currency] = MONEY_CONTEXT.add(total, Decimal(found.amount))
            change = replace(change, cost=found)
        out.append(change)
    if not totals:
        totals[workspace.spec.pricing.currency] = Decimal(0)
    return out, {currency: amount_text(total) for currency, total in sorted(totals.items())}


# -- actual cost -------------------------------------------------------------------------


def run_cost(run: Mapping[str, Any], prices: Prices) -> Decimal | None:
    """What a finished run cost: its recorded resources over its measured duration."""
    seconds = _decimal(run.get("durationSeconds"))
    shape = run_shape(run.get("resources"))
    if seconds is None or shape is None:
        return None
    with localcontext(MONEY_CONTEXT):
        return (hourly(shape, prices) * seconds / HOUR).quantize(MICRO)


def recorded_cost(run: Mapping[str, Any], currency: str) -> Decimal | None:
    """A run's recorded actual cost in currency (None when absent or in another one)."""
    cost = run.get("cost")
    if not isinstance(cost, Mapping) or cost.get("currency") != currency:
        return None
    return _decimal(cost.get("amount"))


def with_run_costs(outputs: Mapping[str, Any], pricing: Mapping[str, Any]) -> dict[str, Any]:
    """TrainingJob outputs with ``cost: {amount, currency}`` on every run that lacks one."""
    runs = outputs.get("runs")
    if not isinstance(runs, list):
        return dict(outputs)
    prices = Prices.from_json(pricing)
    priced = []
    for run in runs:
        if isinstance(run, Mapping) and "cost" not in run:
            amount = run_cost(run, prices)
            if amount is not None:
                run = {**run, "cost": {"amount": amount_text(amount), "currency": prices.currency}}
        priced.append(run)
    return {**outputs, "runs": priced}
