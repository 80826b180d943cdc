"""``pipeform lineage``: from a registered model version to its training run, FeatureSet
materialisation, Dataset snapshot and the spec commits behind each, as plain data.

Sources: the state (what is applied now), the local model registry (each version's
recorded lineage: run config, input tables and digests, the spec commit), the journal
(which apply, from which commit, last set each upstream resource) and git (who wrote each
hyperparameter's value). Renderers are in ``reconciler.audit.lineage_render``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reconciler.audit import gitlog
from reconciler.diagnostics import PipeformError
from reconciler.state.backend import StateBackend
from reconciler.state.journal import fold
from reconciler.state.model import ResourceState, State

JOB = "TrainingJob"
_SET = ("create", "update", "replace", "delete-then-create", "create-then-delete")


def parse_ref(text: str) -> tuple[str, int | None]:
    """``TrainingJob/name@3``, ``model@3`` or without ``@version`` (the applied one)."""
    name, _, version = text.partition("@")
    if not name or (version and not version.isdigit()):
        raise PipeformError(
            f"{text!r} is not a model reference: give TrainingJob/NAME[@VERSION] or "
            "MODEL[@VERSION], for example TrainingJob/expense-model@2"
        )
    return name, int(version) if version else None


def find_job(state: State, name: str) -> ResourceState:
    """The TrainingJob an address or a registered model name refers to."""
    jobs = [r for r in state.resources.values() if r.kind == JOB]
    for job in jobs:
        register = (job.spec.get("spec") or {}).get("register") or {}
        if job.address == name or register.get("model") == name:
            return job
    known = ", ".join(sorted(j.address for j in jobs)) or "none applied"
    raise PipeformError(f"{name} is not a trained TrainingJob or model in the state ({known})")


def registry_version(job: ResourceState, version: int | None) -> Any:
    """The registry's record of the version (the applied one when version is None)."""
    from trainer.registry.local import LocalRegistry, RegistryError

    uri = str(job.outputs.get("modelUri") or "")
    model = ((job.spec.get("spec") or {}).get("register") or {}).get("model")
    if not uri or "/artifacts/sha256/" not in uri or not model:
        raise PipeformError(
            f"{job.address} has no version in a local registry (lineage reads the local "
            "registry; an MLflow registry keeps its own lineage)"
        )
    root = Path(uri.split("/artifacts/sha256/")[0])
    try:
        return LocalRegistry(root).get(model, version or int(job.outputs["modelVersion"]))
    except RegistryError as exc:
        raise PipeformError(f"{job.address}: {exc}") from None


def _journal_commit(backend: StateBackend, address: str, before: str) -> str | None:
    """The spec commit of the newest apply, at or before ``before``, that set address."""
    found = None
    for record in fold(backend.journal(1 << 62)):
        if record.started_at > before:
            break
        for change in record.changes:
            if (
                change.get("address") == address
                and change.get("status") == "succeeded"
                and change.get("action") in _SET
            ):
                found = record.spec_commit
    return found


def _commit(root: Path, sha: str | None) -> dict[str, Any]:
    if not sha:
        return {"sha": None, "dirty": False, "note": "not in a git checkout when applied"}
    clean = sha.removesuffix("-dirty")
    info = gitlog.commit_info(root, clean)
    out: dict[str, Any] = {"sha": clean, "dirty": sha.endswith("-dirty")}
    out.update(info.to_dict() if info else {"note": "commit not in this repository"})
    if out["dirty"]:
        out["note"] = "the specs had uncommitted changes on top of this commit"
    return out


