"""The Job controller, as test controls: a test plays the kubelet and the controller by
calling these, and pipeform sees what a cluster would show it.

``job_pod_failed`` applies the Job's ``podFailurePolicy`` as the controller does: rules in
order, the first that matches decides; ``onExitCodes`` (containerName, In/NotIn, values,
exit code 0 never matching) and ``onPodConditions`` (type, status default True); actions
FailJob (the Job fails at once, reason PodFailurePolicy), Ignore (not counted against
backoffLimit, a replacement pod starts) and Count. A counted failure beyond
``backoffLimit`` fails the Job with BackoffLimitExceeded; otherwise a replacement pod starts.
Finished Jobs get FailureTarget + Failed or SuccessCriteriaMet + Complete conditions.
"""

from __future__ import annotations

from typing import Any

from tests.kubernetes.apiserver.pods import ACTIVE, PodControls
from tests.kubernetes.apiserver.resources import resource
from tests.kubernetes.apiserver.store import now

JOBS = resource("batch", "v1", "jobs")
CONTROLLER = "kube-controller-manager"
FAILURE_MESSAGES = {
    "BackoffLimitExceeded": "Job has reached the specified backoff limit",
    "DeadlineExceeded": "Job was active longer than specified deadline",
    "PodFailurePolicy": "Pod failure policy matched a FailJob rule",
}


def _condition(kind: str, reason: str, message: str) -> dict[str, Any]:
    stamp = now()
    return {
        "type": kind,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastProbeTime": stamp,
        "lastTransitionTime": stamp,
    }


def _rule_matches(rule: dict[str, Any], pod: dict[str, Any], exit_code: int) -> bool:
    on_codes = rule.get("onExitCodes")
    if on_codes:
        containers = pod["spec"].get("containers") or []
        wanted = on_codes.get("containerName")
        if wanted and (not containers or containers[0].get("name") != wanted):
            return False
        if exit_code == 0:
            return False
        inside = exit_code in (on_codes.get("values") or [])
        return inside if on_codes.get("operator", "In") == "In" else not inside
    conditions = (pod.get("status") or {}).get("conditions") or []
    for wanted in rule.get("onPodConditions") or []:
        if any(
            c.get("type") == wanted.get("type") and c.get("status") == wanted.get("status", "True")
            for c in conditions
        ):
            return True
    return False


