"""HTTP routing of the test API server: paths to resources, verbs, discovery, auth,
request recording, and the JSON (or text, for pod logs) answers."""

from __future__ import annotations

import json
import socket
import traceback
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import yaml

from tests.kubernetes.apiserver import discovery
from tests.kubernetes.apiserver.auth import Request
from tests.kubernetes.apiserver.resources import BY_PLURAL, ApiError, Resource

if TYPE_CHECKING:
    from tests.kubernetes.apiserver.server import KubeServer

# deletes that answer with the object; the others answer with a Status
RETURNS_OBJECT = frozenset({"pods", "namespaces"})


def parse(method: str, path: str, query: dict[str, str]) -> Request:
    """The request's verb, group, resource, subresource, namespace and name
    (``resource`` None: discovery, /version or an unknown path)."""
    parts = [p for p in path.split("/") if p]
    plain = Request(method, path, query, None, None, None, None, None)
    if parts[:2] == ["api", "v1"]:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    else:
        return plain
    if not rest:
        return plain
    namespace = None
    if (
        rest[0] == "namespaces"
        and len(rest) >= 3
        and not (len(rest) == 3 and rest[2] in ("status", "finalize"))
    ):
        namespace, rest = rest[1], rest[2:]
    plural, name = rest[0], rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    verb = {
        "GET": "get" if name else ("watch" if query.get("watch") in ("true", "1") else "list"),
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete" if name else "deletecollection",
    }.get(method)
    return Request(method, path, query, verb, group, plural, sub, namespace, name)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def setup(self) -> None:
        super().setup()
        # answers go out in one write with no Nagle delay (else 40 ms per keep-alive request)
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def kube(self) -> KubeServer:
        return self.server.kube  # type: ignore[no-any-return]

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # -- plumbing ----------------------------------------------------------------------
    def _send(
        self,
        code: int,
        body: str | bytes,
        content_type: str = "application/json",
        retry_after: int | None = None,
    ) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        if retry_after is not None:
            self.send_header("Retry-After", str(retry_after))
        self._headers_buffer.append(b"\r\n" + data)  # type: ignore[attr-defined] # one write
        self.flush_headers()

    def _json(self, code: int, body: Any) -> None:
        self._send(code, json.dumps(body))

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            pass
        try:
            return yaml.safe_load(raw)
        except yaml.YAMLError as error:
            raise ApiError.bad_request(
                f"the body of the request could not be decoded: {error}"
            ) from None

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        request = parse(method, url.path, query)
        kube = self.kube
        kube.record(request)
        try:
            user = kube.access.authenticate(self.headers.get("Authorization"))
            body = self._body()
            if request.resource is None:
                self._json(200, discovery.answer(url.path, f"127.0.0.1:{kube.port}"))
                return
            kube.access.authorize(user, request)
            fault = kube.take_fault(request)
            if fault is not None:
                raise fault
            dry_run = request.query.get("dryRun")
            if dry_run is None:
                self._route(request, body)
            elif dry_run != "All" or request.verb not in ("create", "update", "patch", "delete"):
                raise ApiError.bad_request(f"dryRun: Unsupported value: {dry_run!r}")
            else:
                with kube.store.dry_run():
                    self._route(request, body)
        except ApiError as error:
            self._send(
                code=error.code,
                body=json.dumps(error.status()),
                retry_after=error.details.get("retryAfterSeconds"),
            )
        except Exception as error:  # a bug in the test server: say so, do not hang up
            message = f"test API server error: {traceback.format_exc()}"
            self._json(500, ApiError(500, "InternalError", message).status())
            raise error

    def _route(self, request: Request, body: Any) -> None:
        version = request.path.split("/")[2] if request.group == "" else request.path.split("/")[3]
        res = BY_PLURAL.get((request.group or "", version, request.resource or ""))
        if res is None or (res.namespaced is False and request.namespace is not None):
            raise ApiError.not_found_path()
        if request.subresource and request.subresource not in res.subresources:
            raise ApiError.not_found_path()
        if request.verb not in res.verbs and not (request.verb == "get" and request.subresource):
            raise ApiError.method_not_allowed(request.method)
        if request.name is not None and res.namespaced and request.namespace is None:
            raise ApiError.not_found_path()
        getattr(self, "_" + (request.verb or "get"))(res, request, body)

    # -- verbs -------------------------------------------------------------------------
    def _list(self, res: Resource, request: Request, body: Any) -> None:
        q = request.query
        self._send(
            200,
            self.kube.store.list_json(
                res,
                request.namespace,
                q.get("labelSelector"),
                q.get("fieldSelector"),
                int(q.get("limit") or 0),
                q.get("continue") or None,
            ),
        )

    def _watch(self, res: Resource, request: Request, body: Any) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        for event in self.kube.store.watch(res, request.namespace, request.query):
            self.wfile.write(json.dumps(event).encode() + b"\n")
            self.wfile.flush()

    def _get(self, res: Resource, request: Request, body: Any) -> None:
        store, name = self.kube.store, request.name or ""
        obj = store.get(res, request.namespace, name)
        if request.subresource == "log":
            self._send(
                200, store.pod_log(request.namespace or "", name, request.query), "text/plain"
            )
            return
        self._json(200, obj)

    def _create(self, res: Resource, request: Request, body: Any) -> None:
        if request.name is not None:
            raise ApiError.method_not_allowed("POST")
        if not isinstance(body, dict):
            raise ApiError.bad_request("the body of the request must be an object")
        manager = request.query.get("fieldManager") or "unknown"
        self._json(201, self.kube.store.create(res, request.namespace, body, manager))

    def _update(self, res: Resource, request: Request, body: Any) -> None:
        if not isinstance(body, dict):
            raise ApiError.bad_request("the body of the request must be an object")
        manager = request.query.get("fieldManager") or "unknown"
        self._json(
            200,
            self.kube.store.replace(
                res, request.namespace, request.name or "", body, manager, request.subresource
            ),
        )

    def _patch(self, res: Resource, request: Request, body: Any) -> None:
        obj, created = self.kube.store.patch(
            res,
            request.namespace,
            request.name or "",
            self.headers.get("Content-Type") or "",
            body,
            request.query.get("fieldManager"),
            request.query.get("force") == "true",
            request.subresource,
        )
        self._json(201 if created else 200, obj)

    def _propagation(self, request: Request, body: Any) -> str | None:
        policy = request.query.get("propagationPolicy")
        if isinstance(body, dict):
            policy = body.get("propagationPolicy") or policy
            if body.get("orphanDependents") is True:
                policy = "Orphan"
        if request.query.get("orphanDependents") == "true":
            policy = "Orphan"
        if policy not in (None, "Orphan", "Background", "Foreground"):
            raise ApiError.bad_request(f"propagationPolicy: Unsupported value: {policy!r}")
        return policy

    def _delete(self, res: Resource, request: Request, body: Any) -> None:
        name = request.name or ""
        obj = self.kube.store.delete(res, request.namespace, name, self._propagation(request, body))
        if res.custom or res.plural in RETURNS_OBJECT:
            self._json(200, obj)
            return
        details = {"name": name, "kind": res.plural, "uid": obj["metadata"]["uid"]}
        if res.group:
            details["group"] = res.group
        self._json(
            200,
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": details,
            },
        )

    def _deletecollection(self, res: Resource, request: Request, body: Any) -> None:
        store = self.kube.store
        items = store.list(res, request.namespace, request.query.get("labelSelector"))
        policy = self._propagation(request, body)
        for item in items:
            meta = item["metadata"]
            store.delete(res, meta.get("namespace"), meta["name"], policy)
        self._json(
            200,
            {
                "kind": res.kind + "List",
                "apiVersion": res.api_version,
                "metadata": {"resourceVersion": str(store.revision)},
                "items": items,
            },
        )
