"""Talking to the cluster: configuration, the resource table, and every API call pipeform makes.

``KubeClient`` loads its configuration on the first call (a kubeconfig file and context, or
the pod's service account in-cluster), then sends each request through the official
client's ``ApiClient`` (``param_serialize`` + ``call_api``: its transport, TLS, auth and
retries) with a path from ``RESOURCES``, a small table of the kinds pipeform touches, so no
discovery request is ever spent. Bodies are read as plain JSON, never deserialised into
model classes.

Writes are server-side apply (``PATCH`` with ``application/apply-patch+yaml``,
``fieldManager=pipeform``; ``force`` only when asked). Every failure becomes one provider
error in words built from what pipeform asked (the verb, the resource, the namespace), not
from the server's text: ``failure`` maps the HTTP status. The ``kubernetes`` package is
imported here only, when the first call is made.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from providers.base import JSON, PermanentError, ProviderError, RetryableError
from providers.kubernetes.settings import KubeSettings

FIELD_MANAGER = "pipeform"
APPLY_PATCH = "application/apply-patch+yaml"
REQUEST_TIMEOUT = (10.0, 60.0)  # (connect, read) seconds
RBAC_DOCS = "docs/kubernetes-rbac.yaml (see docs/kubernetes.md#rbac)"


@dataclass(frozen=True)
class Resource:
    """One kind of API object: where it lives and how RBAC names it."""

    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        """``plural.group`` (``jobs.batch``), as RBAC messages and kubectl name it."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def path(self, namespace: str | None = None, name: str | None = None, sub: str = "") -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name, safe='')}"
        return base + (f"/{sub}" if sub else "")


_TABLE = (
    Resource("", "v1", "namespaces", "Namespace", namespaced=False),
    Resource("", "v1", "configmaps", "ConfigMap"),
    Resource("", "v1", "secrets", "Secret"),
    Resource("", "v1", "resourcequotas", "ResourceQuota"),
    Resource("", "v1", "pods", "Pod"),
    Resource("", "v1", "events", "Event"),
    Resource("batch", "v1", "jobs", "Job"),
    Resource("kubeflow.org", "v1", "pytorchjobs", "PyTorchJob"),
    Resource("monitoring.coreos.com", "v1", "prometheusrules", "PrometheusRule"),
)
#: every resource pipeform touches, by ``Resource.key`` (``jobs.batch``)
RESOURCES: Mapping[str, Resource] = {r.key: r for r in _TABLE}
_BY_KIND: Mapping[tuple[str, str], Resource] = {(r.api_version, r.kind): r for r in _TABLE}


def resource_of(manifest: JSON) -> Resource:
    """The table entry for a manifest's apiVersion and kind."""
    found = _BY_KIND.get((str(manifest.get("apiVersion")), str(manifest.get("kind"))))
    if found is None:
        raise PermanentError(
            f"the kubernetes provider does not know {manifest.get('apiVersion')} "
            f"{manifest.get('kind')} objects"
        )
    return found


@dataclass(frozen=True)
class Call:
    """What pipeform asked: the RBAC verb, the resource, the namespace and object name."""

    verb: str  # get, list, create, patch, update, delete
    resource: Resource
    namespace: str | None
    name: str | None = None
    sub: str = ""

    @property
    def what(self) -> str:
        """``resourcequotas "gpu" in namespace "ml"``, for messages."""
        text = self.resource.key + (f"/{self.sub}" if self.sub else "")
        if self.name:
            text += f" {self.name!r}"
        if self.namespace and self.resource.namespaced:
            text += f" in namespace {self.namespace!r}"
        return text


