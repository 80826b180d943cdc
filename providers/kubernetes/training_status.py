"""How a training Job or PyTorchJob is doing, read from its status and its pods.

Pure functions over the live objects (plain JSON as the API server returns them):

- ``pods_of``: each pod as a ``PodView`` (phase, exit code, termination message, whether
  it was disrupted: the ``DisruptionTarget`` condition, or the trainer's preemption exit
  143), newest last;
- ``progress_of``: pending (and why: unschedulable, pulling the image...), running n/m
  pods, succeeded, or failed with the reason (``BackoffLimitExceeded``,
  ``PodFailurePolicy``, ``DeadlineExceeded``) and message;
- ``result_pod``: the pod whose termination message holds the run's result (the Job's
  succeeded pod; a PyTorchJob's Master).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from providers.base import JSON

JOB_LABEL = "batch.kubernetes.io/job-name"
PYTORCH_JOB_LABEL = "training.kubeflow.org/job-name"
REPLICA_TYPE_LABEL = "training.kubeflow.org/replica-type"
FINISHED = ("succeeded", "failed")


@dataclass(frozen=True)
class PodView:
    """One pod of a run, as pipeform needs it."""

    name: str
    uid: str
    phase: str  # Pending, Running, Succeeded, Failed, Unknown
    role: str  # master, worker, or "" for a Job's pod
    exit_code: int | None
    message: str  # the container's termination message ("" when none)
    reason: str  # the pod's or the container's reason
    disrupted: bool  # DisruptionTarget: preempted, evicted, the node drained
    started_at: str | None
    finished_at: str | None
    waiting: str  # why a pending container waits (ContainerCreating, ImagePullBackOff...)

    @property
    def finished(self) -> bool:
        return self.phase in ("Succeeded", "Failed")

    @property
    def preempted(self) -> bool:
        from trainer.config import PREEMPTED_EXITS

        return self.phase == "Failed" and (self.disrupted or self.exit_code in PREEMPTED_EXITS)


def _condition(obj: JSON, kind: str) -> JSON | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            return dict(condition)
    return None


def pod_view(pod: JSON) -> PodView:
    metadata = pod.get("metadata") or {}
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    state: JSON = (statuses[0].get("state") or {}) if statuses else {}
    terminated: JSON = state.get("terminated") or {}
    waiting: JSON = state.get("waiting") or {}
    code = terminated.get("exitCode")
    disruption = _condition(pod, "DisruptionTarget")
    unschedulable = next(
        (
            c
            for c in status.get("conditions") or []
            if c.get("type") == "PodScheduled" and c.get("status") == "False"
        ),
        None,
    )
    why_waiting = str(waiting.get("reason") or "")
    if unschedulable is not None:
        why_waiting = f"{unschedulable.get('reason') or 'Unschedulable'}: {unschedulable.get('message') or ''}".strip(
            ": "
        )
    return PodView(
        name=str(metadata.get("name") or ""),
        uid=str(metadata.get("uid") or metadata.get("name") or ""),
        phase=str(status.get("phase") or "Pending"),
        role=str((metadata.get("labels") or {}).get(REPLICA_TYPE_LABEL) or "").lower(),
        exit_code=int(code) if isinstance(code, int) else None,
        message=str(terminated.get("message") or ""),
        reason=str(
            (disruption or {}).get("reason")
            or status.get("reason")
            or terminated.get("reason")
            or ""
        ),
        disrupted=disruption is not None,
        started_at=terminated.get("startedAt") or status.get("startTime"),
        finished_at=terminated.get("finishedAt"),
        waiting=why_waiting,
    )


def pods_of(items: list[JSON]) -> list[PodView]:
    """The pods, the one changed last last (so a pod that ended comes after those that
    ended before it)."""

    def changed(pod: JSON) -> int:
        version = str((pod.get("metadata") or {}).get("resourceVersion") or "0")
        return int(version) if version.isdigit() else 0

    return [pod_view(p) for p in sorted(items, key=changed)]


def restart_of(live: JSON) -> str | None:
    """A PyTorchJob's current restart (the operator recreates a pod that exited 128-255
    under ``restartPolicy: ExitCode``, such as a preempted trainer's 143): the Restarting
    condition's transition time, or None."""
    restarting = _condition(live, "Restarting")
    if restarting is None:
        return None
    return str(restarting.get("lastTransitionTime") or restarting.get("lastUpdateTime") or "?")


def pod_selector(kind: str, name: str) -> str:
    """The label selector of a run's pods (set by the Job controller or the operator)."""
    return f"{PYTORCH_JOB_LABEL if kind == 'PyTorchJob' else JOB_LABEL}={name}"


@dataclass(frozen=True)
class Progress:
    """Where a run stands, with its one progress line."""

    state: str  # pending, running, succeeded, failed
    line: str
    reason: str = ""  # why it failed (the Job's condition reason)
    message: str = ""

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


def expected_pods(live: JSON) -> int:
    spec = live.get("spec") or {}
    if live.get("kind") == "PyTorchJob":
        replicas = spec.get("pytorchReplicaSpecs") or {}
        return sum(int((r or {}).get("replicas") or 0) for r in replicas.values()) or 1
    return int(spec.get("parallelism") or 1)


def progress_of(live: JSON, pods: list[PodView]) -> Progress:
    """The run's state from the Job's (or PyTorchJob's) conditions and its pods."""
    shown = f"{live.get('kind')} {(live.get('metadata') or {}).get('namespace')}/{(live.get('metadata') or {}).get('name')}"
    done = _condition(live, "Complete") or _condition(live, "Succeeded")
    if done is not None:
        return Progress("succeeded", f"{shown} succeeded")
    failed = _condition(live, "Failed")
    if failed is not None:
        reason, message = str(failed.get("reason") or ""), str(failed.get("message") or "")
        said = f": {message}" if message else ""
        return Progress(
            "failed", f"{shown} failed ({reason or 'no reason given'}){said}", reason, message
        )
    running = [p for p in pods if p.phase == "Running"]
    wanted = expected_pods(live)
    preempted = [p for p in pods if p.preempted]
    note = f"; {len(preempted)} pod(s) preempted, not counted against retries" if preempted else ""
    restarting = _condition(live, "Restarting")
    if restarting is not None and not running:
        return Progress("running", f"{shown} restarting ({restarting.get('reason') or ''}){note}")
    if running:
        return Progress("running", f"{shown} running {len(running)}/{wanted} pods{note}")
    pending = [p for p in pods if p.phase == "Pending"]
    why = next((p.waiting for p in pending if p.waiting), "")
    return Progress("pending", f"{shown} pending" + (f" ({why})" if why else "") + note)


def result_pod(live: JSON, pods: list[PodView]) -> PodView | None:
    """The pod whose termination message is the run's result: the newest succeeded pod (a
    PyTorchJob's Master, where rank 0 runs), else the newest failed one."""
    if live.get("kind") == "PyTorchJob":
        masters = [p for p in pods if p.role == "master"]
        pods = masters or pods
    for phase in ("Succeeded", "Failed"):
        found = [p for p in pods if p.phase == phase]
        if found:
            return found[-1]
    return None


def message_of(pod: PodView | None) -> dict[str, Any] | None:
    """The trainer's compact result in a pod's termination message, or None."""
    if pod is None or not pod.message:
        return None
    from trainer.termination import parse_message

    return parse_message(pod.message)