class JobLifecycle(PodControls):
    def _job(self, ns: str, name: str) -> dict[str, Any]:
        return self.unfinished(JOBS, ns, name, ("Complete", "Failed"))

    def _job_pod(self, ns: str, job: dict[str, Any]) -> dict[str, Any]:
        meta = job["metadata"]
        uid, name = meta["uid"], meta["name"]
        labels = {
            "batch.kubernetes.io/controller-uid": uid,
            "batch.kubernetes.io/job-name": name,
            "controller-uid": uid,
            "job-name": name,
        }
        return self.create_pod(ns, self.pod_name(name), job, job["spec"]["template"], labels)

    def _active_pods(self, ns: str, job: dict[str, Any], count: int) -> list[dict[str, Any]]:
        pods = self.pods_of(ns, job["metadata"]["uid"], ACTIVE)
        while len(pods) < count:
            pods.append(self._job_pod(ns, job))
        return pods

    def _job_status(self, ns: str, job: dict[str, Any], **fields: Any) -> dict[str, Any]:
        status = job.get("status") or {}
        body = {
            "startTime": status.get("startTime") or now(),
            "uncountedTerminatedPods": {},
            **fields,
        }
        return self.set_status(JOBS, ns, job["metadata"]["name"], body, CONTROLLER)

    def job_pending(
        self,
        ns: str,
        name: str,
        waiting: tuple[str, str] | None = None,
        unschedulable: str | None = None,
    ) -> list[str]:
        """One pod Pending (created if need be); ``status.active`` counts it. ``waiting``:
        its container's (reason, message), e.g. ("ErrImagePull", "..."); ``unschedulable``:
        the scheduler's message (PodScheduled False, a FailedScheduling event). The pods."""
        job = self._job(ns, name)
        pods = self._active_pods(ns, job, 1)
        for pod in pods:
            self.set_pod_phase(ns, pod, "Pending", waiting=waiting, unschedulable=unschedulable)
        self._job_status(ns, job, active=len(pods), ready=0)
        return [p["metadata"]["name"] for p in pods]

    def job_running(self, ns: str, name: str, pods: int = 1) -> list[str]:
        """``pods`` pods Running, ``status.active``/``ready`` set, no Job condition."""
        job = self._job(ns, name)
        running = self._active_pods(ns, job, pods)
        for pod in running:
            self.set_pod_phase(ns, pod, "Running")
        self._job_status(ns, job, active=len(running), ready=len(running))
        return [p["metadata"]["name"] for p in running]

    def job_succeeded(
        self, ns: str, name: str, message: str = "", log: str | None = None
    ) -> list[str]:
        """The active pods (one at least) Succeeded, exit code 0, ``message`` as their
        termination message; conditions SuccessCriteriaMet + Complete."""
        job = self._job(ns, name)
        pods = self._active_pods(ns, job, 1)
        for pod in pods:
            self.set_pod_phase(ns, pod, "Succeeded", 0, message, log)
        status = job.get("status") or {}
        reason, text = "CompletionsReached", "Reached expected number of succeeded pods"
        conditions = [
            *(status.get("conditions") or []),
            _condition("SuccessCriteriaMet", reason, text),
            _condition("Complete", reason, text),
        ]
        self._job_status(
            ns,
            job,
            active=0,
            ready=0,
            conditions=conditions,
            succeeded=int(status.get("succeeded") or 0) + len(pods),
            completionTime=now(),
        )
        self.emit_event(ns, job, "Completed", "Job completed")
        return [p["metadata"]["name"] for p in pods]

    def _fail_job(
        self, ns: str, job: dict[str, Any], reason: str, message: str, failed: int
    ) -> str:
        status = job.get("status") or {}
        for pod in self.pods_of(ns, job["metadata"]["uid"], ACTIVE):
            self.store.delete(resource("", "v1", "pods"), ns, pod["metadata"]["name"])
            failed += 1
        conditions = [
            *(status.get("conditions") or []),
            _condition("FailureTarget", reason, message),
            _condition("Failed", reason, message),
        ]
        self._job_status(ns, job, active=0, ready=0, failed=failed, conditions=conditions)
        self.emit_event(ns, job, reason, message, "Warning")
        return "Failed"

    def job_pod_failed(
        self,
        ns: str,
        name: str,
        exit_code: int,
        message: str = "",
        log: str | None = None,
        disruption: bool = False,
    ) -> str:
        """One active pod (made if none) fails with ``exit_code`` and termination
        ``message``; with ``disruption`` it carries DisruptionTarget (PreemptionByScheduler).
        The Job's podFailurePolicy and backoffLimit then decide, as the controller would.
        Returns what happened: "Ignore" (not counted), "Count" (counted, a new pod Pending)
        or "Failed" (the Job failed: FailJob rule or backoffLimit exceeded)."""
        job = self._job(ns, name)
        pod = self._active_pods(ns, job, 1)[0]
        conditions = [self.disruption_condition()] if disruption else []
        pod = self.set_pod_phase(ns, pod, "Failed", exit_code, message, log, conditions)
        spec, status = job["spec"], job.get("status") or {}
        action, index = "Count", -1
        for n, rule in enumerate((spec.get("podFailurePolicy") or {}).get("rules") or []):
            if _rule_matches(rule, pod, exit_code):
                action, index = rule.get("action", "Count"), n
                break
        failed = int(status.get("failed") or 0)
        pod_name = pod["metadata"]["name"]
        if action == "FailJob":
            container = (pod["spec"].get("containers") or [{}])[0].get("name")
            if spec["podFailurePolicy"]["rules"][index].get("onExitCodes"):
                text = (
                    f"Container {container} for pod {ns}/{pod_name} failed with exit code "
                    f"{exit_code} matching FailJob rule at index {index}"
                )
            else:
                text = (
                    f"Pod {ns}/{pod_name} has condition DisruptionTarget matching FailJob "
                    f"rule at index {index}"
                )
            return self._fail_job(ns, job, "PodFailurePolicy", text, failed + 1)
        if action != "Ignore":
            failed += 1
            if failed > int(spec.get("backoffLimit", 6)):
                return self._fail_job(
                    ns,
                    job,
                    "BackoffLimitExceeded",
                    FAILURE_MESSAGES["BackoffLimitExceeded"],
                    failed,
                )
        replacement = self._job_pod(ns, job)
        self.set_pod_phase(ns, replacement, "Pending")
        self._job_status(ns, job, active=1, ready=0, failed=failed)
        return "Ignore" if action == "Ignore" else "Count"

    def job_failed(
        self, ns: str, name: str, reason: str = "BackoffLimitExceeded", message: str | None = None
    ) -> None:
        """The Job fails (FailureTarget + Failed with ``reason``); its active pods go."""
        job = self._job(ns, name)
        failed = int((job.get("status") or {}).get("failed") or 0)
        self._fail_job(ns, job, reason, message or FAILURE_MESSAGES.get(reason, reason), failed)
