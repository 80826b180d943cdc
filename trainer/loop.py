"""The training loop: epochs of index-sliced batches, evaluation, early stopping, checkpoints.

Determinism: the seed seeds torch's RNG before the model is built, deterministic
algorithms are on, and each epoch's order is ``DistributedSampler(seed).set_epoch(epoch)``
(a permutation drawn from seed + epoch, sharded by rank), so a position is just
(epoch, batch within the epoch) and resuming replays the rest of the epoch exactly. A
checkpoint holds the model, optimizer, scheduler, torch RNG states, that position, and the
early-stopping state (best metric and weights, epochs without improvement).

Checkpoints are taken every ``every_steps`` steps or ``every_seconds`` seconds (else at
each epoch's end), when SIGTERM arrived (then ``Preempted`` is raised), and once when
training ends. Under DDP the stop and save decisions are OR-ed over ranks every step so
all ranks stop at the same step, rank 0 evaluates and broadcasts, and only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DistributedSampler

from trainer import checkpoint, distributed, metrics, schedule
from trainer.config import RunConfig
from trainer.data import Split, TrainingData
from trainer.errors import Preempted, TrainerError
from trainer.models import build_model
from trainer.progress import Reporter
from trainer.remote import CheckpointMirror
from trainer.telemetry import BatchTimer, Telemetry

#: a test hook: "sigterm@<step>" or "sigkill@<step>", optionally ":rank<N>" (default rank 0);
#: the process signals itself after that global step
FAULT_ENV = "PIPEFORM_TRAINER_FAULT"
CHECKPOINT_FORMAT = 1
_EVAL_BATCH = 8192


@dataclass
class TrainState:
    """Where training is; everything here goes into a checkpoint."""

    epoch: int = 0  # the epoch in progress (0-based); == epochs when done
    step_in_epoch: int = 0  # batches of that epoch already trained
    global_step: int = 0
    finished: bool = False
    best: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    epoch_loss_sum: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Outcome:
    model: nn.Module  # unwrapped, best weights restored when early stopping chose them
    state: TrainState
    samples_per_second: float | None
    first_step_seconds: float | None
    resumed_from: str | None


def seed_everything(seed: int, device: torch.device) -> None:
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")


def config_digest(config: RunConfig, world_size: int) -> str:
    """What a checkpoint must match to be resumed: the model, data, optimisation, layout."""
    relevant = {
        "model": config.model.model_dump(mode="json"),
        "hyperparameters": config.hyperparameters.model_dump(mode="json"),
        "train": config.inputs.train.sha256,
        "validation": config.inputs.validation.sha256,
        "features": config.inputs.features,
        "label": config.inputs.label,
        "world_size": world_size,
    }
    text = json.dumps(relevant, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _fault() -> tuple[int, int, signal.Signals] | None:
    wanted = os.environ.get(FAULT_ENV, "")
    if "@" not in wanted:
        return None
    kind, _, where = wanted.partition("@")
    step, _, rank = where.partition(":rank")
    signum = signal.SIGKILL if kind == "sigkill" else signal.SIGTERM
    return int(step), int(rank or 0), signum


def predict(model: nn.Module, x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The model's raw outputs (float32) for x, in eval mode, batch by batch."""
    was_training = model.training
    model.eval()
    outputs = []
    with torch.no_grad(), _autocast(device):
        for start in range(0, int(x.shape[0]), _EVAL_BATCH):
            outputs.append(model(x[start : start + _EVAL_BATCH]).float())
    model.train(was_training)
    return torch.cat(outputs)


def evaluate(model: nn.Module, split: Split, task: str, device: torch.device) -> dict[str, float]:
    """Every metric of the task on split, in eval mode, batch by batch."""
    return metrics.compute_metrics(task, predict(model, split.x, device), split.y)


def _autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def sampler_order(sampler: DistributedSampler[int], rows: int) -> torch.Tensor:
    """The indices ``iter(sampler)`` yields (shuffle=True, drop_last=False), as a tensor."""
    generator = torch.Generator()
    generator.manual_seed(sampler.seed + sampler.epoch)
    order = torch.randperm(rows, generator=generator)
    padding = sampler.total_size - rows
    if padding > 0:
        repeats = -(-padding // rows)
        order = torch.cat([order, order.repeat(repeats)[:padding]])
    return order[sampler.rank : sampler.total_size : sampler.num_replicas]


def _mean(total: torch.Tensor, count: int) -> float:
    return float(total.item()) / count


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()}


