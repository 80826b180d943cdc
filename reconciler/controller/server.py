"""The controller's HTTP endpoints: the status page (/), /healthz, /readyz, /metrics and
the push webhook (POST /webhook). Read-only except the webhook, which only wakes the loop.

The webhook takes GitHub-style push events signed with HMAC-SHA256 (``X-Hub-Signature-256:
sha256=<hex>`` over the body, keyed with the secret): an unsigned or badly signed request
is refused with 401 and changes nothing; without a secret every request is refused."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

from reconciler.controller import logs, page

if TYPE_CHECKING:
    from reconciler.controller.loop import Controller

MAX_BODY = 1 << 20


def signature_ok(secret: bytes | None, body: bytes, header: str | None) -> bool:
    if not secret or not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header[len("sha256=") :])


class _Handler(BaseHTTPRequestHandler):
    controller: Controller
    secret: bytes | None
    server_version = "pipeform-controller"
    sys_version = ""

    def log_message(self, format: str, *args: object) -> None:
        pass  # requests are not logged: /metrics scrapes would drown the reconcile events

    def _send(self, code: int, body: bytes | str, kind: str = "text/plain; charset=utf-8") -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if kind.startswith("text/html"):
            self.send_header(
                "Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'"
            )
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        status = self.controller.status
        path = self.path.split("?", 1)[0]
        if path == "/":
            self._send(
                200,
                page.render(status, self.controller.settings.interval),
                "text/html; charset=utf-8",
            )
        elif path == "/healthz":
            self._send(200, "ok\n")
        elif path == "/readyz":
            if status.ready and status.waiting is None:
                self._send(200, "ready\n")
            else:
                why = (
                    f"waiting: {status.waiting}" if status.waiting else "no reconcile finished yet"
                )
                self._send(503, f"not ready: {why}\n")
        elif path == "/metrics":
            body, kind = self.controller.metrics.render()
            self._send(200, body, kind)
        else:
            self._send(404, "not found\n")

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != "/webhook":
            self._send(404, "not found\n")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > MAX_BODY:
            self._send(413, "body too large\n")
            return
        body = self.rfile.read(length)
        if not signature_ok(self.secret, body, self.headers.get("X-Hub-Signature-256")):
            logs.event("webhook-refused", level="warning", message="missing or bad signature")
            self._send(401, "signature missing or wrong\n")
            return
        self._send(*self._event(body))

    def _event(self, body: bytes) -> tuple[int, str]:
        kind = self.headers.get("X-GitHub-Event", "push")
        if kind == "ping":
            return 200, "pong\n"
        if kind != "push":
            return 202, f"ignored: {kind} event\n"
        try:
            ref = json.loads(body or b"{}").get("ref", "")
        except (ValueError, AttributeError):
            return 400, "the body is not a JSON push event\n"
        branch = self.controller.settings.branch
        if ref not in ("", f"refs/heads/{branch}"):
            return 202, f"ignored: a push to {ref}, not {branch}\n"
        logs.event("webhook", message="push received; reconciling now", ref=ref)
        self.controller.wake.set()
        return 202, "reconcile started\n"


def serve(
    controller: Controller, host: str, port: int, secret: bytes | None
) -> ThreadingHTTPServer:
    """Start the endpoints on a daemon thread; the server (its port in server_address)."""
    handler = type("Handler", (_Handler,), {"controller": controller, "secret": secret})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="controller-http", daemon=True).start()
    return server
