"""The resources the test API server serves: one table row per resource, and the
`Status` errors it answers with (the real API server's reasons, codes and messages)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = (
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    )
    short_names: tuple[str, ...] = ()
    custom: bool = False  # a CustomResourceDefinition: no strategic merge, lists carry kinds
    default_propagation: str = "Background"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """``jobs.batch``, ``pods``: how the API server names the resource in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def group_kind(self) -> str:
        """``Job.batch``, ``Pod``: how validation messages name the kind."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources


READ_ONLY = ("get", "list", "watch")

RESOURCES: tuple[Resource, ...] = (
    Resource(
        "",
        "v1",
        "namespaces",
        "Namespace",
        namespaced=False,
        subresources=("status",),
        short_names=("ns",),
    ),
    Resource("", "v1", "configmaps", "ConfigMap", short_names=("cm",)),
    Resource("", "v1", "secrets", "Secret"),
    Resource(
        "",
        "v1",
        "resourcequotas",
        "ResourceQuota",
        subresources=("status",),
        short_names=("quota",),
    ),
    Resource("", "v1", "pods", "Pod", subresources=("status", "log"), short_names=("po",)),
    Resource("", "v1", "events", "Event", verbs=READ_ONLY, short_names=("ev",)),
    # batch/v1 Jobs: the API server's default for a DELETE without a policy is to orphan the pods
    Resource("batch", "v1", "jobs", "Job", subresources=("status",), default_propagation="Orphan"),
    Resource(
        "kubeflow.org", "v1", "pytorchjobs", "PyTorchJob", subresources=("status",), custom=True
    ),
    Resource(
        "monitoring.coreos.com",
        "v1",
        "prometheusrules",
        "PrometheusRule",
        custom=True,
        short_names=("promrule",),
    ),
)

BY_PLURAL: dict[tuple[str, str, str], Resource] = {
    (r.group, r.version, r.plural): r for r in RESOURCES
}


def resource(group: str, version: str, plural: str) -> Resource:
    try:
        return BY_PLURAL[(group, version, plural)]
    except KeyError:
        raise ApiError.not_found_path() from None


@dataclass
class ApiError(Exception):
    """An answer other than success, rendered as a ``Status`` body."""

    code: int
    reason: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code} {self.reason}: {self.message}"

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body

    @staticmethod
    def _details(res: Resource, name: str | None) -> dict[str, Any]:
        details: dict[str, Any] = {"kind": res.plural}
        if name is not None:
            details["name"] = name
        if res.group:
            details["group"] = res.group
        return details

    @classmethod
    def not_found(cls, res: Resource, name: str) -> ApiError:
        return cls(
            404, "NotFound", f'{res.group_resource} "{name}" not found', cls._details(res, name)
        )

    @classmethod
    def not_found_path(cls) -> ApiError:
        return cls(
            404,
            "NotFound",
            "the server could not find the requested resource",
            {"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]},
        )

    @classmethod
    def already_exists(cls, res: Resource, name: str) -> ApiError:
        return cls(
            409,
            "AlreadyExists",
            f'{res.group_resource} "{name}" already exists',
            cls._details(res, name),
        )

    @classmethod
    def stale(cls, res: Resource, name: str) -> ApiError:
        return cls(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {res.group_resource} "{name}": the object has '
            "been modified; please apply your changes to the latest version and try again",
            cls._details(res, name),
        )

    @classmethod
    def invalid(cls, res: Resource, name: str, causes: list[tuple[str, str, str]]) -> ApiError:
        """``causes``: (field, reason, message without the field), e.g.
        ("spec.template", "FieldValueInvalid", 'Invalid value: ...: field is immutable')."""
        text = ", ".join(f"{f}: {m}" for f, _, m in causes)
        if len(causes) > 1:
            text = "[" + text + "]"
        details = {
            **cls._details(res, name),
            "kind": res.kind,
            "causes": [{"reason": r, "message": m, "field": f} for f, r, m in causes],
        }
        return cls(422, "Invalid", f'{res.group_kind} "{name}" is invalid: {text}', details)

    @classmethod
    def bad_request(cls, message: str) -> ApiError:
        return cls(400, "BadRequest", message)

    @classmethod
    def unauthorized(cls) -> ApiError:
        return cls(401, "Unauthorized", "Unauthorized")

    @classmethod
    def unsupported_media(cls, content_type: str, accepted: list[str]) -> ApiError:
        return cls(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format - accepted media types include: "
            f"{', '.join(accepted)}",
        )

    @classmethod
    def method_not_allowed(cls, method: str) -> ApiError:
        return cls(
            405,
            "MethodNotAllowed",
            f"the server does not allow this method on the requested resource ({method})",
        )

    @classmethod
    def server_error(cls, code: int, retry_after: int | None = None) -> ApiError:
        reason, message = {
            429: ("TooManyRequests", "Too many requests, please try again later."),
            500: ("InternalError", "Internal error occurred: injected by the test"),
            503: ("ServiceUnavailable", "The server is currently unable to handle the request"),
            504: ("Timeout", "The server was unable to return a response in the time allotted"),
        }.get(code, ("InternalError", f"injected error {code}"))
        details = {"retryAfterSeconds": retry_after} if retry_after is not None else {}
        return cls(code, reason, message, details)
