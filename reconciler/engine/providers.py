"""The providers a command needs: each one the specs and the state name, configured from
the Workspace, and checked against its documents before any state exists."""

from __future__ import annotations

import functools
from typing import Any

from providers import base
from reconciler.diagnostics import PipeformError
from reconciler.plan.planner import Providers
from reconciler.spec.checks import CheckedTree
from reconciler.state.model import State


def provider_config(checked: CheckedTree, name: str) -> dict[str, Any]:
    """A provider's own settings, plus under ``workspace`` the Workspace's name and the
    settings every provider may need (defaults, pricing, registry, the Pushgateway URL, the
    aws provider's settings, by which the local provider reads s3:// sources, and the local
    provider's, on which the kubernetes provider realises Datasets, FeatureSets, Budgets)."""
    workspace = checked.tree.workspace
    providers = workspace.spec.providers.model_dump(mode="json", by_alias=True)
    plugins = providers.pop("plugins", {})
    own = (providers[name] or {}) if name in providers else dict(plugins.get(name, {}))
    shared = workspace.spec.model_dump(
        mode="json", by_alias=True, include={"defaults", "pricing", "registry"}
    )
    shared["name"] = workspace.metadata.name
    shared["pushgatewayUrl"] = workspace.spec.providers.prometheus.pushgateway_url
    shared["aws"] = providers.get("aws")
    shared["local"] = providers.get("local")  # the kubernetes provider's delegated kinds
    shared["prometheusUrl"] = workspace.spec.providers.prometheus.url
    return {**own, "workspace": shared}


def load_providers(
    checked: CheckedTree, state: State, loaded: Providers | None = None
) -> Providers:
    """The providers the specs and the state name, each checked against its documents.

    Instances already in ``loaded`` are reused and not checked again: a session first
    loads the specs' providers (so every spec problem is reported before state exists),
    then only the ones that state alone names.
    """
    default = checked.tree.workspace.spec.defaults.provider
    names = {default} | {r.provider for r in state.resources.values()}
    names.update(_document_providers(checked).values())
    instances: dict[str, base.Provider] = dict(loaded.instances) if loaded is not None else {}
    for name in sorted(names - set(instances)):
        cls = base.load(name)
        if cls is None:
            raise PipeformError(
                f"provider {name!r} is not installed (no entry point in group "
                f"{base.ENTRY_POINT_GROUP}); pip install the package that provides it"
            )
        instances[name] = cls(provider_config(checked, name), checked.tree.root)
    if loaded is None:
        _check_kinds(checked, instances, default)
        _validate_with_providers(checked, instances, default)
    return Providers(instances, default)


def _check_kinds(checked: CheckedTree, instances: dict[str, base.Provider], default: str) -> None:
    unsupported = [
        (a, d)
        for a, d in checked.tree.documents.items()
        if d.facts.kind not in type(instances[_document_providers(checked)[a]]).kinds
    ]
    if unsupported:
        from reconciler.diagnostics import Diagnostics, error

        raise PipeformError(
            Diagnostics(
                [
                    error(
                        f"provider {_document_providers(checked)[a]} cannot realise {d.facts.kind} resources yet",
                        d.position(),
                        address=a,
                        hint="pick another provider in spec.provider, or remove it for now",
                    )
                    for a, d in sorted(unsupported)
                ]
            )
        )


def _validate_with_providers(
    checked: CheckedTree, instances: dict[str, base.Provider], default: str
) -> None:
    """Provider-specific checks (such as a Secret target the provider cannot serve), at plan time.

    A provider that keeps the protocol's default ``validate`` (no checks) is skipped, so
    its documents are not rendered for nothing.
    """
    from reconciler.diagnostics import Diagnostic, Diagnostics

    checking = {
        name
        for name, instance in instances.items()
        if type(instance).validate is not base.Provider.validate
    }
    if not checking:
        return
    found = Diagnostics()
    labels = checked.tree.workspace.spec.defaults.labels
    providers = _document_providers(checked)
    for address, loaded in sorted(checked.tree.documents.items()):
        name = providers[address]
        if name not in checking:
            continue
        ctx = base.ResourceContext.of(address, "", checked.tree.root)
        for d in instances[name].validate(ctx, loaded.facts.desired(labels)):
            found.add(
                Diagnostic(
                    d.severity,
                    d.message,
                    d.position or loaded.position(data_path(d.path or "")),
                    address,
                    d.hint,
                    d.path,
                )
            )
    if found.has_errors:
        raise PipeformError(found)


def _document_providers(checked: CheckedTree) -> dict[str, str]:
    """Address -> the provider that realises it, worked out once per spec tree."""
    found: dict[str, str] | None = checked.__dict__.get("_providers")
    if found is None:
        chooser = _chooser(checked.tree.workspace.spec.defaults.provider)
        found = {a: chooser.for_document(d.facts) for a, d in checked.tree.documents.items()}
        checked.__dict__["_providers"] = found
    return found


@functools.cache
def _chooser(default: str) -> Providers:
    """Which provider realises a document, for a default (asked once per document)."""
    return Providers({}, default)


def data_path(dotted: str) -> tuple[str | int, ...]:
    """``spec.targets[0].name`` -> ("spec", "targets", 0, "name")."""
    path: list[str | int] = []
    for part in dotted.replace("[", ".[").split("."):
        if part.startswith("[") and part.endswith("]") and part[1:-1].isdigit():
            path.append(int(part[1:-1]))
        elif part:
            path.append(part)
    return tuple(path)
