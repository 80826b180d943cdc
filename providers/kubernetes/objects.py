"""The marks pipeform leaves on every object it makes, and what it reads back from them.

Every object carries the labels ``app.kubernetes.io/managed-by: pipeform``,
``pipeform.dev/lineage: <state lineage>`` and ``pipeform.dev/address-hash`` (the first 16
hex digits of sha256 of the address: a label value cannot hold the ``/`` of
``Kind/name``), and the annotation ``pipeform.dev/address: Kind/name``. Refresh lists a
kind by the first two; a create that finds an object with this resource's address and
lineage adopts it, one of another is refused with a pointer to ``pipeform import``.

``project`` is the observed projection: the live object's values at the places the
manifest sets, so a change by hand to a field pipeform manages is drift, and what the
server adds (status, defaults, managedFields) is not.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from providers import handlers
from providers.base import JSON, OWNER_ADDRESS, OWNER_LINEAGE, ResourceContext
from providers.kubernetes.client import Resource, resource_of

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "pipeform"
ADDRESS_HASH = "pipeform.dev/address-hash"
ADDRESS_ANNOTATION = OWNER_ADDRESS  # pipeform.dev/address
LINEAGE_LABEL = OWNER_LINEAGE  # pipeform.dev/lineage
SENSITIVE = "(sensitive)"


@dataclass(frozen=True)
class ObjectRef:
    """Where one object lives: its resource, namespace and name."""

    resource: Resource
    namespace: str | None
    name: str

    @classmethod
    def of(cls, manifest: JSON) -> ObjectRef:
        metadata = manifest.get("metadata") or {}
        return cls(resource_of(manifest), metadata.get("namespace"), str(metadata.get("name")))

    @property
    def id(self) -> str:
        """``namespace/name`` (the external id and the ``pipeform import`` id)."""
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    @property
    def shown(self) -> str:
        """``ResourceQuota ml/gpu``, for messages."""
        return f"{self.resource.kind} {self.id}"


def address_hash(address: str) -> str:
    """The first 16 hex digits of sha256(address): a label value that selects one resource."""
    return hashlib.sha256(address.encode("utf-8")).hexdigest()[:16]


def ownership(ctx: ResourceContext) -> JSON:
    """The labels and annotation that mark an object as this resource's."""
    return {
        "labels": {
            MANAGED_BY: MANAGER,
            LINEAGE_LABEL: ctx.lineage,
            ADDRESS_HASH: address_hash(ctx.address),
        },
        "annotations": {ADDRESS_ANNOTATION: ctx.address},
    }


def owned(manifest: JSON, ctx: ResourceContext, labels: Mapping[str, Any] | None = None) -> JSON:
    """The manifest with the document's labels, and the ownership labels and annotation,
    merged into its metadata."""
    marks = ownership(ctx)
    metadata = dict(manifest.get("metadata") or {})
    metadata["labels"] = {
        **{str(k): str(v) for k, v in (labels or {}).items()},
        **(metadata.get("labels") or {}),
        **marks["labels"],
    }
    metadata["annotations"] = {**(metadata.get("annotations") or {}), **marks["annotations"]}
    return {**manifest, "metadata": metadata}


def selector(lineage: str) -> str:
    """The label selector of every object one state made."""
    return f"{MANAGED_BY}={MANAGER},{LINEAGE_LABEL}={lineage}"


def owner(live: JSON) -> tuple[str, str] | None:
    """(address, lineage) of a live object pipeform made, else None."""
    metadata = live.get("metadata") or {}
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    address = annotations.get(ADDRESS_ANNOTATION)
    if labels.get(MANAGED_BY) != MANAGER or not address or LINEAGE_LABEL not in labels:
        return None
    return str(address), str(labels[LINEAGE_LABEL])


def is_ours(live: JSON, ctx: ResourceContext) -> bool:
    return owner(live) == (ctx.address, ctx.lineage)


def claim(live: JSON, ctx: ResourceContext, ref: ObjectRef) -> None:
    """Refuse to take over an object that is not this resource's (of this state)."""
    handlers.claim_owned(owner(live), ctx, ref.shown, ref.id)


def project(desired: Any, live: Any) -> Any:
    """The live value at the places ``desired`` sets: mappings keep the desired keys
    (a key missing live reads None), lists of equal length are projected item by item,
    anything else is the live value."""
    if isinstance(desired, dict):
        source = live if isinstance(live, dict) else {}
        return {key: project(value, source.get(key)) for key, value in desired.items()}
    if isinstance(desired, list) and isinstance(live, list) and len(desired) == len(live):
        return [project(d, v) for d, v in zip(desired, live, strict=True)]
    return live


def observed_of(manifest: JSON, live: JSON) -> JSON:
    """What refresh compares for one object: the manifest's metadata labels and
    annotations and every other top-level field it sets, as the cluster holds them."""
    metadata = manifest.get("metadata") or {}
    shown: JSON = {
        "labels": project(metadata.get("labels") or {}, (live.get("metadata") or {}).get("labels")),
        "annotations": project(
            metadata.get("annotations") or {}, (live.get("metadata") or {}).get("annotations")
        ),
    }
    for key, value in manifest.items():
        if key not in ("apiVersion", "kind", "metadata"):
            shown[key] = project(value, live.get(key))
    return shown


def masked(manifest: JSON) -> JSON:
    """A manifest as plans show it: a Secret's data and stringData values masked."""
    if manifest.get("kind") != "Secret":
        return manifest
    out = dict(manifest)
    for key in ("data", "stringData"):
        if isinstance(out.get(key), dict):
            out[key] = dict.fromkeys(out[key], SENSITIVE)
    return out
