"""The Kubeflow training operator, as test controls for PyTorchJobs.

Pods ``<job>-master-0`` and ``<job>-worker-<i>`` from ``spec.pytorchReplicaSpecs``,
labelled ``training.kubeflow.org/{job-name,replica-type,replica-index,operator-name}``;
``status.conditions`` (Created, Running, Restarting, Succeeded, Failed, with the operator's
rule that Running and Restarting replace each other and a finished job's Running turns
False) and ``status.replicaStatuses`` ({"Master": {"active", "succeeded", "failed"}}).
A failed pod restarts per its replica's restartPolicy: ExitCode restarts exit codes
128-255 and fails the job on 1-127; OnFailure/Always restart; Never fails. Restarts beyond
``runPolicy.backoffLimit`` fail the job.
"""

from __future__ import annotations

from typing import Any

from tests.kubernetes.apiserver.pods import ACTIVE, PODS, PodControls
from tests.kubernetes.apiserver.resources import resource
from tests.kubernetes.apiserver.store import now

PYTORCHJOBS = resource("kubeflow.org", "v1", "pytorchjobs")
OPERATOR = "training-operator"
LABEL = "training.kubeflow.org/"


def _set_condition(
    conditions: list[dict[str, Any]], kind: str, reason: str, message: str
) -> list[dict[str, Any]]:
    kept = []
    for condition in conditions:
        if condition["type"] == kind:
            continue
        if {kind, condition["type"]} == {"Running", "Restarting"}:
            continue
        if kind in ("Succeeded", "Failed") and condition["type"] == "Running":
            condition = {**condition, "status": "False"}
        kept.append(condition)
    stamp = now()
    kept.append(
        {
            "type": kind,
            "status": "True",
            "reason": reason,
            "message": message,
            "lastUpdateTime": stamp,
            "lastTransitionTime": stamp,
        }
    )
    return kept


