"""The test Kubernetes API server: a ThreadingHTTPServer on 127.0.0.1 in a thread, with
the request log, the RBAC switch and the controls tests use to play a person with kubectl
(``edit``, ``remove``), the kubelet and the controllers (lifecycle.py, pytorch.py)."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from typing import Any

from tests.kubernetes.apiserver.auth import Access, Request
from tests.kubernetes.apiserver.http import Handler
from tests.kubernetes.apiserver.lifecycle import JobLifecycle
from tests.kubernetes.apiserver.pytorch import PyTorchLifecycle
from tests.kubernetes.apiserver.resources import ApiError, resource
from tests.kubernetes.apiserver.store import MERGE, NAMESPACES, Store

TOKEN = "pipeform-test-token"
USER = "pipeform-test"


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    kube: KubeServer


class KubeServer(JobLifecycle, PyTorchLifecycle):
    """``with KubeServer() as server:`` or ``start()``/``stop()``; ``server.url``."""

    def __init__(self, token: str = TOKEN, user: str = USER) -> None:
        self.store = Store()
        self.access = Access(token=token, user=user)
        self.requests: list[Request] = []
        self._requests_lock = threading.Lock()
        self._http: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self._faults: list[tuple[int, str | None, str | None, int | None]] = []

    # -- running -----------------------------------------------------------------------
    def start(self) -> KubeServer:
        self._http = _HTTPServer(("127.0.0.1", 0), Handler)
        self._http.kube = self
        self.port = self._http.server_address[1]
        self._thread = threading.Thread(
            target=self._http.serve_forever, daemon=True, kwargs={"poll_interval": 0.05}
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        with self.store.lock:
            self.store.closed = True
            self.store.changed.notify_all()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    def __enter__(self) -> KubeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        return self.access.token

    @property
    def user(self) -> str:
        return self.access.user

    # -- requests and RBAC -------------------------------------------------------------
    def record(self, request: Request) -> None:
        with self._requests_lock:
            self.requests.append(request)

    def calls(self) -> set[tuple[str, str, str]]:
        """(verb, group, resource) for every resource request, the resource named as RBAC
        names it (``jobs``, ``jobs/status``, ``pods/log``)."""
        with self._requests_lock:
            return {
                (r.verb, r.group or "", r.rbac_resource)
                for r in self.requests
                if r.verb and r.rbac_resource
            }

    def reset_requests(self) -> None:
        with self._requests_lock:
            self.requests.clear()

    def inject_errors(
        self,
        code: int,
        times: int = 1,
        verb: str | None = None,
        resource: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        """Answer the next ``times`` resource requests (of ``verb`` on ``resource``, as
        RBAC names them, when given) with ``code``: 429 (TooManyRequests), 500, 503 or 504,
        as an overloaded or restarting API server would. With ``retry_after`` the answer
        carries a Retry-After header, on which urllib3 itself retries 429 and 503 for
        idempotent methods (GET, PUT, DELETE) before the client sees an error."""
        with self._requests_lock:
            self._faults += [(code, verb, resource, retry_after)] * times

    def take_fault(self, request: Request) -> ApiError | None:
        with self._requests_lock:
            for n, (code, verb, res, retry_after) in enumerate(self._faults):
                if (
                    request.verb
                    and verb in (None, request.verb)
                    and res in (None, request.rbac_resource)
                ):
                    del self._faults[n]
                    return ApiError.server_error(code, retry_after)
        return None

    def enforce_rules(self, rules: list[dict[str, Any]] | None) -> None:
        """Answer requests no rule allows with 403 (``None``: allow everything again)."""
        self.access.rules = list(rules) if rules is not None else None

    # -- controls (on the store, no HTTP) ----------------------------------------------
    def add_namespace(self, name: str) -> dict[str, Any]:
        existing = self.store.find(NAMESPACES, None, name)
        if existing is not None:
            return existing
        return self.store.create(NAMESPACES, None, {"metadata": {"name": name}}, "kubectl-create")

    def get(
        self, group: str, version: str, plural: str, ns: str | None, name: str
    ) -> dict[str, Any] | None:
        return self.store.find(resource(group, version, plural), ns, name)

    def objects(
        self,
        group: str,
        version: str,
        plural: str,
        ns: str | None = None,
        labels: str | None = None,
    ) -> list[dict[str, Any]]:
        res = resource(group, version, plural)
        items = self.store.list(res, ns, labels)
        for item in items:
            item.setdefault("apiVersion", res.api_version)
            item.setdefault("kind", res.kind)
        return items

    def edit(
        self,
        group: str,
        version: str,
        plural: str,
        ns: str | None,
        name: str,
        patch: dict[str, Any],
        manager: str = "kubectl-edit",
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """A merge patch by another manager (``kubectl edit``): managedFields record it as an
        Update, so a later apply by pipeform conflicts or shows drift as it would."""
        res = resource(group, version, plural)
        obj, _ = self.store.patch(res, ns, name, MERGE, patch, manager, sub=subresource)
        return obj

    def remove(
        self,
        group: str,
        version: str,
        plural: str,
        ns: str | None,
        name: str,
        propagation: str = "Background",
    ) -> dict[str, Any]:
        """Deleted by hand (``kubectl delete``: dependents go too)."""
        return self.store.delete(resource(group, version, plural), ns, name, propagation)

    def set_quota_used(self, ns: str, name: str, used: dict[str, str]) -> dict[str, Any]:
        res = resource("", "v1", "resourcequotas")
        quota = self.store.get(res, ns, name)
        hard = (quota.get("spec") or {}).get("hard") or {}
        return self.set_status(
            res, ns, name, {"hard": dict(hard), "used": dict(used)}, "kube-controller-manager"
        )


__all__ = ["TOKEN", "USER", "ApiError", "KubeServer", "Request"]
