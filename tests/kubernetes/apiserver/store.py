"""The object store behind the test API server: one table per resource, a global
resourceVersion counter, and the write paths (create, replace, patch, apply, delete)
with the API server's semantics for metadata, status, generation and garbage collection.

Every method takes and returns copies; one lock serialises writes and reads.
"""

from __future__ import annotations

import bisect
import contextlib
import copy
import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from tests.kubernetes.apiserver import patches, ssa, validation
from tests.kubernetes.apiserver.resources import BY_PLURAL, ApiError, Resource
from tests.kubernetes.apiserver.selectors import field_matcher, label_matcher

NAMESPACES = BY_PLURAL[("", "v1", "namespaces")]
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"

Key = tuple[str, str]  # (namespace or "", name)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _without_managed(obj: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in obj.get("metadata", {}).items() if k != "managedFields"}
    return {**obj, "metadata": meta}


def _spec_part(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


class Store:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.tables: dict[Resource, dict[Key, dict[str, Any]]] = {}
        self.revision = 0
        self.logs: dict[Key, str] = {}  # (namespace, pod) -> log text
        self.restarts: dict[Key, int] = {}  # (namespace, PyTorchJob) -> restarts so far
        self.changed = threading.Condition(self.lock)
        self.closed = False  # set when the server stops: open watches end
        # (resourceVersion, ADDED | MODIFIED | DELETED, resource, object): what watches read
        self.events: list[tuple[int, str, Resource, dict[str, Any]]] = []

    def _event(self, kind: str, res: Resource, obj: dict[str, Any]) -> None:
        self.events.append((self.revision, kind, res, copy.deepcopy(obj)))
        self.changed.notify_all()

    # -- helpers -----------------------------------------------------------------------
    def table(self, res: Resource) -> dict[Key, dict[str, Any]]:
        return self.tables.setdefault(res, {})

    def next_version(self) -> str:
        self.revision += 1
        return str(self.revision)

    def _key(self, res: Resource, namespace: str | None, name: str) -> Key:
        return (namespace or "" if res.namespaced else "", name)

    def require_namespace(self, res: Resource, namespace: str | None) -> None:
        if res.namespaced and ("", namespace or "") not in self.table(NAMESPACES):
            raise ApiError(
                404,
                "NotFound",
                f'namespaces "{namespace}" not found',
                {"name": namespace, "kind": "namespaces"},
            )

    def _current(self, res: Resource, namespace: str | None, name: str) -> dict[str, Any]:
        obj = self.table(res).get(self._key(res, namespace, name))
        if obj is None:
            raise ApiError.not_found(res, name)
        return obj

    # -- reads -------------------------------------------------------------------------
    def get(self, res: Resource, namespace: str | None, name: str) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self._current(res, namespace, name))

    def find(self, res: Resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        with self.lock:
            obj = self.table(res).get(self._key(res, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def list_json(
        self,
        res: Resource,
        namespace: str | None,
        labels: str | None = None,
        fields: str | None = None,
        limit: int = 0,
        cont: str | None = None,
    ) -> str:
        """The list body, serialised under the lock (no copies: the benchmark lists thousands)."""
        label_match, field_match = label_matcher(labels), field_matcher(fields)
        with self.lock:  # a namespace that does not exist lists empty, as on a cluster
            rows = sorted(self.table(res).items())
            items = [
                obj
                for (ns, _), obj in rows
                if (namespace is None or not res.namespaced or ns == namespace)
                and (label_match is None or label_match(obj))
                and (field_match is None or field_match(obj))
            ]
            start = int(cont) if cont else 0
            metadata: dict[str, Any] = {"resourceVersion": str(self.revision)}
            if limit and start + limit < len(items):
                metadata["continue"] = str(start + limit)
                metadata["remainingItemCount"] = len(items) - start - limit
            page = items[start : start + limit] if limit else items[start:]
            if not res.custom:  # built-in lists carry no kind on their items
                page = [
                    {k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in page
                ]
            body = {
                "kind": res.kind + "List",
                "apiVersion": res.api_version,
                "metadata": metadata,
                "items": page,
            }
            return json.dumps(body)

    def list(
        self, res: Resource, namespace: str | None, labels: str | None = None
    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = json.loads(self.list_json(res, namespace, labels))["items"]
        return items

    @contextlib.contextmanager
    def dry_run(self) -> Iterator[None]:
        """``dryRun=All``: the write runs, is answered, then undone (under the lock, so no
        reader or watch sees it). Stored objects are replaced, never changed in place, so
        shallow copies of the tables suffice."""
        with self.lock:
            tables = {res: dict(rows) for res, rows in self.tables.items()}
            revision, events, logs = self.revision, len(self.events), dict(self.logs)
            try:
                yield
            finally:
                self.tables, self.revision, self.logs = tables, revision, logs
                del self.events[events:]

    # -- writes ------------------------------------------------------------------------
    def create(
        self, res: Resource, namespace: str | None, body: dict[str, Any], manager: str
    ) -> dict[str, Any]:
        obj = copy.deepcopy(body)
        with self.lock:
            self.require_namespace(res, namespace)
            meta = obj.setdefault("metadata", {})
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
            if res.namespaced:
                body_ns = meta.get("namespace")
                if body_ns and body_ns != namespace:
                    raise ApiError.bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request"
                    )
                meta["namespace"] = namespace
            for server_field in (
                "uid",
                "resourceVersion",
                "creationTimestamp",
                "managedFields",
                "generation",
                "deletionTimestamp",
            ):
                meta.pop(server_field, None)
            ssa.record_update(None, obj, res, None, manager, now())
            return self._insert(res, obj)

    def _insert(self, res: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        name = meta.get("name") or ""
        if name and self._key(res, meta.get("namespace"), name) in self.table(res):
            raise ApiError.already_exists(res, name)
        obj["apiVersion"], obj["kind"] = res.api_version, res.kind
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now(), generation=1)
        if res.has_status:  # created with an empty status (none at all for custom resources)
            obj.pop("status", None)
            if not res.custom:
                obj["status"] = {}
        if res.plural == "namespaces":
            obj["status"] = {"phase": "Active"}
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = name
        if res.plural == "pods":
            obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
        validation.apply_defaults(res, obj)
        validation.validate(res, obj)
        meta["resourceVersion"] = self.next_version()
        self.table(res)[self._key(res, meta.get("namespace"), name)] = obj
        self._event("ADDED", res, obj)
        return copy.deepcopy(obj)

    def commit(
        self,
        res: Resource,
        old: dict[str, Any],
        new: dict[str, Any],
        sub: str | None,
        manager: str | None,
    ) -> dict[str, Any]:
        """Store ``new`` in place of ``old`` after the checks a write passes; ``manager``
        None: managedFields were already updated (an apply). No change: no new version."""
        with self.lock:
            meta = new.setdefault("metadata", {})
            for server_field in ("name", "namespace", "uid", "creationTimestamp", "generation"):
                if server_field in old["metadata"]:
                    meta[server_field] = old["metadata"][server_field]
            new["apiVersion"], new["kind"] = res.api_version, res.kind
            if sub == "status":  # a status write changes the status only
                new = {
                    **copy.deepcopy(old),
                    "status": new.get("status", {}),
                    "metadata": {
                        **copy.deepcopy(old["metadata"]),
                        "managedFields": meta.get("managedFields", []),
                    },
                }
            elif res.has_status:  # a main write never changes the status
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
            validation.apply_defaults(res, new)
            validation.validate(res, new)
            validation.check_immutable(res, old, new)
            if manager is not None:
                ssa.record_update(old, new, res, sub, manager, now())
            if new == old or (
                _without_managed(new) == _without_managed(old) and ssa.same_ownership(old, new)
            ):
                return copy.deepcopy(old)
            if _spec_part(new) != _spec_part(old):
                new["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
            new["metadata"]["resourceVersion"] = self.next_version()
            self.table(res)[self._key(res, meta.get("namespace"), meta["name"])] = new
            self._event("MODIFIED", res, new)
            return copy.deepcopy(new)

    def replace(
        self,
        res: Resource,
        namespace: str | None,
        name: str,
        body: dict[str, Any],
        manager: str,
        sub: str | None = None,
    ) -> dict[str, Any]:
        with self.lock:
            old = self._current(res, namespace, name)
            new = copy.deepcopy(body)
            meta = new.setdefault("metadata", {})
            if meta.get("name") not in (None, name):
                raise ApiError.bad_request(
                    "the name of the object does not match the name on the URL"
                )
            wanted = meta.get("resourceVersion")
            if wanted and wanted != old["metadata"]["resourceVersion"]:
                raise ApiError.stale(res, name)
            meta["managedFields"] = old["metadata"].get("managedFields", [])
            return self.commit(res, old, new, sub, manager)

    def patch(
        self,
        res: Resource,
        namespace: str | None,
        name: str,
        content_type: str,
        body: Any,
        manager: str | None,
        force: bool = False,
        sub: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """(object, created): an apply creates what is absent."""
        content_type = content_type.split(";")[0].strip()
        with self.lock:
            if content_type == APPLY:
                return self._apply(res, namespace, name, body, manager, force, sub)
            if force:
                raise ApiError(
                    422,
                    "Invalid",
                    "force: Invalid value: true: may not be specified for non-apply patch",
                )
            old = self._current(res, namespace, name)
            if content_type == JSON_PATCH:
                new = patches.json_patch(old, body)
            elif content_type == MERGE or (content_type == STRATEGIC and not res.custom):
                if not isinstance(body, dict):
                    raise ApiError.bad_request("a merge patch must be a JSON object")
                new = patches.merge_patch(copy.deepcopy(old), body)
            else:
                raise ApiError.unsupported_media(
                    content_type,
                    [JSON_PATCH, MERGE, APPLY]
                    if res.custom
                    else [JSON_PATCH, MERGE, STRATEGIC, APPLY],
                )
            wanted = (
                (body.get("metadata") or {}).get("resourceVersion")
                if isinstance(body, dict)
                else None
            )
            if wanted and wanted != old["metadata"]["resourceVersion"]:
                raise ApiError.stale(res, name)
            return self.commit(res, old, new, sub, manager or "unknown"), False

    def _apply(
        self,
        res: Resource,
        namespace: str | None,
        name: str,
        body: Any,
        manager: str | None,
        force: bool,
        sub: str | None,
    ) -> tuple[dict[str, Any], bool]:
        if not manager:
            raise ApiError(
                422, "Invalid", "PATCH, apply: fieldManager is required for apply requests"
            )
        if not isinstance(body, dict):
            raise ApiError.bad_request("apply patch must be an object")
        meta = body.get("metadata") or {}
        if meta.get("managedFields"):
            raise ApiError.bad_request("metadata.managedFields must be nil")
        if meta.get("name") != name:
            raise ApiError.bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
            )
        if body.get("apiVersion") != res.api_version or body.get("kind") != res.kind:
            raise ApiError.bad_request(
                f"apply patch for {res.api_version}, Kind={res.kind}: apiVersion and kind must be set to them"
            )
        old = self.table(res).get(self._key(res, namespace, name))
        if old is None:
            if sub == "status":
                raise ApiError.not_found(res, name)
            self.require_namespace(res, namespace)
            live = {
                "metadata": {"name": name, **({"namespace": namespace} if res.namespaced else {})}
            }
            new = ssa.apply(live, body, res, None, manager, force, now())
            return self._insert(res, new), True
        wanted = meta.get("resourceVersion")
        if wanted and wanted != old["metadata"]["resourceVersion"]:
            raise ApiError.stale(res, name)
        new = ssa.apply(old, body, res, sub, manager, force, now())
        return self.commit(res, old, new, sub, None), False

    def delete(
        self, res: Resource, namespace: str | None, name: str, propagation: str | None = None
    ) -> dict[str, Any]:
        with self.lock:
            obj = copy.deepcopy(self._current(res, namespace, name))
            del self.table(res)[self._key(res, namespace, name)]
            obj["metadata"]["resourceVersion"] = self.next_version()
            self._event("DELETED", res, obj)
            policy = propagation or res.default_propagation
            uid = obj["metadata"]["uid"]
            if res.plural == "namespaces":
                for other, rows in self.tables.items():
                    if other.namespaced:
                        for key in [k for k in rows if k[0] == name]:
                            self.next_version()
                            self._event("DELETED", other, rows.pop(key))
                self.logs = {k: v for k, v in self.logs.items() if k[0] != name}
            elif policy == "Orphan":
                self._orphan_dependents(uid)
            else:
                self._delete_dependents(uid)
            return copy.deepcopy(obj)

    def _delete_dependents(self, uid: str) -> None:
        for res, rows in list(self.tables.items()):
            for key, obj in list(rows.items()):
                owners = obj["metadata"].get("ownerReferences") or []
                if any(o.get("uid") == uid for o in owners):
                    del rows[key]
                    self.logs.pop(key, None)
                    version = self.next_version()
                    self._event(
                        "DELETED",
                        res,
                        {**obj, "metadata": {**obj["metadata"], "resourceVersion": version}},
                    )
                    self._delete_dependents(obj["metadata"]["uid"])

    def _orphan_dependents(self, uid: str) -> None:
        """What the garbage collector does for Orphan: the dependents lose the reference."""
        for res, rows in self.tables.items():
            for key, obj in rows.items():
                owners = obj["metadata"].get("ownerReferences") or []
                if any(o.get("uid") == uid for o in owners):
                    orphan = copy.deepcopy(obj)
                    kept = [o for o in owners if o.get("uid") != uid]
                    if kept:
                        orphan["metadata"]["ownerReferences"] = kept
                    else:
                        del orphan["metadata"]["ownerReferences"]
                    orphan["metadata"]["resourceVersion"] = self.next_version()
                    rows[key] = orphan
                    self._event("MODIFIED", res, orphan)

    # -- pod logs and watches ----------------------------------------------------------
    def pod_log(self, namespace: str, pod: str, query: dict[str, str]) -> str:
        with self.lock:
            text = self.logs.get((namespace, pod), "")
        tail = query.get("tailLines")
        if tail:
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-int(tail) :]) if int(tail) > 0 else ""
        return text

    def watch(
        self, res: Resource, namespace: str | None, query: dict[str, str]
    ) -> Iterator[dict[str, Any]]:
        """Watch events after ``resourceVersion`` (none or "0": ADDED for what exists first),
        until ``timeoutSeconds`` (at most 60) pass."""
        label_match, field_match = (
            label_matcher(query.get("labelSelector")),
            field_matcher(query.get("fieldSelector")),
        )

        def wanted(event_res: Resource, obj: dict[str, Any]) -> bool:
            return (
                event_res == res
                and (namespace is None or obj["metadata"].get("namespace") == namespace)
                and (label_match is None or label_match(obj))
                and (field_match is None or field_match(obj))
            )

        deadline = time.monotonic() + min(float(query.get("timeoutSeconds") or 60), 60.0)
        since = query.get("resourceVersion") or "0"
        with self.lock:
            if since == "0":
                start = self.revision
                initial = [copy.deepcopy(o) for o in self.table(res).values() if wanted(res, o)]
            else:
                start, initial = int(since), []
        for obj in initial:
            yield {"type": "ADDED", "object": obj}
        position = bisect.bisect_right([e[0] for e in self.events], start)
        while True:
            with self.lock:
                while position >= len(self.events):
                    left = deadline - time.monotonic()
                    if left <= 0 or self.closed:
                        return
                    self.changed.wait(min(left, 0.5))
                batch = self.events[position:]
                position = len(self.events)
            for _, kind, event_res, obj in batch:
                if wanted(event_res, obj):
                    yield {"type": kind, "object": obj}