class PyTorchLifecycle(PodControls):
    def _pytorchjob(self, ns: str, name: str) -> dict[str, Any]:
        return self.unfinished(PYTORCHJOBS, ns, name, ("Succeeded", "Failed"))

    def _replicas(self, job: dict[str, Any]) -> list[tuple[str, int, dict[str, Any]]]:
        """(replica type, index, replica spec) for every pod the job has."""
        specs = (job.get("spec") or {}).get("pytorchReplicaSpecs") or {}
        return [
            (kind, index, spec)
            for kind, spec in sorted(specs.items(), key=lambda kv: kv[0] != "Master")
            for index in range(int(spec.get("replicas", 1)))
        ]

    def _replica_pod(
        self, ns: str, job: dict[str, Any], kind: str, index: int, spec: dict[str, Any]
    ) -> dict[str, Any]:
        name = job["metadata"]["name"]
        pod_name = f"{name}-{kind.lower()}-{index}"
        existing = self.store.find(PODS, ns, pod_name)
        if existing is not None and (existing.get("status") or {}).get("phase") in ACTIVE:
            return existing
        if existing is not None:
            self.store.delete(PODS, ns, pod_name)
        labels = {
            f"{LABEL}job-name": name,
            f"{LABEL}replica-type": kind.lower(),
            f"{LABEL}replica-index": str(index),
            f"{LABEL}operator-name": "pytorchjob-controller",
        }
        if kind == "Master":
            labels[f"{LABEL}job-role"] = "master"
        return self.create_pod(ns, pod_name, job, spec.get("template") or {}, labels)

    def _pytorch_status(
        self,
        ns: str,
        job: dict[str, Any],
        kind: str | None,
        reason: str,
        message: str,
        counts: dict[str, dict[str, int]],
        **fields: Any,
    ) -> None:
        status = job.get("status") or {}
        conditions = list(status.get("conditions") or [])
        if not any(c["type"] == "Created" for c in conditions):
            conditions = _set_condition(
                conditions,
                "Created",
                "PyTorchJobCreated",
                f"PyTorchJob {ns}/{job['metadata']['name']} is created.",
            )
        if kind is not None:
            conditions = _set_condition(conditions, kind, reason, message)
        body = {
            "conditions": conditions,
            "replicaStatuses": counts,
            "startTime": status.get("startTime") or now(),
            **fields,
        }
        self.set_status(PYTORCHJOBS, ns, job["metadata"]["name"], body, OPERATOR)

    def _counts(self, job: dict[str, Any], phase: str) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for kind, _, _ in self._replicas(job):
            entry = counts.setdefault(kind, {})
            key = {"Running": "active", "Pending": "active", "Succeeded": "succeeded"}[phase]
            entry[key] = entry.get(key, 0) + 1
        return counts

    def pytorchjob_running(self, ns: str, name: str) -> list[str]:
        """Every replica's pod Running; conditions Created + Running. The pod names."""
        job = self._pytorchjob(ns, name)
        names = []
        for kind, index, spec in self._replicas(job):
            pod = self._replica_pod(ns, job, kind, index, spec)
            self.set_pod_phase(ns, pod, "Running")
            names.append(pod["metadata"]["name"])
        self._pytorch_status(
            ns,
            job,
            "Running",
            "PyTorchJobRunning",
            f"PyTorchJob {ns}/{name} is running.",
            self._counts(job, "Running"),
        )
        return names

    def pytorchjob_succeeded(
        self, ns: str, name: str, message: str = "", log: str | None = None
    ) -> list[str]:
        """Every pod Succeeded (the master's termination message ``message``); condition
        Succeeded, Running turned False."""
        job = self._pytorchjob(ns, name)
        names = []
        for kind, index, spec in self._replicas(job):
            pod = self._replica_pod(ns, job, kind, index, spec)
            master = kind == "Master" and index == 0
            self.set_pod_phase(
                ns, pod, "Succeeded", 0, message if master else "", log if master else None
            )
            names.append(pod["metadata"]["name"])
        self._pytorch_status(
            ns,
            job,
            "Succeeded",
            "PyTorchJobSucceeded",
            f"PyTorchJob {ns}/{name} successfully completed.",
            self._counts(job, "Succeeded"),
            completionTime=now(),
        )
        return names

    def pytorchjob_pod_failed(
        self,
        ns: str,
        name: str,
        exit_code: int,
        message: str = "",
        log: str | None = None,
        replica: str = "Master",
        index: int = 0,
    ) -> str:
        """The pod of ``replica``/``index`` fails with ``exit_code``; returns "Restarting"
        (a new pod Pending) or "Failed", as the replica's restartPolicy decides."""
        job = self._pytorchjob(ns, name)
        spec = ((job.get("spec") or {}).get("pytorchReplicaSpecs") or {})[replica]
        pod = self._replica_pod(ns, job, replica, index, spec)
        self.set_pod_phase(ns, pod, "Failed", exit_code, message, log)
        policy = spec.get("restartPolicy", "Never")
        retryable = {"ExitCode": 128 <= exit_code <= 255, "OnFailure": True, "Always": True}.get(
            policy, False
        )
        status = job.get("status") or {}
        counts = {k: dict(v) for k, v in (status.get("replicaStatuses") or {}).items()}
        entry = counts.setdefault(replica, {})
        entry["active"] = max(int(entry.get("active", 1)) - 1, 0)
        restarts = self.store.restarts.get((ns, name), 0)
        backoff = ((job.get("spec") or {}).get("runPolicy") or {}).get("backoffLimit")
        if retryable and (backoff is None or restarts < int(backoff)):
            self.store.restarts[(ns, name)] = restarts + 1
            replacement = self._replica_pod(ns, job, replica, index, spec)
            self.set_pod_phase(ns, replacement, "Pending")
            entry["active"] = entry.get("active", 0) + 1
            self._pytorch_status(
                ns,
                job,
                "Restarting",
                "PyTorchJobRestarting",
                f"PyTorchJob {ns}/{name} is restarting because 1 {replica} replica(s) failed.",
                counts,
            )
            return "Restarting"
        entry["failed"] = int(entry.get("failed", 0)) + 1
        text = (
            f"PyTorchJob {ns}/{name} has failed because it has reached the specified backoff limit"
            if retryable
            else f"PyTorchJob {ns}/{name} is failed because 1 {replica} replica(s) failed."
        )
        self._pytorch_status(
            ns, job, "Failed", "PyTorchJobFailed", text, counts, completionTime=now()
        )
        return "Failed"

    def pytorchjob_failed(
        self, ns: str, name: str, reason: str = "PyTorchJobFailed", message: str | None = None
    ) -> None:
        job = self._pytorchjob(ns, name)
        counts = (job.get("status") or {}).get("replicaStatuses") or {}
        self._pytorch_status(
            ns,
            job,
            "Failed",
            reason,
            message or f"PyTorchJob {ns}/{name} is failed.",
            counts,
            completionTime=now(),
        )