class Trainer:
    """One run's training on one rank."""

    def __init__(
        self,
        config: RunConfig,
        data: TrainingData,
        ctx: distributed.Context,
        reporter: Reporter,
        stop: checkpoint.StopFlag,
        process_started: float,
    ) -> None:
        self.config, self.ctx, self.reporter, self.stop = config, ctx, reporter, stop
        self.hp = config.hyperparameters
        self.task = config.model.task
        self.process_started = process_started
        seed_everything(self.hp.seed, ctx.device)
        self.model = build_model(config.model, data.n_inputs, data.n_outputs).to(ctx.device)
        self.train = Split(data.train.x.to(ctx.device), data.train.y.to(ctx.device))
        self.validation = Split(data.validation.x.to(ctx.device), data.validation.y.to(ctx.device))
        self.sampler: DistributedSampler[int] = DistributedSampler(
            range(self.train.rows),  # type: ignore[arg-type]
            num_replicas=ctx.world_size,
            rank=ctx.rank,
            shuffle=True,
            seed=self.hp.seed,
        )
        self.steps_per_epoch = -(-len(self.sampler) // self.hp.batch_size)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=self.hp.learning_rate, weight_decay=self.hp.weight_decay
        )
        multiplier = schedule.lr_multiplier(
            self.hp.scheduler, self.hp.warmup_steps, self.hp.epochs * self.steps_per_epoch
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, multiplier)
        self.state = TrainState()
        self.digest = config_digest(config, ctx.world_size)
        self.checkpoint_dir = Path(config.checkpoint.dir)
        #: copies each checkpoint to an s3:// checkpoint directory (trainer.remote)
        self.mirror: CheckpointMirror | None = None
        self.early = self.hp.early_stopping
        self.early_mode = (
            (self.early.mode or metrics.mode_for(self.early.metric)) if self.early else "min"
        )
        if self.early and self.early.metric not in metrics.METRICS_BY_TASK[self.task]:
            raise TrainerError(
                f"early_stopping.metric {self.early.metric!r} does not exist for {self.task}; use "
                f"one of {', '.join(metrics.METRICS_BY_TASK[self.task])}"
            )
        self.fault = _fault()
        self.first_step_seconds: float | None = None
        self.resumed_from: str | None = None
        self._samples = 0
        self._train_seconds = 0.0
        self._last_save_time = time.monotonic()
        self._loss_sum = torch.zeros((), dtype=torch.float64, device=ctx.device)
        #: step times, checkpoints and resource use, pushed with the run's metrics (rank 0)
        self.telemetry = Telemetry()
        self._timer = BatchTimer(self.telemetry.batches, ctx.cuda)

    # -- checkpoints ---------------------------------------------------------------------

    def _accept(self, payload: dict[str, Any]) -> str | None:
        if payload.get("format") != CHECKPOINT_FORMAT:
            return f"it has format {payload.get('format')!r}, not {CHECKPOINT_FORMAT}"
        if payload.get("config_digest") != self.digest:
            return "it was written for another model, data, hyperparameters or worker count"
        return None

    def resume(self) -> str | None:
        """Load the newest valid checkpoint (rank 0 picks it); its path, or None."""
        chosen: str | None = None
        if self.ctx.is_main:
            found = checkpoint.latest(self.checkpoint_dir, self._accept)
            for skipped in found.skipped:
                self.reporter.event(
                    "checkpoint-skipped", path=str(skipped.path), reason=skipped.reason
                )
            self.telemetry.checkpoints.unusable += len(found.skipped)
            chosen = str(found.path) if found.path else None
        chosen = distributed.broadcast(self.ctx, chosen)
        if chosen is None:
            return None
        payload = torch.load(chosen, map_location="cpu", weights_only=True)
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        torch.set_rng_state(payload["rng"]["torch"])
        if self.ctx.cuda and payload["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(payload["rng"]["cuda"], self.ctx.device)
        saved = dict(payload["state"])
        self.state = TrainState(**saved)
        self.reporter.event(
            "resumed", checkpoint=chosen, epoch=self.state.epoch, step=self.state.global_step
        )
        if self.ctx.is_main:
            good = self.telemetry.checkpoints
            good.last_good_at, good.last_good_step = (
                Path(chosen).stat().st_mtime,
                self.state.global_step,
            )
        return chosen

    def _payload(self) -> dict[str, Any]:
        cuda_rng = torch.cuda.get_rng_state(self.ctx.device) if self.ctx.cuda else None
        if self.state.step_in_epoch:  # mid-epoch: the epoch's loss so far
            self.state.epoch_loss_sum = float(self._loss_sum.item())
        state = dict(self.state.__dict__)
        return {
            "format": CHECKPOINT_FORMAT,
            "config_digest": self.digest,
            "run_id": self.config.run_id,
            "model": _cpu_state(self.model),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "cuda": cuda_rng},
            "sampler": {"seed": self.hp.seed, "epoch": self.state.epoch},
            "state": state,
        }

    def save(self, reason: str) -> str | None:
        """Rank 0 writes a checkpoint of the current position; every rank returns its path."""
        path: str | None = None
        if self.ctx.is_main:
            started = time.monotonic()
            good = self.telemetry.checkpoints
            try:
                written = checkpoint.save(
                    self.checkpoint_dir,
                    self.state.global_step,
                    self._payload(),
                    self.config.checkpoint.keep,
                )
                if self.mirror is not None:
                    self.mirror.push(written)
            except Exception:
                good.write_failures += 1
                raise
            path = str(written)
            good.last_good_at, good.last_good_step = time.time(), self.state.global_step
            self.reporter.event(
                "checkpoint",
                path=path,
                reason=reason,
                epoch=self.state.epoch,
                step=self.state.global_step,
                seconds=round(time.monotonic() - started, 4),
            )
        self._last_save_time = time.monotonic()
        return path

    def _save_due(self) -> bool:
        every_steps = self.config.checkpoint.every_steps
        if every_steps and self.state.global_step % every_steps == 0:
            return True
        every_seconds = self.config.checkpoint.every_seconds
        return bool(every_seconds) and time.monotonic() - self._last_save_time >= (
            every_seconds or 0
        )

    # -- training ------------------------------------------------------------------------

    def _epoch_order(self, epoch: int) -> torch.Tensor:
        """This rank's row order for the epoch: ``list(sampler)`` after ``set_epoch(epoch)``.

        Computed with tensor operations (as ``DistributedSampler.__iter__`` does with Python
        lists: a permutation from seed + epoch, padded by repeating its head to a multiple
        of the world size, every world_size-th row from rank), which is ~40x faster than
        listing 10^5 indices; tests/trainer/test_loop.py checks that the two agree.
        """
        self.sampler.set_epoch(epoch)
        return sampler_order(self.sampler, self.train.rows).to(self.ctx.device)

    def _batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self._epoch_order(epoch)
        size = self.hp.batch_size
        for batch in range(self.state.step_in_epoch, self.steps_per_epoch):
            index = order[batch * size : (batch + 1) * size]
            yield self.train.x.index_select(0, index), self.train.y.index_select(0, index)

    def _step(self, wrapped: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with _autocast(self.ctx.device):
            outputs = wrapped(x)
        loss = metrics.task_loss(self.task, outputs.float(), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        if self.hp.gradient_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.hp.gradient_clip)
        self.optimizer.step()
        self.scheduler.step()
        return loss.detach()

    def _after_step(self) -> None:
        """Checkpoint when due; on SIGTERM checkpoint and raise Preempted."""
        if self.first_step_seconds is None:
            self.first_step_seconds = time.time() - self.process_started
            self.reporter.event("first-step", seconds=round(self.first_step_seconds, 4))
        if (
            self.fault
            and self.state.global_step == self.fault[0]
            and self.ctx.rank == self.fault[1]
        ):
            os.kill(os.getpid(), self.fault[2])
        stop, due = distributed.any_true(self.ctx, self.stop.requested, self._save_due())
        if stop:
            path = self.save("preempted")
            distributed.barrier(self.ctx)  # no rank leaves before rank 0 has written
            raise Preempted(path)
        if due:
            self.save("schedule")

    def _train_epoch(self, wrapped: nn.Module, epoch: int) -> float:
        """Train the rest of the epoch; its mean training loss (this rank's batches)."""
        self.reporter.start_epoch(
            epoch, self.hp.epochs, self.steps_per_epoch, self.state.step_in_epoch
        )
        loss_sum = torch.tensor(
            self.state.epoch_loss_sum, dtype=torch.float64, device=self.ctx.device
        )
        self._loss_sum = loss_sum
        started, rows = time.monotonic(), 0
        world = self.ctx.world_size
        timer = self._timer
        for x, y in self._batches(epoch):
            timer.start()
            loss_sum += self._step(wrapped, x, y)
            timer.stop()
            rows += int(x.shape[0]) * world
            self.state.step_in_epoch += 1
            self.state.global_step += 1
            if self.reporter.interactive:
                done, elapsed = self.state.step_in_epoch, max(1e-9, time.monotonic() - started)
                self.reporter.step(
                    done,
                    functools.partial(_mean, loss_sum, done),
                    rows / elapsed,
                )
            self._after_step()
        self._train_seconds += time.monotonic() - started
        self._samples += rows
        timer.flush()
        return float(loss_sum.item()) / max(1, self.state.step_in_epoch)

    def _end_epoch(self, epoch: int, train_loss: float, epoch_seconds: float) -> bool:
        """Evaluate, update early stopping; True when training should stop."""
        found = distributed.broadcast(
            self.ctx,
            evaluate(self.model, self.validation, self.task, self.ctx.device)
            if self.ctx.is_main
            else None,
        )
        stop = False
        if self.early:
            value = found.get(self.early.metric)
            if value is not None and metrics.is_better(value, self.state.best, self.early_mode):
                self.state.best, self.state.best_epoch, self.state.bad_epochs = value, epoch, 0
                self.state.best_state = _cpu_state(self.model)
            else:
                self.state.bad_epochs += 1
            stop = self.state.bad_epochs >= self.early.patience
        rate = self.samples_per_second()
        summary = {"epoch": epoch + 1, "loss": train_loss, "metrics": found}
        self.state.history.append(summary)
        self.state.epoch, self.state.step_in_epoch, self.state.epoch_loss_sum = epoch + 1, 0, 0.0
        self.reporter.event(
            "epoch",
            epoch=epoch + 1,
            epochs=self.hp.epochs,
            step=self.state.global_step,
            loss=train_loss,
            metrics=found,
            samples_per_s=rate,
            seconds=round(epoch_seconds, 4),
        )
        return stop

    def samples_per_second(self) -> float | None:
        """Training throughput of this attempt (all ranks' samples; evaluation excluded)."""
        return self._samples / self._train_seconds if self._train_seconds else None

    def run(self) -> Outcome:
        self.resumed_from = resumed_from = self.resume()
        wrapped: nn.Module = self.model
        if self.ctx.distributed:
            wrapped = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.ctx.local_rank] if self.ctx.cuda else None
            )
        self.model.train()
        scheduled = bool(self.config.checkpoint.every_steps or self.config.checkpoint.every_seconds)
        already_finished = self.state.finished
        while not self.state.finished and self.state.epoch < self.hp.epochs:
            epoch = self.state.epoch
            started = time.monotonic()
            train_loss = self._train_epoch(wrapped, epoch)
            if self._end_epoch(epoch, train_loss, time.monotonic() - started):
                self.state.finished = True
                best_epoch = (self.state.best_epoch or 0) + 1
                self.reporter.event(
                    "early-stopped", epoch=epoch + 1, best=self.state.best, best_epoch=best_epoch
                )
            elif not scheduled and self.state.epoch < self.hp.epochs:
                self.save("epoch")
        if not already_finished:  # a retry (say, of a failed registration) starts from here
            self.state.finished = True
            self.save("finished")
        if self.state.best_state is not None:
            self.model.load_state_dict(self.state.best_state)
        return Outcome(
            self.model, self.state, self.samples_per_second(), self.first_step_seconds, resumed_from
        )
