"""Run records of the local executor: one ``run.json`` per run, and the job's history.

``<dataDir>/runs/<job>/<run id>/run.json`` is written before the trainer starts (status
``running``) and again as each attempt starts and ends. It holds the inputs fingerprint
the run trains, the attempts so far (each with its exit and wall time), the process that
runs it (pid, process group, start time: so a later apply can tell a dead run from a
live one), the resources asked for, and the owner labels. A ``running`` record whose
process is gone is an interrupted run: the next apply with the same fingerprint resumes
it under the same run id, from its newest checkpoint. A run directory is made under a
temporary name (``.<run id>.<pid>-<start>.<random>``) and renamed once its record is
written; one left by a killed apply is removed by the job's next run or its delete.

Statuses: running, succeeded, gated, failed, timed-out, and abandoned (an interrupted run
whose inputs moved on, so it is never resumed).
"""

from __future__ import annotations

import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from providers import leftovers
from providers.base import JSON, PermanentError, ResourceContext
from providers.local import executor, files
from providers.local.settings import LocalSettings
from providers.local.training_config import job_name

RECORD_KIND = "pipeform.local/TrainingRun"
RECORD = "run.json"
RESULT = "result.json"
MAX_HISTORY = 50
FINISHED = ("succeeded", "gated", "failed", "timed-out")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def runs_dir(settings: LocalSettings) -> Path:
    return settings.data_dir / "runs"


