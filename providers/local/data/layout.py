"""Where a Dataset's snapshots live and what names them; no heavy imports (plan uses it).

``<dataDir>/datasets/<name>/`` holds ``current.json`` (the live record), ``snapshots/<id>/``
and ``reports/``. A snapshot id is ``ds-`` and the first 24 hex digits of the sha256 of the
canonical JSON of the source fingerprint, the spec parts a snapshot depends on, the
reader version and the snapshot format.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from providers.base import JSON
from providers.local import files
from providers.local.data import READER_VERSION
from providers.local.settings import LocalSettings
from reconciler.kinds.data import DatasetSpec

#: bump when a snapshot's bytes change for the same source and spec, so that new snapshots
#: are not taken for old ones. 2: a parquet source whose declared columns already have
#: their types is the snapshot byte for byte (1 re-encoded every source as zstd)
SNAPSHOT_FORMAT = 2


def dataset_dir(settings: LocalSettings, name: str) -> Path:
    return settings.data_dir / "datasets" / files.check_name(name, "Dataset name")


def spec_material(spec: DatasetSpec) -> JSON:
    """The parts of a spec a snapshot depends on (descriptions and labels are not)."""
    dumped = spec.model_dump(mode="json", by_alias=True)
    return {
        "source": {"format": spec.source.inferred_format(), "csv": dumped["source"]["csv"]},
        "schema": [{k: v for k, v in c.items() if k != "description"} for c in dumped["schema"]],
        "strictColumns": dumped["strictColumns"],
        "validation": dumped["validation"],
    }


def snapshot_key(spec: DatasetSpec, fingerprint: str) -> str:
    """The full sha256 hex that names the snapshot of these bytes under this spec."""
    material = {
        "fingerprint": fingerprint,
        "spec": spec_material(spec),
        "reader": READER_VERSION,
        "format": SNAPSHOT_FORMAT,
    }
    return hashlib.sha256(_canonical(material).encode("utf-8")).hexdigest()


def same_material(manifest: JSON, spec: DatasetSpec, fingerprint: str) -> bool:
    """Whether a snapshot's manifest records these source bytes under this spec: a snapshot
    that does and yet has another id was taken by another reader version or format."""
    recorded = (manifest.get("source") or {}).get("fingerprint"), manifest.get("spec")
    return recorded[0] == fingerprint and _canonical(recorded[1]) == _canonical(spec_material(spec))


def manifest_unverified(directory: Path) -> JSON | None:
    """A snapshot's manifest as written, without hashing its data (None: none readable)."""
    try:
        manifest = json.loads((directory / "manifest.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def snapshot_id(key: str) -> str:
    return f"ds-{key[:24]}"


def current_path(settings: LocalSettings, name: str) -> Path:
    return dataset_dir(settings, name) / "current.json"
