"""What a run measures about itself for the Pushgateway: step times, checkpoints, resources.

Rank 0 measures (the rank that pushes, ``trainer.pushmetrics``):

* each training step's time (forward, backward, optimizer step; the batch's gradient
  all-reduce too under DDP) counted into fixed histogram buckets, so a run of millions of
  steps keeps a few dozen numbers. On a GPU the step is timed with CUDA events, read back
  every ``PENDING`` steps and at the end of each epoch (host clocks would only time the
  kernel launches);
* its checkpoints: writes that failed, checkpoints found unusable when the run resumed,
  and the newest good one (its step and when it was written);
* its process's CPU time and peak resident memory (``getrusage``), and on a GPU the peak
  memory the CUDA allocator reserved as a share of the device's memory;
* with a champion gate, how much better (positive) or worse than the champion the new
  model scored on the gate's metric (the model performance delta).

No torch at import: ``BatchTimer`` imports it only to time steps on a GPU.
"""

from __future__ import annotations

import bisect
import resource
import time
from dataclasses import dataclass, field
from typing import Any

#: step-time bucket bounds in seconds (Prometheus ``le``), from small MLPs on a CPU to
#: large batches on a GPU
BATCH_BOUNDS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
PENDING = 512  # CUDA step timings read back at once


@dataclass
class BatchTimes:
    """A histogram of step times: per-bucket counts (the last one past every bound)."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(BATCH_BOUNDS) + 1))
    total: float = 0.0
    count: int = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BATCH_BOUNDS, seconds)] += 1
        self.total += seconds
        self.count += 1

    def buckets(self) -> list[tuple[str, int]]:
        """Cumulative counts by upper bound, ``+Inf`` last (Prometheus' histogram form)."""
        out, running = [], 0
        for bound, n in zip([*map(repr, BATCH_BOUNDS), "+Inf"], self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out


class BatchTimer:
    """Times steps into ``BatchTimes``: ``start()`` before a step, ``stop()`` after it,
    ``flush()`` at the end of an epoch (reads back pending GPU timings)."""

    def __init__(self, times: BatchTimes, cuda: bool) -> None:
        self.times, self.cuda = times, cuda
        self._started: Any = None
        self._pending: list[tuple[Any, Any]] = []

    def start(self) -> None:
        if self.cuda:
            import torch

            self._started = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
            self._started.record()
        else:
            self._started = time.perf_counter()

    def stop(self) -> None:
        if self.cuda:
            import torch

            ended = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
            ended.record()
            self._pending.append((self._started, ended))
            if len(self._pending) >= PENDING:
                self.flush()
        else:
            self.times.observe(time.perf_counter() - self._started)

    def flush(self) -> None:
        if not self._pending:
            return
        self._pending[-1][1].synchronize()
        for started, ended in self._pending:
            self.times.observe(started.elapsed_time(ended) / 1000.0)
        self._pending.clear()


@dataclass
class Checkpoints:
    write_failures: int = 0  # writes (or s3 copies) that raised
    unusable: int = 0  # found damaged or not matching when the run resumed
    last_good_at: float | None = None  # Unix time the newest good checkpoint was written
    last_good_step: int | None = None


@dataclass
class Telemetry:
    batches: BatchTimes = field(default_factory=BatchTimes)
    checkpoints: Checkpoints = field(default_factory=Checkpoints)
    cpu_seconds: float | None = None
    peak_memory_bytes: float | None = None
    gpu_memory_peak_ratio: float | None = None
    #: (metric, delta) of the champion gate's comparison; delta > 0: the new model is better
    champion_delta: tuple[str, float] | None = None

    def finish(self, cuda_device: Any = None) -> Telemetry:
        """Read the process's resource use as the run ends (rank 0's process)."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.cpu_seconds = usage.ru_utime + usage.ru_stime
        self.peak_memory_bytes = float(usage.ru_maxrss) * 1024  # kilobytes on Linux
        if cuda_device is not None:
            import torch

            total = torch.cuda.get_device_properties(cuda_device).total_memory
            self.gpu_memory_peak_ratio = torch.cuda.max_memory_reserved(cuda_device) / total
        return self
