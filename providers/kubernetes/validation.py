"""Plan-time checks of what the kubernetes provider renders that the schemas miss.

The OpenAPI schemas say a name is a string and a label a map; the API server says more,
and says it only when the apply is half done. So before any state exists, every manifest
a document renders is checked here: object names (DNS-1123 subdomain, or label for
namespaces), label keys and values (63 characters, the allowed characters), quantities in
resource limits (``hard``, ``requests``, ``limits``), and namespaces outside
``{namespace} ∪ namespaces`` of the Workspace. Each problem is one diagnostic with the
document field it comes from (``path``), which the engine turns into file:line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from providers.base import JSON, ProviderError, ResourceContext
from reconciler.diagnostics import Diagnostic, error

if TYPE_CHECKING:
    from providers.kubernetes.kind import KubeHandler

DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
#: a Kubernetes quantity: a signed decimal number and an optional suffix
QUANTITY = re.compile(
    r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?"
)
QUANTITY_KEYS = frozenset({"hard", "requests", "limits"})


def name_problem(name: object, label: bool = False) -> str | None:
    """Why a string cannot name an object (None when it can)."""
    text = str(name or "")
    limit, pattern = (63, DNS_LABEL) if label else (253, DNS_SUBDOMAIN)
    what = "DNS-1123 label" if label else "DNS-1123 subdomain"
    if not text:
        return "is empty"
    if len(text) > limit:
        return f"is {len(text)} characters long; a {what} has at most {limit}"
    if not pattern.fullmatch(text):
        return (
            f"is not a {what}: lower-case letters, digits and '-'"
            + ("" if label else " (and '.' between parts)")
            + ", starting and ending with a letter or digit"
        )
    return None


def label_problem(key: str, value: object) -> str | None:
    """Why a label cannot be set (None when it can)."""
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not DNS_SUBDOMAIN.fullmatch(prefix)):
        return f"label key {key!r} has a prefix that is not a DNS-1123 subdomain"
    if not name or len(name) > 63 or not LABEL_NAME.fullmatch(name):
        return f"label key {key!r} is not a valid label name (at most 63 letters, digits, '-', '_', '.')"
    text = str(value)
    if len(text) > 63:
        return f"label {key} value is {len(text)} characters long; label values have at most 63"
    if not LABEL_VALUE.fullmatch(text):
        return (
            f"label {key} value {text!r} may hold only letters, digits, '-', '_' and '.', "
            "starting and ending with a letter or digit"
        )
    return None


def quantity_problem(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return f"{value!r} is not a quantity"
    return None if QUANTITY.fullmatch(str(value)) else f"{value!r} is not a Kubernetes quantity"


def _quantities(node: Any, at: str = "") -> Iterator[tuple[str, object]]:
    """(dotted path, value) of every value under a ``hard``/``requests``/``limits`` map."""
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{at}.{key}" if at else str(key)
            if key in QUANTITY_KEYS and isinstance(value, dict):
                for name, quantity in value.items():
                    yield f"{path}.{name}", quantity
            else:
                yield from _quantities(value, path)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _quantities(item, f"{at}[{i}]")


def manifest_problems(manifest: JSON) -> list[tuple[str, str]]:
    """What the API server would refuse in one manifest, in words naming the object, each
    with where it comes from: ``name``, ``labels`` or ``quantity``."""
    metadata = manifest.get("metadata") or {}
    shown = f"{manifest.get('kind')} {metadata.get('name')!r}"
    problems = []
    problem = name_problem(metadata.get("name"), label=manifest.get("kind") == "Namespace")
    if problem:
        problems.append(("name", f"{shown}: the name {problem}"))
    if metadata.get("namespace") is not None:
        problem = name_problem(metadata.get("namespace"), label=True)
        if problem:
            problems.append(("name", f"{shown}: the namespace {metadata['namespace']!r} {problem}"))
    for key, value in (metadata.get("labels") or {}).items():
        problem = label_problem(str(key), value)
        if problem:
            problems.append(("labels", f"{shown}: {problem}"))
    for path, value in _quantities(manifest):
        problem = quantity_problem(value)
        if problem:
            problems.append(("quantity", f"{shown}: {path}: {problem}"))
    return problems


def check_document(handler: KubeHandler, ctx: ResourceContext, document: JSON) -> list[Diagnostic]:
    """Every problem with what the document renders: namespaces first (at their fields),
    then each manifest's names, labels and quantities."""
    found: list[Diagnostic] = []
    allowed = handler.settings.allowed_namespaces
    for path, namespace in handler.namespace_paths(document).items():
        if namespace is not None and namespace not in allowed:
            found.append(
                error(
                    f"namespace {namespace!r} is not one the Workspace allows "
                    f"({', '.join(allowed)})",
                    address=ctx.address,
                    path=path,
                    hint="add it to providers.kubernetes.namespaces in the Workspace, or name "
                    "an allowed one",
                )
            )
    if found:
        return found
    try:
        manifests = handler.rendered(ctx, document, {})
    except (ProviderError, ValueError) as exc:
        return [error(str(exc), address=ctx.address)]
    paths = {"name": handler.name_path, "labels": "metadata.labels", "quantity": "spec"}
    for manifest in manifests:
        found += [
            error(message, address=ctx.address, path=paths[where])
            for where, message in manifest_problems(manifest)
        ]
    return found
