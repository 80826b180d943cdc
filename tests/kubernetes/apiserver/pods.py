"""What the kubelet does, as test controls: pods made from a template and owned by a
controller, their phases and container states (termination messages included), their
logs, and Events about them."""

from __future__ import annotations

import copy
import secrets
from typing import Any

from tests.kubernetes.apiserver.resources import Resource, resource
from tests.kubernetes.apiserver.store import MERGE, Store, now

PODS = resource("", "v1", "pods")
EVENTS = resource("", "v1", "events")
ACTIVE = ("Pending", "Running")
PREEMPTION_MESSAGE = "default-scheduler: preempting to accommodate a higher priority pod"


class PodControls:
    store: Store

    def set_status(
        self, res: Any, ns: str | None, name: str, status: dict[str, Any], manager: str
    ) -> dict[str, Any]:
        """A controller's status write (merge patch on /status: lists are replaced)."""
        obj, _ = self.store.patch(res, ns, name, MERGE, {"status": status}, manager, sub="status")
        return obj

    def unfinished(
        self, res: Resource, ns: str, name: str, final: tuple[str, ...]
    ) -> dict[str, Any]:
        """The object, which must not carry a ``final`` condition yet (a test's mistake)."""
        obj = self.store.get(res, ns, name)
        for condition in (obj.get("status") or {}).get("conditions") or []:
            if condition["type"] in final and condition["status"] == "True":
                raise ValueError(
                    f"{res.kind} {ns}/{name} has already finished ({condition['type']})"
                )
        return obj

    def set_pod_log(self, ns: str, pod: str, text: str) -> None:
        with self.store.lock:
            self.store.logs[(ns, pod)] = text

    def emit_event(
        self,
        ns: str,
        obj: dict[str, Any],
        reason: str,
        message: str,
        type_: str = "Normal",
        source: str = "job-controller",
    ) -> None:
        meta = obj["metadata"]
        stamp = now()
        self.store.create(
            EVENTS,
            ns,
            {
                "metadata": {"name": f"{meta['name']}.{secrets.token_hex(8)}"},
                "involvedObject": {
                    "apiVersion": obj.get("apiVersion"),
                    "kind": obj.get("kind"),
                    "name": meta["name"],
                    "namespace": ns,
                    "uid": meta.get("uid"),
                },
                "reason": reason,
                "message": message,
                "type": type_,
                "count": 1,
                "firstTimestamp": stamp,
                "lastTimestamp": stamp,
                "source": {"component": source},
            },
            source,
        )

    def pods_of(
        self, ns: str, owner_uid: str, phases: tuple[str, ...] | None = None
    ) -> list[dict[str, Any]]:
        """The pods whose ownerReferences name ``owner_uid``, oldest first."""
        pods = [
            p
            for p in self.store.list(PODS, ns)
            if any(o.get("uid") == owner_uid for o in p["metadata"].get("ownerReferences") or [])
            and (phases is None or (p.get("status") or {}).get("phase") in phases)
        ]
        for pod in pods:  # list items carry no kind
            pod.update(apiVersion="v1", kind="Pod")
        return sorted(pods, key=lambda p: int(p["metadata"]["resourceVersion"]))

    def create_pod(
        self,
        ns: str,
        name: str,
        owner: dict[str, Any],
        template: dict[str, Any],
        labels: dict[str, str],
    ) -> dict[str, Any]:
        meta = owner["metadata"]
        template_meta = template.get("metadata") or {}
        pod: dict[str, Any] = {
            "metadata": {
                "name": name,
                "labels": {**(template_meta.get("labels") or {}), **labels},
                "annotations": dict(template_meta.get("annotations") or {}),
                "ownerReferences": [
                    {
                        "apiVersion": owner["apiVersion"],
                        "kind": owner["kind"],
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {**copy.deepcopy(template.get("spec") or {}), "nodeName": "gpu-node-1"},
        }
        if not pod["metadata"]["annotations"]:
            del pod["metadata"]["annotations"]
        return self.store.create(PODS, ns, pod, "kube-controller-manager")

    def set_pod_phase(
        self,
        ns: str,
        pod: dict[str, Any],
        phase: str,
        exit_code: int = 0,
        message: str = "",
        log: str | None = None,
        conditions: list[dict[str, Any]] | None = None,
        waiting: tuple[str, str] | None = None,
        unschedulable: str | None = None,
    ) -> dict[str, Any]:
        """The kubelet's status for ``phase``. A terminated pod's first container carries
        ``exit_code`` and ``message``, its termination message (at most 4096 bytes; with
        ``terminationMessagePolicy: FallbackToLogsOnError``, a failure without a message
        gets the log's last 80 lines, 2048 bytes at most, as the kubelet does). Pending:
        ``waiting`` (reason, message) such as ("ImagePullBackOff", "..."), or, with
        ``unschedulable`` (the scheduler's message), PodScheduled False and no containers."""
        name, stamp = pod["metadata"]["name"], now()
        started = (pod.get("status") or {}).get("startTime") or stamp
        if log is not None:
            self.set_pod_log(ns, name, log)
        if unschedulable is not None:
            scheduled = {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": unschedulable,
                "lastTransitionTime": stamp,
            }
            self.emit_event(
                ns, pod, "FailedScheduling", unschedulable, "Warning", "default-scheduler"
            )
            body = {"phase": "Pending", "conditions": [scheduled], "qosClass": "BestEffort"}
            return self.set_status(PODS, ns, name, body, "kube-scheduler")
        statuses = [
            self._container_status(
                ns,
                pod,
                n,
                phase,
                exit_code if n == 0 else 0,
                message if n == 0 else "",
                started,
                waiting,
            )
            for n in range(len(pod["spec"].get("containers") or []))
        ]
        ready = "True" if phase == "Running" else "False"
        pod_conditions = [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": started},
            {"type": "Initialized", "status": "True", "lastTransitionTime": started},
            {"type": "ContainersReady", "status": ready, "lastTransitionTime": stamp},
            {"type": "Ready", "status": ready, "lastTransitionTime": stamp},
            *(conditions or []),
        ]
        body = {
            "phase": phase,
            "conditions": pod_conditions,
            "containerStatuses": statuses,
            "qosClass": "BestEffort",
        }
        if phase != "Pending":
            body.update(startTime=started, hostIP="10.0.0.1", podIP="10.1.0.7")
        return self.set_status(PODS, ns, name, body, "kubelet")

    def _container_status(
        self,
        ns: str,
        pod: dict[str, Any],
        n: int,
        phase: str,
        code: int,
        message: str,
        started: str,
        waiting: tuple[str, str] | None,
    ) -> dict[str, Any]:
        container = pod["spec"]["containers"][n]
        name = pod["metadata"]["name"]
        status: dict[str, Any] = {
            "name": container.get("name"),
            "image": container.get("image"),
            "imageID": "",
            "restartCount": 0,
            "ready": phase == "Running",
            "started": phase == "Running",
        }
        if phase == "Pending":
            reason, text = waiting or ("ContainerCreating", "")
            status["state"] = {"waiting": {"reason": reason, **({"message": text} if text else {})}}
            return status
        status["containerID"] = f"containerd://{name}-{n}"
        if phase == "Running":
            status["state"] = {"running": {"startedAt": started}}
            return status
        if (
            not message
            and code
            and container.get("terminationMessagePolicy") == "FallbackToLogsOnError"
        ):
            with self.store.lock:
                lines = self.store.logs.get((ns, name), "").splitlines(keepends=True)[-80:]
            message = "".join(lines).encode()[-2048:].decode(errors="ignore")
        terminated: dict[str, Any] = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": started,
            "finishedAt": now(),
            "containerID": status["containerID"],
        }
        if message:
            terminated["message"] = message.encode()[:4096].decode(errors="ignore")
        status["state"] = {"terminated": terminated}
        return status

    def disruption_condition(self) -> dict[str, Any]:
        return {
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "PreemptionByScheduler",
            "message": PREEMPTION_MESSAGE,
            "lastTransitionTime": now(),
        }

    def pod_name(self, owner: str) -> str:
        alphabet = "bcdfghjklmnpqrstvwxz2456789"
        return f"{owner}-" + "".join(secrets.choice(alphabet) for _ in range(5))