def _hyperparameters(root: Path, job: str, commit: dict[str, Any], config: dict[str, Any]) -> Any:
    name = job.split("/", 1)[1]
    path = gitlog.find_document(root, JOB, name)
    if path is None or not commit.get("author"):
        return None, []
    rev = commit["sha"]
    doc = gitlog.document_in(gitlog.file_at(root, rev, path), JOB, name)
    params = gitlog.value_at(doc, "spec.hyperparameters")
    out = []
    for key in sorted(params) if isinstance(params, dict) else []:
        value, sha = gitlog.introduced(root, rev, path, JOB, name, f"spec.hyperparameters.{key}")
        info = gitlog.commit_info(root, sha) if sha else None
        used = config.get(_snake(key), value)
        entry = {"name": key, "value": value, "commit": info.to_dict() if info else None}
        if commit["dirty"] and used != value:
            entry.update(value=used, commit=None, note="uncommitted: in no commit")
        out.append(entry)
    return path.as_posix(), out


def _snake(key: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in key)


def lineage(root: Path, backend: StateBackend, ref: str) -> dict[str, Any]:
    """Everything ``pipeform lineage`` shows, as JSON-ready data."""
    name, version = parse_ref(ref)
    state = backend.read()
    job = find_job(state, name)
    mv = registry_version(job, version)
    recorded = mv.lineage
    config = recorded.get("config") or {}
    inputs = config.get("inputs") or _inputs_from_state(state, job, mv.run_id)
    links = recorded.get("lineage") or {}
    commit = _commit(root, links.get("git_commit"))
    spec_file, hyper = _hyperparameters(
        root, job.address, commit, config.get("hyperparameters") or {}
    )
    fs_address, _, fs_id = str(inputs.get("featureset", "")).partition("@")
    snapshots = list(inputs.get("dataset_snapshots") or [])
    dataset = _dataset(root, backend, state, snapshots, mv.created_at)
    return {
        "model": mv.model,
        "version": mv.version,
        "registered_at": mv.created_at,
        "aliases": list(mv.aliases),
        "package_sha256": mv.package_sha256,
        "uri": mv.uri,
        "metrics": recorded.get("metrics") or {},
        "trainer": recorded.get("trainer") or {},
        "device": config.get("device"),
        "training_job": {
            "address": job.address,
            "run_id": mv.run_id,
            "spec_file": spec_file,
            "spec_hash": links.get("spec_hash"),
            "spec_commit": commit,
            "hyperparameters": hyper,
            "gates": config.get("gates") or [],
        },
        "feature_set": {
            "address": fs_address,
            "id": fs_id,
            "train": inputs.get("train"),
            "validation": inputs.get("validation"),
            "transform_digest": inputs.get("transform_digest"),
            "transform_path": inputs.get("transform_path"),
            "spec_commit": _commit(root, _journal_commit(backend, fs_address, mv.created_at)),
        },
        "dataset": dataset,
    }


def _inputs_from_state(state: State, job: ResourceState, run_id: str) -> dict[str, Any]:
    """A package that recorded no run config: its inputs as the state has them, when the
    version is the applied one (the same run)."""
    if job.outputs.get("runId") != run_id:
        return {}
    fs_id = job.outputs.get("featureSet")
    for resource in state.resources.values():
        out = resource.outputs
        if resource.kind == "FeatureSet" and out.get("id") == fs_id:
            return {
                "featureset": f"{resource.address}@{fs_id}",
                "dataset_snapshots": [out.get("datasetSnapshot")],
                "train": out.get("train"),
                "validation": out.get("validation"),
                "transform_digest": (out.get("transform") or {}).get("digest"),
                "transform_path": (out.get("transform") or {}).get("path"),
            }
    return {}


def _dataset(
    root: Path, backend: StateBackend, state: State, snapshots: list[str], before: str
) -> dict[str, Any]:
    snapshot = snapshots[0] if snapshots else None
    for resource in state.resources.values():
        if resource.kind == "Dataset" and resource.outputs.get("snapshot") == snapshot:
            out = resource.outputs
            return {
                "address": resource.address,
                "snapshot": snapshot,
                "path": out.get("path"),
                "sha256": out.get("sha256"),
                "rows": out.get("rows"),
                "summary": out.get("summary"),
                "source_fingerprint": out.get("fingerprint"),
                "spec_commit": _commit(root, _journal_commit(backend, resource.address, before)),
            }
    return {"address": None, "snapshot": snapshot, "note": "no longer the applied snapshot"}