class RunStore:
    """The run records of one TrainingJob."""

    def __init__(self, settings: LocalSettings, ctx: ResourceContext) -> None:
        self.settings = settings
        self.ctx = ctx
        self.job_dir = runs_dir(settings) / job_name(ctx)

    def run_dir(self, run_id: str) -> Path:
        return self.job_dir / files.check_name(run_id, "run id")

    def log_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "logs" / "trainer.log"

    def load(self, run_id: str) -> JSON | None:
        path = self.run_dir(run_id) / RECORD
        return files.read_json(path, self.settings.shown(path))

    def records(self, anyone: bool = False) -> list[JSON]:
        """This resource's run records (other states' are left out unless ``anyone``),
        oldest first."""
        found = []
        if self.job_dir.is_dir():
            for path in self.job_dir.glob(f"[!.]*/{RECORD}"):  # not a run being made
                try:
                    record = files.read_json(path, self.settings.shown(path))
                except Exception:  # a damaged record is not ours to judge here
                    continue
                if record is not None and (anyone or files.is_ours(record, self.ctx)):
                    found.append(record)
        return sorted(found, key=lambda r: str(r.get("createdAt") or ""))

    def adopt(self, run_id: str) -> JSON:
        """The record of a run that succeeded, made this resource's (``pipeform import``):
        a run of this job that an earlier state, or a state since lost, made."""
        files.check_name(run_id, "run id")
        record = self.load(run_id)
        if record is None:
            done = [
                str(r["runId"]) for r in self.records(anyone=True) if r.get("status") == "succeeded"
            ]
            where = self.settings.shown(self.job_dir)
            raise PermanentError(
                f"there is no run {run_id} of TrainingJob {self.ctx.name} in {where} to import; "
                + (
                    f"runs that can be imported (newest last): {', '.join(done)}"
                    if done
                    else "it has no run that succeeded"
                )
            )
        status = record.get("status")
        if status != "succeeded" or self.result(run_id) is None:
            raise PermanentError(
                f"run {run_id} of TrainingJob {self.ctx.name} did not succeed ({status}), so it "
                "has no model to adopt: only a run that succeeded can be imported"
            )
        record[files.LABELS] = self.ctx.owner_labels
        self.save(record)
        return record

    def save(self, record: JSON) -> None:
        files.write_json(self.run_dir(str(record["runId"])) / RECORD, record)

    def new(self, fingerprint: str, inputs: JSON, resources: JSON) -> JSON:
        """A new run, recorded ``running``. Its directory is made under a temporary name
        and renamed into place once its record is written, so a kill never leaves a run
        without a record: only a temporary directory that the next run removes."""
        run_id = uuid.uuid4().hex
        files.ensure_dir(self.job_dir, 0o700)
        self.clean()
        temporary = self.job_dir / leftovers.temp_name(f".{run_id}")
        for private in (temporary, temporary / "logs"):  # logs may hold what a run printed
            files.ensure_dir(private, 0o700)
        record: JSON = {
            "kind": RECORD_KIND,
            "runId": run_id,
            "job": self.ctx.name,
            "status": "running",
            "fingerprint": fingerprint,
            "inputs": inputs,
            "attempts": [],
            "failures": 0,
            "pid": None,
            "processStart": None,
            "resources": resources,
            "createdAt": now_iso(),
            files.LABELS: self.ctx.owner_labels,
        }
        files.write_json(temporary / RECORD, record)
        os.rename(temporary, self.run_dir(run_id))
        files.fsync_dir(self.job_dir)
        return record

    def clean(self) -> None:
        """Remove what killed applies left in the job's directory: run directories that
        never got their record, temporary files."""
        leftovers.clean(self.job_dir, ".")

    def succeeded(self, fingerprint: str) -> JSON | None:
        """The job's newest successful run, if it trained exactly these inputs (with its result).

        Only the newest: an older run of the same inputs (inputs changed, then changed back)
        is trained again, so the registry's alias moves to the version trained last.
        """
        done = [r for r in self.records() if r.get("status") == "succeeded"]
        if not done or done[-1].get("fingerprint") != fingerprint:
            return None
        return done[-1] if self.result(str(done[-1]["runId"])) is not None else None

    def running(self) -> list[JSON]:
        return [r for r in self.records() if r.get("status") == "running"]

    def result(self, run_id: str) -> Any:
        """The trainer's RunResult for this run (trainer.config.RunResult), or None."""
        from pydantic import ValidationError

        from trainer.config import RunResult

        path = self.run_dir(run_id) / RESULT
        try:
            result = RunResult.model_validate_json(path.read_bytes())
        except (OSError, ValidationError, ValueError):
            return None
        return result if result.run_id == run_id else None

    def clear_result(self, run_id: str) -> None:
        files.remove(self.run_dir(run_id) / RESULT)

    def remove_ours(self) -> None:
        """Delete this resource's run directories; the job directory too once empty."""
        for record in self.records():
            shutil.rmtree(self.run_dir(str(record["runId"])), ignore_errors=True)
        if self.job_dir.is_dir():
            self.clean()
            rest = [p for p in self.job_dir.iterdir() if p.name != "counts.json"]
            if not rest:
                shutil.rmtree(self.job_dir, ignore_errors=True)

    def prior_counts(self, prior_runs: list[JSON]) -> dict[str, int]:
        """Finished runs of this job by result (for the Pushgateway's cumulative counters)."""
        path = self.job_dir / "counts.json"
        recorded = files.read_json(path, self.settings.shown(path)) or {}
        derived: dict[str, int] = {}
        last: dict[str, str] = {}
        for entry in prior_runs:
            last[str(entry.get("id"))] = str(entry.get("status"))
        for status in last.values():
            key = "failed" if status == "timed-out" else status
            derived[key] = derived.get(key, 0) + 1
        keys = set(recorded) | set(derived)
        return {k: max(int(recorded.get(k, 0)), derived.get(k, 0)) for k in sorted(keys)}

    def count_finished(self, status: str, prior_runs: list[JSON]) -> None:
        counts = self.prior_counts(prior_runs)
        key = "failed" if status == "timed-out" else status
        counts[key] = counts.get(key, 0) + 1
        files.ensure_dir(self.job_dir, 0o700)
        files.write_json(self.job_dir / "counts.json", counts)