class KubeClient:
    """The cluster connection of one provider instance, made on the first call."""

    def __init__(self, settings: KubeSettings) -> None:
        self.settings = settings
        self._api: Any = None
        self._lock = threading.Lock()
        self.host = ""  # the API server's URL, once configured
        #: why no call can succeed (no configuration, refused credentials, no server), and
        #: when that was found: the apply's checks report it once, not once per object
        self.unusable: str | None = None
        self.reported_at = -1e9  # when an apply's check last reported ``unusable``

    # --- configuration ---------------------------------------------------------------

    def api(self) -> Any:
        """The official client's ApiClient, configured on first use."""
        with self._lock:
            if self._api is None:
                from kubernetes import client

                configuration = client.Configuration()
                try:
                    if self.settings.in_cluster:
                        _load_in_cluster(configuration)
                    else:
                        _load_kubeconfig(self.settings, configuration)
                except ProviderError as exc:
                    self._broken(str(exc))
                    raise
                self.host = str(configuration.host).rstrip("/")
                self._api = client.ApiClient(configuration)
            return self._api

    # --- requests --------------------------------------------------------------------

    def request(
        self,
        method: str,
        call: Call,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str | None = None,
    ) -> JSON:
        """One API call; the response body as JSON. Errors become provider errors."""
        api = self.api()
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        path = call.resource.path(call.namespace, call.name, call.sub)
        try:
            serialized = api.param_serialize(
                method,
                path,
                query_params=query or None,
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            response = api.call_api(*serialized, _request_timeout=REQUEST_TIMEOUT)
            data = response.read()
        except ProviderError:
            raise
        except Exception as exc:
            problem = self.unreachable(exc, call)
            self._broken(str(problem))
            raise problem from None
        status = int(response.status)
        parsed = _json(data)
        if 200 <= status < 300:
            self.unusable = None
            return parsed if isinstance(parsed, dict) else {}
        error = failure(self, call, status, parsed if isinstance(parsed, dict) else {})
        if status == 401:
            self._broken(str(error))
        raise error

    def _broken(self, why: str) -> None:
        self.unusable = why

    def reported_recently(self, seconds: float = 60.0) -> bool:
        """Whether an apply's check reported the cluster unusable within ``seconds`` (the
        other objects' checks then say nothing more)."""
        return self.unusable is not None and time.monotonic() - self.reported_at < seconds

    def report_unusable(self) -> bool:
        """Note that the cluster's unusability was just reported; False when it is usable."""
        if self.unusable is None:
            return False
        self.reported_at = time.monotonic()
        return True

    def get(self, resource: Resource, namespace: str | None, name: str) -> JSON | None:
        """The object, or None when there is none."""
        try:
            return self.request("GET", Call("get", resource, namespace, name))
        except NotFound:
            return None

    def list(self, resource: Resource, namespace: str | None, selector: str) -> list[JSON]:
        """Objects matching a label selector: one LIST, unpaged (no ``limit``: refresh
        makes one request per kind and namespace), following ``continue`` if a server
        pages anyway."""
        found: list[JSON] = []
        token = ""
        call = Call("list", resource, namespace)
        while True:
            query = [("labelSelector", selector)]
            if token:
                query.append(("continue", token))
            body = self.request("GET", call, query=query)
            found.extend(i for i in body.get("items") or [] if isinstance(i, dict))
            token = str((body.get("metadata") or {}).get("continue") or "")
            if not token:
                return found

    def apply(self, manifest: JSON, *, force: bool = False, dry_run: bool = False) -> JSON:
        """Server-side apply of a whole object as field manager ``pipeform``; with
        ``dry_run`` the server checks everything and stores nothing."""
        resource = resource_of(manifest)
        metadata = manifest.get("metadata") or {}
        call = Call("patch", resource, metadata.get("namespace"), str(metadata.get("name")))
        query = [("fieldManager", FIELD_MANAGER)]
        if force:
            query.append(("force", "true"))
        if dry_run:
            query.append(("dryRun", "All"))
        return self.request("PATCH", call, query=query, body=manifest, content_type=APPLY_PATCH)

    def merge_patch(self, ref: Any, patch: JSON) -> JSON:
        """A JSON merge patch of ``{"metadata": patch}`` (an ``objects.ObjectRef``), as an
        Update by field manager ``pipeform``: it takes no field from another manager."""
        call = Call("patch", ref.resource, ref.namespace, ref.name)
        return self.request(
            "PATCH",
            call,
            query=[("fieldManager", FIELD_MANAGER)],
            body={"metadata": patch},
            content_type="application/merge-patch+json",
        )

    def delete(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        propagation: str = "Background",
    ) -> bool:
        """Delete the object (its dependents per ``propagation``); False when it was gone."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        try:
            self.request("DELETE", Call("delete", resource, namespace, name), body=body)
        except NotFound:
            return False
        return True

    def unreachable(self, exc: BaseException, call: Call) -> ProviderError:
        """A transport failure: the cluster could not be reached (retryable) or TLS failed."""
        from kubernetes.client.exceptions import ApiException

        where = self.host or "the cluster"
        if isinstance(exc, ApiException) and exc.status == 0:  # the client's SSL errors
            return PermanentError(
                f"cannot {call.verb} {call.what}: the TLS connection to {where} failed; check "
                "the cluster's certificate-authority in the kubeconfig"
            )
        return RetryableError(
            f"cannot reach the Kubernetes API server at {where} ({type(exc).__name__}) to "
            f"{call.verb} {call.what}; is the cluster up, and is it the right context?",
            2.0,
        )


class NotFound(PermanentError):
    """HTTP 404: the object, or its namespace, does not exist."""

    def __init__(self, message: str, kind: str = "") -> None:
        super().__init__(message)
        self.kind = kind  # details.kind of the Status: "namespaces" when the namespace is missing


class Conflict(PermanentError):
    """HTTP 409: an apply conflicts with another field manager, or the object exists."""

    def __init__(self, message: str, managers: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.managers = managers


_MANAGER = re.compile(r'conflict with "([^"]+)"')


def failure(client: KubeClient, call: Call, status: int, body: JSON) -> ProviderError:
    """The error for an HTTP status, in words built from what pipeform asked."""
    where = client.host or "the cluster"
    doing = f"{call.verb} {call.what}"
    found = body.get("details")
    details: JSON = found if isinstance(found, dict) else {}
    if status == 401:
        return PermanentError(
            f"the credentials were refused by {where} (HTTP 401 Unauthorized) trying to "
            f"{doing}; renew the token or certificate in {_source(client.settings)}"
        )
    if status == 403:
        group = call.resource.group or "core"
        sub = f"/{call.sub}" if call.sub else ""
        scope = (
            f"in namespace {call.namespace!r}"
            if call.resource.namespaced and call.namespace
            else "cluster-wide"
        )
        return PermanentError(
            f"the cluster at {where} does not allow pipeform to {call.verb} "
            f"{call.resource.plural}{sub} (API group {group}) {scope} (HTTP 403 Forbidden); "
            f"grant it with the Role and ClusterRole in {RBAC_DOCS}"
        )
    if status == 404:
        kind = str(details.get("kind") or "")
        if kind == "namespaces" or call.verb in ("create", "patch"):
            name = details.get("name") or call.namespace
            return NotFound(
                f"namespace {name!r} does not exist on {where}; create it (kubectl create "
                f"namespace {name}) or name another in providers.kubernetes.namespace",
                "namespaces",
            )
        return NotFound(f"{call.what} was not found on {where}", kind)
    if status == 409:
        return _conflict(call, body, details)
    if status == 422:
        causes = [c for c in details.get("causes") or [] if isinstance(c, dict)]
        fields = sorted({str(c.get("field")) for c in causes if c.get("field")})
        listed = f" (fields: {', '.join(fields)})" if fields else ""
        return PermanentError(
            f"{where} refused to {doing}: the object is invalid{listed}; this is a bug in "
            "pipeform's rendering unless a field is immutable, then replace the resource "
            "(pipeform apply --replace ADDRESS)"
        )
    if status == 429 or status >= 500:
        return RetryableError(f"{where} is busy or failing (HTTP {status}) to {doing}", 2.0)
    return PermanentError(f"{where} answered HTTP {status} to {doing}")


def _conflict(call: Call, body: JSON, details: JSON) -> Conflict:
    if str(body.get("reason")) == "AlreadyExists":
        return Conflict(f"{call.what} already exists")
    causes = [c for c in details.get("causes") or [] if isinstance(c, dict)]
    managers = tuple(
        sorted({m.group(1) for c in causes if (m := _MANAGER.search(str(c.get("message"))))})
    )
    fields = sorted({str(c.get("field")) for c in causes if c.get("field")})
    if not managers:  # a stale resourceVersion, or a conflict of another sort
        return Conflict(f"{call.what} was changed by someone else meanwhile; run the apply again")
    who = ", ".join(f'"{m}"' for m in managers)
    return Conflict(
        f"{call.what}: fields pipeform sets are managed by {who} "
        f"({', '.join(fields) or 'fields not named'}): someone changed them by hand; run "
        "`pipeform apply --force-conflicts` to take them back, or change the document to match",
        managers,
    )


def _source(settings: KubeSettings) -> str:
    if settings.in_cluster:
        return "the pod's service account"
    context = f" (context {settings.context})" if settings.context else ""
    return f"{settings.shown(settings.kubeconfig_path())}{context}"


def _json(data: bytes | None) -> Any:
    if not data:
        return {}
    try:
        return json.loads(data)
    except ValueError:
        return {}


# --- configuration -----------------------------------------------------------------------


def _load_in_cluster(configuration: Any) -> None:
    from kubernetes import config

    try:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        raise PermanentError(
            "providers.kubernetes.inCluster is set, but pipeform is not running in a pod "
            "with a service account (no KUBERNETES_SERVICE_HOST, or no token under "
            "/var/run/secrets/kubernetes.io/serviceaccount); run it in the cluster, or "
            "name a kubeconfig instead"
        ) from None


def kubeconfig_contexts(path: Path, shown: str) -> tuple[list[str], str | None]:
    """The context names of a kubeconfig file and its current context; a PermanentError
    naming the file and what is wrong when it cannot serve."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PermanentError(
            f"{shown}: the kubeconfig file does not exist; set providers.kubernetes.kubeconfig "
            "or KUBECONFIG, or inCluster: true inside a cluster"
        ) from None
    except OSError as exc:
        raise PermanentError(f"{shown}: cannot read the kubeconfig ({exc.strerror})") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise PermanentError(f"{shown}{line}: the kubeconfig is not valid YAML") from None
    if not isinstance(document, dict):
        raise PermanentError(f"{shown}: the kubeconfig is not a mapping (kind: Config)")
    for key in ("clusters", "contexts", "users"):
        entries = document.get(key)
        if not isinstance(entries, list) or not all(
            isinstance(e, dict) and e.get("name") for e in entries
        ):
            raise PermanentError(
                f"{shown}: the kubeconfig has no valid {key} list (each entry needs a name)"
            )
    names = [str(c["name"]) for c in document["contexts"]]
    current = document.get("current-context")
    return names, str(current) if current else None


def _load_kubeconfig(settings: KubeSettings, configuration: Any) -> None:
    from kubernetes import config

    path = settings.kubeconfig_path()
    shown = settings.shown(path)
    names, current = kubeconfig_contexts(path, shown)
    context = settings.context or current
    if context is None:
        raise PermanentError(
            f"{shown}: the kubeconfig has no current-context; name one in "
            f"providers.kubernetes.context (known: {', '.join(names) or 'none'})"
        )
    if context not in names:
        raise PermanentError(
            f"{shown}: there is no context {context!r} in the kubeconfig (known: "
            f"{', '.join(names) or 'none'}); fix providers.kubernetes.context"
        )
    try:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(path),
            context=context,
            client_configuration=configuration,
            persist_config=False,
        )
    except (config.ConfigException, ValueError, TypeError, KeyError) as exc:
        raise PermanentError(
            f"{shown}: the kubeconfig cannot be used with context {context!r}: "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None
