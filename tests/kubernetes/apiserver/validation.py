"""What the API server checks and fills in on a write: names (DNS-1123), label values,
Job defaults (selector, template labels, backoffLimit, pod defaults), the Job fields that
cannot change (template, selector, completions) and a Job's restartPolicy."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from tests.kubernetes.apiserver.resources import ApiError, Resource

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_NAMED = frozenset({"namespaces", "jobs", "pytorchjobs"})

LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
    "regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_VALUE_MESSAGE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)

Cause = tuple[str, str, str]


def _name_causes(res: Resource, name: str) -> list[Cause]:
    if not name:
        return [
            (
                "metadata.name",
                "FieldValueRequired",
                "Required value: name or generateName is required",
            )
        ]
    if res.plural in LABEL_NAMED:
        if len(name) > 63:
            return [
                (
                    "metadata.name",
                    "FieldValueInvalid",
                    f'Invalid value: "{name}": must be no more than 63 characters',
                )
            ]
        if not _LABEL.match(name):
            return [
                ("metadata.name", "FieldValueInvalid", f'Invalid value: "{name}": {LABEL_MESSAGE}')
            ]
    elif len(name) > 253 or not _SUBDOMAIN.match(name):
        return [
            ("metadata.name", "FieldValueInvalid", f'Invalid value: "{name}": {SUBDOMAIN_MESSAGE}')
        ]
    return []


def _label_causes(labels: Any, where: str) -> list[Cause]:
    causes: list[Cause] = []
    for key, value in (labels or {}).items():
        text = value if isinstance(value, str) else json.dumps(value)
        if not isinstance(value, str) or not _LABEL_VALUE.match(value):
            causes.append(
                (where, "FieldValueInvalid", f'Invalid value: "{text}": {LABEL_VALUE_MESSAGE}')
            )
        elif len(value) > 63:
            causes.append(
                (
                    where,
                    "FieldValueInvalid",
                    f'Invalid value: "{value}": must be no more than 63 characters',
                )
            )
        name = key.rpartition("/")[2]
        if not name or len(name) > 63 or not _LABEL_VALUE.match(name):
            causes.append(
                (
                    where,
                    "FieldValueInvalid",
                    f"Invalid value: \"{key}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                )
            )
    return causes


def _job_causes(obj: dict[str, Any]) -> list[Cause]:
    template = (obj.get("spec") or {}).get("template") or {}
    pod_spec = template.get("spec") or {}
    causes = _label_causes((template.get("metadata") or {}).get("labels"), "spec.template.labels")
    policy = pod_spec.get("restartPolicy")
    if policy not in ("OnFailure", "Never"):
        message = (
            'Required value: valid values: "OnFailure", "Never"'
            if policy is None
            else (f'Unsupported value: "{policy}": supported values: "OnFailure", "Never"')
        )
        causes.append(
            (
                "spec.template.spec.restartPolicy",
                "FieldValueRequired" if policy is None else "FieldValueNotSupported",
                message,
            )
        )
    if not pod_spec.get("containers"):
        causes.append(("spec.template.spec.containers", "FieldValueRequired", "Required value"))
    if (obj.get("spec") or {}).get("podFailurePolicy") and policy == "OnFailure":
        causes.append(
            (
                "spec.template.spec.restartPolicy",
                "FieldValueNotSupported",
                'Unsupported value: "OnFailure": supported values: "Never"',
            )
        )
    return causes


def validate(res: Resource, obj: dict[str, Any]) -> None:
    """422 Invalid for a bad name, bad labels or (Jobs) a bad pod template."""
    meta = obj.get("metadata") or {}
    name = meta.get("name") or ""
    causes = _name_causes(res, name) + _label_causes(meta.get("labels"), "metadata.labels")
    if res.plural == "jobs":
        causes += _job_causes(obj)
    for key, value in (obj.get("data") or {}).items() if res.plural == "secrets" else ():
        try:
            base64.b64decode(str(value), validate=True)
        except ValueError:
            raise ApiError.bad_request(
                f'Secret in version "v1" cannot be handled as a Secret: illegal base64 data '
                f"at data[{key!r}]"
            ) from None
    if causes:
        raise ApiError.invalid(res, name, causes)


IMMUTABLE_JOB_FIELDS = ("template", "selector", "completions")


def check_immutable(res: Resource, old: dict[str, Any], new: dict[str, Any]) -> None:
    if res.plural == "secrets" and old.get("type") != new.get("type"):
        raise ApiError.invalid(
            res,
            new["metadata"]["name"],
            [
                (
                    "type",
                    "FieldValueInvalid",
                    f'Invalid value: "{new.get("type")}": field is immutable',
                )
            ],
        )
    if res.plural != "jobs":
        return
    old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
    causes = []
    for field in IMMUTABLE_JOB_FIELDS:
        if old_spec.get(field) != new_spec.get(field):
            value = json.dumps(new_spec.get(field), sort_keys=True, separators=(",", ":"))
            causes.append(
                (
                    f"spec.{field}",
                    "FieldValueInvalid",
                    f"Invalid value: {value}: field is immutable",
                )
            )
    if causes:
        raise ApiError.invalid(res, new["metadata"]["name"], causes)


def default_pod_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("restartPolicy", "Always")
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        image = str(container.get("image", ""))
        latest = ":" not in image.rpartition("/")[2] or image.endswith(":latest")
        container.setdefault(
            "imagePullPolicy", "Always" if latest and "@" not in image else "IfNotPresent"
        )
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("resources", {})


def apply_defaults(res: Resource, obj: dict[str, Any]) -> None:
    """The API server's defaulting, in place (before validation, on every write)."""
    if res.plural == "pods":
        default_pod_spec(obj.setdefault("spec", {}))
    if res.plural == "secrets":
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None) or {}
        data = obj.setdefault("data", {})
        for key, value in string_data.items():  # written as data, never read back
            data[key] = base64.b64encode(str(value).encode()).decode()
        if not data:
            del obj["data"]
    if res.plural != "jobs":
        return
    meta, spec = obj["metadata"], obj.setdefault("spec", {})
    uid, name = meta["uid"], meta["name"]
    if "completions" not in spec and "parallelism" not in spec:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault(
        "podReplacementPolicy", "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed"
    )
    spec.setdefault("selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
    template = spec.setdefault("template", {})
    labels = template.setdefault("metadata", {}).setdefault("labels", {})
    for key, value in (
        ("batch.kubernetes.io/controller-uid", uid),
        ("batch.kubernetes.io/job-name", name),
        ("controller-uid", uid),
        ("job-name", name),
    ):
        labels.setdefault(key, value)
    pod_spec = template.setdefault("spec", {})
    policy = pod_spec.get("restartPolicy")
    default_pod_spec(pod_spec)
    if policy is None:
        pod_spec.pop("restartPolicy")  # a Job's template has no default: validation says so
