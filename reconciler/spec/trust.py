"""The trust boundary: what an untrusted run (a pull request's plan) may reach.

A run is untrusted when ``--untrusted`` is given, ``PIPEFORM_UNTRUSTED=1`` is set, or a
trusted configuration is named (``--trusted-config FILE`` or ``PIPEFORM_TRUSTED_CONFIG``:
a file CI takes from the protected branch, after Atlantis's server-side repo config).
The Workspace settings that widen what pipeform may read, contact or write (the state
backend and its location, every endpoint, locations outside the tree, external paths)
carry ``reconciler.kinds.common.TRUSTED``. In an untrusted run each must equal the trusted
configuration's value (absent there: its built-in default, which stays inside the tree
and contacts nothing), else the run is refused before anything is read or contacted,
naming each setting and its file:line. The spec files themselves are read only inside
the tree, and the tree's own ``.pipeform`` is the only place written to.

docs/security.md states the promises; tests/security checks each.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.diagnostics import Diagnostics, PipeformError, error
from reconciler.kinds import API_VERSION
from reconciler.spec.source import DataPath, RawDocument, parse_bytes, read_bytes

UNTRUSTED_ENV = "PIPEFORM_UNTRUSTED"
TRUSTED_CONFIG_ENV = "PIPEFORM_TRUSTED_CONFIG"
TRUSTED_KIND = "TrustedConfig"
MARKER = "x-pipeform-trusted"


@dataclass(frozen=True)
class Trust:
    """Whether this run is untrusted, and the trusted configuration it is held to."""

    untrusted: bool = False
    config_file: Path | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)  # the file's spec, JSON form
    source: RawDocument | None = None  # for positions in the file

    @classmethod
    def resolve(
        cls,
        untrusted: bool = False,
        config_file: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Trust:
        """The trust of this run from the command's options and the environment."""
        env = os.environ if environ is None else environ
        if config_file is None and env.get(TRUSTED_CONFIG_ENV, "").strip():
            config_file = Path(env[TRUSTED_CONFIG_ENV].strip())
        flag = env.get(UNTRUSTED_ENV, "").strip().lower() in ("1", "true", "yes", "on")
        if config_file is None:
            return cls(untrusted=untrusted or flag)
        settings, source = _read_config(config_file)
        return cls(True, config_file, settings, source)


TRUSTED = Trust()  # a local run: the Workspace is the user's own


def _read_config(path: Path) -> tuple[dict[str, Any], RawDocument]:
    """The trusted configuration's spec, checked: only trusted settings, in their shape."""
    found = Diagnostics()
    data = read_bytes(path, str(path), found)
    documents = parse_bytes(data, str(path), found) if data is not None else []
    if found.has_errors:
        raise PipeformError(found)
    if len(documents) != 1 or not isinstance(documents[0].data, dict):
        raise PipeformError(
            Diagnostics(
                [
                    error(
                        "a trusted configuration is one document",
                        documents[0].start if documents else None,
                        hint=f"write apiVersion: {API_VERSION}, kind: {TRUSTED_KIND} and spec",
                    )
                ]
            )
            if documents
            else f"{path}: the trusted configuration is empty; write apiVersion: "
            f"{API_VERSION}, kind: {TRUSTED_KIND} and spec"
        )
    raw = documents[0]
    doc = raw.data
    problems = Diagnostics()
    if doc.get("apiVersion") != API_VERSION or doc.get("kind") != TRUSTED_KIND:
        problems.add(
            error(
                f"a trusted configuration has apiVersion: {API_VERSION} and kind: {TRUSTED_KIND}",
                raw.start,
                hint="see docs/security.md for its shape",
            )
        )
    extra = sorted(set(doc) - {"apiVersion", "kind", "metadata", "spec"})
    for key in extra:
        problems.add(error(f"{key} is not a known field", raw.key_position((key,))))
    spec = doc.get("spec", {})
    if not isinstance(spec, dict):
        problems.add(error("spec must be a mapping", raw.position(("spec",))))
        spec = {}
    trusted = trusted_paths()
    for written in _leaves(spec, ("spec",)):
        setting = written[1:]
        if not any(setting[: len(t)] == t for t in trusted):
            problems.add(
                error(
                    f"{_dotted(written)} is not a setting that trusted configuration holds",
                    raw.key_position(written),
                    hint="trusted settings: " + ", ".join(_dotted(("spec", *t)) for t in trusted),
                )
            )
    if problems.has_errors:
        raise PipeformError(problems)
    return spec, raw


def _leaves(data: Any, path: DataPath) -> Iterator[DataPath]:
    """The paths of a mapping's values that are not themselves non-empty mappings."""
    if isinstance(data, dict) and data:
        for key, value in data.items():
            yield from _leaves(value, (*path, key))
    else:
        yield path


def _dotted(path: DataPath) -> str:
    return ".".join(str(p) for p in path)


