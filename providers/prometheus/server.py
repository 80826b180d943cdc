"""A running Prometheus: reload its rules (``POST /-/reload``) and read them back.

Reloading needs Prometheus started with ``--web.enable-lifecycle``. A refused connection
or a timeout is transient (RetryableError); an HTTP error is not (PermanentError, with
Prometheus's own words: a bad rules file, lifecycle API disabled).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from providers.base import JSON, PermanentError, RetryableError
from providers.rules import prom_duration

TIMEOUT = 10.0


class PrometheusServer:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def _call(self, method: str, path: str) -> bytes:
        request = urllib.request.Request(self.url + path, method=method)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                body: bytes = response.read()
                return body
        except urllib.error.HTTPError as exc:
            # never the response body: a plan of untrusted specs must not echo what a
            # server answered (docs/security.md); the status and URL say enough
            hint = ""
            if path == "/-/reload" and exc.code in (403, 404, 405):
                hint = "; start Prometheus with --web.enable-lifecycle so pipeform can reload it"
            raise PermanentError(
                f"Prometheus at {self.url} answered {method} {path} with HTTP {exc.code}{hint}"
            ) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RetryableError(
                f"Prometheus at {self.url} could not be reached ({reason}); "
                "is it running, and is providers.prometheus.url right?",
                delay=2.0,
            ) from None

    def reload(self) -> None:
        """Make Prometheus read its rule files again (synchronous: it answers when done)."""
        self._call("POST", "/-/reload")

    def groups(self) -> dict[str, JSON]:
        """Every loaded rule group, by name."""
        raw = self._call("GET", "/api/v1/rules")
        try:
            data: Any = json.loads(raw)
            groups = data["data"]["groups"]
        except (ValueError, KeyError, TypeError):
            raise PermanentError(
                f"{self.url}/api/v1/rules did not answer like Prometheus; is the URL right?"
            ) from None
        return {str(g.get("name")): g for g in groups if isinstance(g, dict)}

    def alerts(self) -> list[JSON]:
        """Every active alert (pending or firing), as /api/v1/alerts lists them."""
        raw = self._call("GET", "/api/v1/alerts")
        try:
            data: Any = json.loads(raw)
            alerts = data["data"]["alerts"]
        except (ValueError, KeyError, TypeError):
            raise PermanentError(
                f"{self.url}/api/v1/alerts did not answer like Prometheus; is the URL right?"
            ) from None
        return [a for a in alerts if isinstance(a, dict)]

    def wait_for(
        self, name: str, rule_names: list[str] | None, timeout: float = 10.0
    ) -> JSON | None:
        """Poll until the group holds exactly those rules (None: until it is gone)."""
        deadline = time.monotonic() + timeout
        while True:
            group = self.groups().get(name)
            seen = [str(r.get("name")) for r in group.get("rules", [])] if group else None
            if seen == rule_names:
                return group
            if time.monotonic() > deadline:
                return group
            time.sleep(0.2)


def normalised_rules(group: JSON) -> list[JSON]:
    """A group as /api/v1/rules reports it, in the shape of a rules file's rules."""
    out = []
    for rule in group.get("rules", []):
        alerting = rule.get("type") == "alerting"
        entry: JSON = {
            "alert" if alerting else "record": rule.get("name"),
            "expr": rule.get("query"),
        }
        if alerting and rule.get("duration"):
            entry["for"] = prom_duration(float(rule["duration"]))
        if rule.get("labels"):
            entry["labels"] = dict(rule["labels"])
        if alerting and rule.get("annotations"):
            entry["annotations"] = dict(rule["annotations"])
        out.append(entry)
    return out
