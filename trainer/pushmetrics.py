"""Push a finished training run's metrics to a Prometheus Pushgateway.

One POST (``pushadd``) per run to the group ``job="pipeform_trainer",
pipeform_job=<TrainingJob name>``: the gauges pushed replace their previous values and
the ones not pushed this time keep theirs (so ``..._last_success_timestamp_seconds``
survives a failed run). ``pipeform_training_runs_total`` is a cumulative count but is
pushed as a gauge: a pushed counter is just its last value to the Pushgateway, and the
count must not restart at each process, so the executor passes the job's earlier counts
and this run is added to them. A failed push is logged as a warning and never raised:
metrics must not fail a run. With them go what the run measured about itself
(``trainer.telemetry``): its step-time histogram, checkpoint failures and last good
checkpoint, CPU time and peak memory, and the champion delta. Imports prometheus_client
only (no torch).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from urllib.parse import unquote, urlsplit, urlunsplit

from prometheus_client import CollectorRegistry, Gauge, pushadd_to_gateway
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.exposition import basic_auth_handler, default_handler
from prometheus_client.registry import Collector

from trainer.config import MetricsTarget
from trainer.telemetry import Telemetry

log = logging.getLogger(__name__)

JOB = "pipeform_trainer"
RESULTS = ("succeeded", "failed", "gated")
PUSH_TIMEOUT_SECONDS = 10.0
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_RESERVED = {"job", "instance", "pipeform_job", "metric", "result", "stage", "le"}

Handler = Callable[..., Callable[[], None]]


def _result(status: str) -> str:
    """succeeded and gated count as themselves; anything else (timed out...) as failed."""
    return status if status in RESULTS else "failed"


def _extra_labels(labels: dict[str, str]) -> dict[str, str]:
    usable: dict[str, str] = {}
    for name, value in sorted(labels.items()):
        if not _LABEL.fullmatch(name) or name.startswith("__") or name in _RESERVED:
            log.warning("metrics label %r skipped: not a usable Prometheus label name", name)
            continue
        usable[name] = value
    return usable


def build_registry(
    target: MetricsTarget,
    *,
    status: str,
    metrics: dict[str, float],
    duration_seconds: float,
    samples_per_second: float | None,
    finished_at: float,
    prior_counts: dict[str, int] | None = None,
    telemetry: Telemetry | None = None,
) -> CollectorRegistry:
    """The gauges of one finished run, labelled with the target's extra labels."""
    registry = CollectorRegistry()
    extra = _extra_labels(target.labels)
    names = list(extra)

    def gauge(name: str, doc: str, *labels: str) -> Callable[..., Gauge]:
        metric = Gauge(name, doc, [*names, *labels], registry=registry)
        if not names and not labels:  # an unlabelled gauge has no .labels()
            return lambda: metric
        return lambda **more: metric.labels(**extra, **more)

    succeeded = status == "succeeded"
    gauge("pipeform_training_run_succeeded", "1 when the last run succeeded, else 0")().set(
        1 if succeeded else 0
    )
    gauge("pipeform_training_run_finished_timestamp_seconds", "Unix time the last run ended")().set(
        finished_at
    )
    if succeeded:
        gauge(
            "pipeform_training_run_last_success_timestamp_seconds",
            "Unix time the last successful run ended",
        )().set(finished_at)
    gauge("pipeform_training_run_duration_seconds", "Duration of the last run")().set(
        duration_seconds
    )
    validation = gauge(
        "pipeform_training_validation_metric", "Validation metrics of the last run", "metric"
    )
    for name, value in sorted(metrics.items()):
        validation(metric=name).set(float(value))
    if samples_per_second is not None:
        gauge("pipeform_training_samples_per_second", "Training throughput of the last run")().set(
            samples_per_second
        )
    counts = {result: 0 for result in RESULTS}
    for result, count in (target.prior_counts if prior_counts is None else prior_counts).items():
        counts[_result(result)] += int(count)
    counts[_result(status)] += 1
    runs = gauge(
        "pipeform_training_runs_total",
        "Runs of this TrainingJob so far by result (cumulative; pushed as a gauge)",
        "result",
    )
    for result, count in counts.items():
        runs(result=result).set(count)
    if telemetry is not None:
        _telemetry(registry, gauge, extra, telemetry)
    return registry


