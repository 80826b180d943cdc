"""Who may call the test API server: a bearer token (else 401), and optional RBAC rules
(``PolicyRule`` dicts) under which a disallowed request gets the real 403 message."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.kubernetes.apiserver.resources import ApiError

VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")


@dataclass(frozen=True)
class Request:
    """One request as the server saw it (``resource`` is the plural, ``subresource`` apart)."""

    method: str
    path: str
    query: dict[str, str]
    verb: str | None
    group: str | None
    resource: str | None
    subresource: str | None
    namespace: str | None
    name: str | None = None

    @property
    def rbac_resource(self) -> str | None:
        """``jobs/status``, ``pods/log``: the name an RBAC rule gives the resource."""
        if self.resource and self.subresource:
            return f"{self.resource}/{self.subresource}"
        return self.resource


@dataclass
class Access:
    token: str
    user: str = "pipeform-test"
    rules: list[dict[str, Any]] | None = None  # None: everything is allowed
    extra_tokens: dict[str, str] = field(default_factory=dict)  # token -> user

    def authenticate(self, header: str | None) -> str:
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() == "bearer":
            if token == self.token:
                return self.user
            if token in self.extra_tokens:
                return self.extra_tokens[token]
        raise ApiError.unauthorized()

    def _allowed(self, request: Request) -> bool:
        assert self.rules is not None
        for rule in self.rules:
            groups = rule.get("apiGroups") or []
            resources = rule.get("resources") or []
            verbs = rule.get("verbs") or []
            names = rule.get("resourceNames") or []
            wanted = request.rbac_resource or ""
            resource_ok = (
                "*" in resources
                or wanted in resources
                or (request.subresource and f"*/{request.subresource}" in resources)
            )
            if (
                ("*" in groups or request.group in groups)
                and resource_ok
                and ("*" in verbs or request.verb in verbs)
                and (not names or (request.name is not None and request.name in names))
            ):
                return True
        return False

    def authorize(self, user: str, request: Request) -> None:
        if self.rules is None or request.resource is None or self._allowed(request):
            return
        group = request.group or ""
        group_resource = f"{request.resource}.{group}" if group else request.resource
        subject = f'{group_resource} "{request.name}"' if request.name else group_resource
        scope = (
            f'in the namespace "{request.namespace}"'
            if request.namespace
            else "at the cluster scope"
        )
        message = (
            f'{subject} is forbidden: User "{user}" cannot {request.verb} resource '
            f'"{request.rbac_resource}" in API group "{group}" {scope}'
        )
        details: dict[str, Any] = {"kind": request.resource}
        if request.name:
            details["name"] = request.name
        if group:
            details["group"] = group
        raise ApiError(403, "Forbidden", message, details)