def start_attempt(record: JSON) -> JSON:
    attempt = {
        "attempt": len(record["attempts"]) + 1,
        "status": "running",
        "startedAt": now_iso(),
        "finishedAt": None,
        "durationSeconds": None,
        "exitCode": None,
        "signal": None,
        "pid": None,
    }
    record["attempts"].append(attempt)
    record["status"] = "running"
    return attempt


def finish_attempt(
    record: JSON, status: str, seconds: float, code: int | None, signum: int | None
) -> None:
    attempt = record["attempts"][-1]
    attempt.update(
        status=status,
        finishedAt=now_iso(),
        durationSeconds=round(seconds, 3),
        exitCode=code,
        signal=signum,
    )
    record["pid"] = record["processStart"] = None


def elapsed(record: JSON) -> float:
    """Wall time of the run's finished attempts so far."""
    return float(sum(a.get("durationSeconds") or 0.0 for a in record["attempts"]))


def history(prior_runs: list[JSON], records: list[JSON]) -> list[JSON]:
    """The job's runs for its outputs: the prior list, then every attempt started since."""
    out = [dict(r) for r in prior_runs if isinstance(r, dict)]
    newest = max((str(r.get("startedAt") or "") for r in out), default="")
    known = {(r.get("id"), r.get("attempt")) for r in out}
    added = []
    for record in records:
        for attempt in record.get("attempts") or []:
            key = (record["runId"], attempt["attempt"])
            if attempt.get("finishedAt") is None or key in known:
                continue
            if str(attempt.get("startedAt") or "") <= newest:
                continue
            added.append(
                {
                    "id": record["runId"],
                    "status": attempt["status"],
                    "startedAt": attempt["startedAt"],
                    "finishedAt": attempt["finishedAt"],
                    "durationSeconds": attempt["durationSeconds"],
                    "attempt": attempt["attempt"],
                    "resources": record.get("resources") or {},
                }
            )
    added.sort(key=lambda r: str(r["startedAt"]))
    return (out + added)[-MAX_HISTORY:]


def outcome(exit_: executor.Exit, result: Any) -> str:
    """succeeded, gated, bad-input, timed-out, interrupted, preempted, or retry."""
    from trainer.config import EXIT_BAD_INPUT, EXIT_GATED, EXIT_OK, PREEMPTED_EXITS

    if exit_.timed_out:
        return "timed-out"
    status = result.status if result is not None else None
    if exit_.code == EXIT_OK and status == "succeeded":
        return "succeeded"
    if status == "gated" or exit_.code == EXIT_GATED:
        return "gated"
    if exit_.code == EXIT_BAD_INPUT:
        return "bad-input"
    if exit_.interrupted:
        return "interrupted"
    if exit_.code in PREEMPTED_EXITS or status == "preempted":  # 143 (config v4) or 5
        return "preempted"
    return "retry"  # crashed, killed by a signal


def attempt_status(outcome: str) -> str:
    if outcome == "preempted":
        return "preempted"
    return outcome if outcome in ("succeeded", "gated", "timed-out") else "failed"


def gate_text(result: Any) -> str:
    """The failed gates with their values: 'auc 0.612 is below the gate's min 0.7'."""
    failed = []
    for gate in (result.gates if result is not None else []) or []:
        if gate.get("passed", True):
            continue
        metric, value = gate.get("metric"), gate.get("value")
        shown = f"{value:.4g}" if isinstance(value, int | float) else "missing"
        bounds = [
            f"min {gate['min']:g}" if gate.get("min") is not None else "",
            f"max {gate['max']:g}" if gate.get("max") is not None else "",
        ]
        scoped = gate.get("slice") or gate.get("sensitive")
        where = f"; {gate['where']}" if scoped and gate.get("where") else ""
        failed.append(f"{metric} {shown} (gate: {' '.join(b for b in bounds if b)}{where})")
    gates = "; ".join(failed) or "a gate failed"
    return f"the model failed its evaluation gates: {gates}; nothing was registered"