def _telemetry(
    registry: CollectorRegistry,
    gauge: Callable[..., Callable[..., Gauge]],
    extra: dict[str, str],
    telemetry: Telemetry,
) -> None:
    """Step times, checkpoints and resource use of the run (see trainer.telemetry)."""
    saved = telemetry.checkpoints
    failures = gauge(
        "pipeform_training_checkpoint_failures",
        "Checkpoints of the last run that could not be written (stage=write) or were found "
        "damaged or unusable when it resumed (stage=resume)",
        "stage",
    )
    failures(stage="write").set(saved.write_failures)
    failures(stage="resume").set(saved.unusable)
    if saved.last_good_at is not None and saved.last_good_step is not None:
        gauge(
            "pipeform_training_last_checkpoint_timestamp_seconds",
            "Unix time the newest good checkpoint was written (or, resumed, its file's time)",
        )().set(saved.last_good_at)
        gauge(
            "pipeform_training_last_checkpoint_step", "Global step of the newest good checkpoint"
        )().set(saved.last_good_step)
    for name, doc, value in (
        (
            "pipeform_training_cpu_seconds",
            "CPU time of the last run's process",
            telemetry.cpu_seconds,
        ),
        (
            "pipeform_training_peak_memory_bytes",
            "Peak resident memory of the last run's process",
            telemetry.peak_memory_bytes,
        ),
        (
            "pipeform_training_gpu_memory_peak_ratio",
            "Peak GPU memory the last run reserved, as a share of the device's memory",
            telemetry.gpu_memory_peak_ratio,
        ),
    ):
        if value is not None:
            gauge(name, doc)().set(value)
    if telemetry.champion_delta is not None:
        metric, delta = telemetry.champion_delta
        gauge(
            "pipeform_training_champion_delta",
            "The last run's model against the champion on the champion gate's metric, both "
            "scored on its validation split: positive when better, negative when worse",
            "metric",
        )(metric=metric).set(delta)
    if telemetry.batches.count:
        registry.register(_StepTimes(extra, telemetry))


class _StepTimes(Collector):
    """The step-time histogram, from the buckets the run counted (trainer.telemetry)."""

    def __init__(self, extra: dict[str, str], telemetry: Telemetry) -> None:
        self.extra, self.times = extra, telemetry.batches

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(
            "pipeform_training_batch_seconds",
            "Time of each training step (forward, backward, optimizer) of the last run",
            labels=list(self.extra),
        )
        family.add_metric(list(self.extra.values()), self.times.buckets(), self.times.total)
        yield family


def _gateway_and_handler(url: str) -> tuple[str, Handler, str]:
    """(gateway URL without credentials, the handler sending them, a URL safe to log)."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.username is None:
        return urlunsplit(parts), default_handler, urlunsplit(parts)
    netloc = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    bare = urlunsplit(parts._replace(netloc=netloc))
    username, password = unquote(parts.username), unquote(parts.password or "")

    def handler(
        url: str,
        method: str,
        timeout: float | None,
        headers: list[tuple[str, str]],
        data: bytes,
    ) -> Callable[[], None]:
        return basic_auth_handler(url, method, timeout, headers, data, username, password)

    return bare, handler, urlunsplit(parts._replace(netloc=f"***@{netloc}"))


def push_run_metrics(
    target: MetricsTarget,
    *,
    run_id: str,
    status: str,
    metrics: dict[str, float],
    duration_seconds: float,
    samples_per_second: float | None,
    finished_at: float,
    prior_counts: dict[str, int] | None = None,
    telemetry: Telemetry | None = None,
) -> None:
    """Push one finished run's metrics; do nothing without a Pushgateway URL; never raise."""
    if not target.pushgateway_url:
        return
    try:
        gateway, handler, shown = _gateway_and_handler(target.pushgateway_url)
    except ValueError as error:
        log.warning("metrics of run %s not pushed: bad Pushgateway URL (%s)", run_id, error)
        return
    try:
        registry = build_registry(
            target,
            status=status,
            metrics=metrics,
            duration_seconds=duration_seconds,
            samples_per_second=samples_per_second,
            finished_at=finished_at,
            prior_counts=prior_counts,
            telemetry=telemetry,
        )
        pushadd_to_gateway(
            gateway,
            job=JOB,
            registry=registry,
            grouping_key={"pipeform_job": target.job},
            timeout=PUSH_TIMEOUT_SECONDS,
            handler=handler,
        )
    except Exception as error:  # metrics never fail a run
        log.warning(
            "could not push metrics of run %s to the Pushgateway at %s: %s", run_id, shown, error
        )
        return
    log.info("pushed metrics of run %s (%s) to %s", run_id, status, shown)