def trusted_paths() -> list[tuple[str, ...]]:
    """Every trusted setting's path under the Workspace's spec, as written (camelCase)."""
    from pydantic import BaseModel

    from reconciler.kinds.workspace import WorkspaceSpec
    from reconciler.spec.validate import union_members

    found: list[tuple[str, ...]] = []

    def walk(model: type[BaseModel], prefix: tuple[str, ...]) -> None:
        for name, info in model.model_fields.items():
            path = (*prefix, info.alias or name)
            extra = info.json_schema_extra
            if isinstance(extra, dict) and extra.get(MARKER):
                found.append(path)
                continue
            for member in union_members(info.annotation):
                if isinstance(member, type) and issubclass(member, BaseModel):
                    walk(member, path)

    walk(WorkspaceSpec, ())
    return found


_MISSING = object()


def _at(data: Any, path: DataPath) -> Any:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return _MISSING
        data = data[part]
    return data


def check_settings(
    trust: Trust, workspace: Mapping[str, Any], source: RawDocument | None
) -> Diagnostics:
    """An error for each trusted setting whose value in the Workspace (its JSON form,
    defaults filled in) is not the trusted configuration's."""
    from reconciler.kinds import KINDS

    default = (
        KINDS["Workspace"]
        .model_validate(
            {"apiVersion": API_VERSION, "kind": "Workspace", "metadata": {"name": "default"}}
        )
        .model_dump(mode="json", by_alias=True)["spec"]
    )
    where_trusted = trust.config_file.name if trust.config_file else ""
    problems = Diagnostics()
    for path in trusted_paths():
        value = _at(workspace, path)
        allowed = _at(trust.settings, path)
        if allowed is _MISSING:
            allowed = _at(default, path)
        if value == allowed or (value is _MISSING and allowed is None):
            continue
        written = ("spec", *path, *_first_difference(value, allowed))
        position = source.position(written) if source is not None else None
        if _at(trust.settings, path) is _MISSING:
            message = (
                f"{_dotted(written)} is set by the specs, but an untrusted run takes it only "
                + (
                    f"from trusted configuration ({where_trusted})"
                    if trust.config_file
                    else "from trusted configuration, and none was given (--trusted-config)"
                )
            )
            hint = "remove it from the Workspace, or add the same value to the trusted configuration on the protected branch"
        else:
            at = trust.source.position(written) if trust.source is not None else None
            message = (
                f"{_dotted(written)} in the specs differs from the trusted configuration ({at})"
            )
            hint = "an untrusted run uses only the trusted value: make the Workspace agree with it"
        problems.add(error(message, position, address=_address(source), hint=hint))
    return problems


def _first_difference(value: Any, allowed: Any) -> tuple[str, ...]:
    """Where inside a trusted block (such as spec.state) the two values first differ."""
    if isinstance(value, dict) and isinstance(allowed, dict):
        for key in sorted(set(value) | set(allowed)):
            if value.get(key) != allowed.get(key):
                return (key, *_first_difference(value.get(key), allowed.get(key)))
    return ()


def _address(source: RawDocument | None) -> str | None:
    if source is None or not isinstance(source.data, dict):
        return None
    meta = source.data.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    return f"Workspace/{name}" if isinstance(name, str) else None


def check_locations(root: Path, workspace: Mapping[str, Any]) -> Diagnostics:
    """Errors for tree locations an untrusted run would write through a symlink: the
    tree's .pipeform and every relative location the Workspace names (state, data,
    rules, dashboards). A symlink committed to a pull request must not carry writes elsewhere."""
    locations: list[tuple[str, str]] = [(".pipeform", "the tree's .pipeform")]
    state = workspace.get("state", {})
    if state.get("backend", "sqlite") == "sqlite":
        locations.append((str(state.get("path", ".pipeform/state.db")), "spec.state.path"))
    providers = workspace.get("providers", {})
    locations.append((str(providers.get("local", {}).get("dataDir", ".pipeform/data")), "dataDir"))
    prometheus = providers.get("prometheus", {})
    locations.append((str(prometheus.get("rulesDir", ".pipeform/rules")), "rulesDir"))
    locations.append(
        (str(prometheus.get("dashboardsDir", ".pipeform/dashboards")), "dashboardsDir")
    )
    problems = Diagnostics()
    real_root = root.resolve()
    for written, what in locations:
        path = Path(written)
        if path.is_absolute():
            continue  # absolute locations are trusted settings, checked above
        current = root
        for part in path.parts:
            current = current / part
            if current.is_symlink():
                problems.add(
                    error(
                        f"{what} ({written}) passes through the symlink {current.relative_to(root)}, "
                        "which an untrusted run does not follow",
                        hint="remove the symlink from the pull request; pipeform makes .pipeform itself",
                    )
                )
                break
        else:
            if not (root / path).resolve().is_relative_to(real_root):
                problems.add(
                    error(
                        f"{what} ({written}) points outside the spec tree",
                        hint="an untrusted run writes only inside the tree's .pipeform",
                    )
                )
    return problems


def outside_tree(path: Path, root: Path) -> bool:
    """Whether a spec file is a symlink that leads out of the tree."""
    return path.is_symlink() and not path.resolve().is_relative_to(root.resolve())
