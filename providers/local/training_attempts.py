"""One training run's attempts: launch the trainer, watch it, retry from the newest
checkpoint, and say how it ended."""

from __future__ import annotations

import os
import time
from typing import Any

from providers.base import (
    JSON,
    PermanentError,
)
from providers.local import container, executor, files
from providers.local import training_runs as runs
from providers.local.training_config import (
    JobResources,
    RunPlace,
    duration_text,
    max_duration,
    redact,
)

RETRY_PAUSE_SECONDS = 0.5


class Attempts:
    """One run: attempts until it succeeds, fails for good, or runs out of time or retries."""

    def __init__(
        self,
        store: runs.RunStore,
        record: JSON,
        place: RunPlace,
        env: dict[str, str],
        secrets: list[str],
        spec: JSON,
        asked: JobResources,
        prior_runs: list[JSON],
        in_container: container.ContainerRun | None = None,
    ) -> None:
        self.store, self.record, self.place = store, record, place
        self.env, self.secrets, self.spec, self.prior_runs = env, secrets, spec, prior_runs
        self.address = store.ctx.address
        self.run_id = place.run_id
        self.log = store.log_path(self.run_id)
        self.limit = max_duration(spec)
        self.retries = int(spec.get("retries", 2))
        self.container = in_container
        if in_container is None:
            self.command = executor.trainer_command(place.config_path, asked.workers)
        else:
            self.command = container.command(in_container)

    def run(self) -> None:
        while True:
            remaining = self.limit - runs.elapsed(self.record)
            if remaining <= 0:
                self._finish_run("timed-out")
                raise self._timed_out()
            exit_, result = self._attempt(remaining)
            outcome = runs.outcome(exit_, result)
            runs.finish_attempt(
                self.record, runs.attempt_status(outcome), exit_.seconds, exit_.code, exit_.signal
            )
            if outcome == "succeeded":
                self._finish_run("succeeded")
                return
            if outcome == "interrupted":  # stays "running": the next apply resumes it
                self.store.save(self.record)
                raise PermanentError(
                    f"{self.address}: interrupted; run {self.run_id} stopped at its newest "
                    "checkpoint, and the next apply resumes it"
                )
            if outcome == "timed-out":
                self._finish_run("timed-out")
                raise self._timed_out()
            if outcome == "gated":
                self._finish_run("gated")
                raise PermanentError(f"{self.address}: {runs.gate_text(result)}; {self._where()}")
            if outcome == "bad-input":
                self._finish_run("failed")
                raise self._failed("its input tables were refused")
            # a crash, or (locally) a preemption: spec.retries counts both here
            self.record["failures"] = int(self.record.get("failures") or 0) + 1
            if self.record["failures"] > self.retries:
                self._finish_run("failed")
                raise self._failed(
                    f"it failed {self.record['failures']} times (retries: {self.retries})"
                )
            self.store.save(self.record)
            executor.notify(
                self.address,
                {
                    "event": "retrying",
                    "runId": self.run_id,
                    "attempt": len(self.record["attempts"]) + 1,
                },
            )
            time.sleep(RETRY_PAUSE_SECONDS)

    def _attempt(self, remaining: float) -> tuple[executor.Exit, Any]:
        attempt = runs.start_attempt(self.record)
        self.store.clear_result(self.run_id)
        self.store.save(self.record)  # "running" is on disk before the process exists
        files.ensure_dir(self.log.parent, 0o700)
        fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as out:
            out.write(
                f"=== attempt {attempt['attempt']} of run {self.run_id} at {attempt['startedAt']} ===\n"
            )
        if self.container is not None:  # a leftover of a pipeform killed mid-run
            container.remove(self.container.name)
            with container.handed_over((self.place.run_dir, *self.container.read_write)):
                return self._launch_and_watch(attempt, remaining)
        return self._launch_and_watch(attempt, remaining)

    def _launch_and_watch(self, attempt: JSON, remaining: float) -> tuple[executor.Exit, Any]:
        proc = executor.launch(self.command, self.env, self.place.run_dir, self.log)
        self.record["pid"] = attempt["pid"] = proc.pid
        self.record["processStart"] = executor.process_start(proc.pid)
        self.store.save(self.record)
        executor.notify(
            self.address,
            {
                "event": "started",
                "runId": self.run_id,
                "attempt": attempt["attempt"],
                "pid": proc.pid,
            },
        )
        try:
            exit_ = executor.watch(proc, time.monotonic() + remaining, self.log, self.address)
        finally:
            if self.container is not None:  # podman run itself killed: its container stays
                container.remove(self.container.name)
        return exit_, self.store.result(self.run_id)

    def _finish_run(self, status: str) -> None:
        self.record["status"] = status
        self.store.save(self.record)
        self.store.count_finished(status, self.prior_runs)

    def _where(self) -> str:
        return f"run {self.run_id}, log {self.store.settings.shown(self.log)}"

    def _timed_out(self) -> PermanentError:
        return PermanentError(
            f"{self.address}: run {self.run_id} timed out after {duration_text(self.limit)} "
            "(maxDuration); raise spec.maxDuration, or make the run shorter (fewer epochs, a "
            f"smaller model, more resources); log: {self.store.settings.shown(self.log)}"
        )

    def _failed(self, why: str) -> PermanentError:
        tail = redact("\n".join(executor.log_tail(self.log)), self.secrets)
        shown = "\n  ".join(tail.splitlines()) or "(the trainer printed nothing)"
        return PermanentError(
            f"{self.address}: training failed: {why} ({self._where()}). Last lines:\n  {shown}"
        )
