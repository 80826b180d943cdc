"""Spec tree -> validated models: reads YAML files, checks each document against its kind.

Every problem in the tree is collected and reported at once, each with file:line:column,
the resource address and, for misspellings, a "did you mean".
"""

from __future__ import annotations

import contextlib
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.diagnostics import Diagnostic, Diagnostics, Position, error, suggestion
from reconciler.frozen import quick_init
from reconciler.kinds import API_VERSION, KINDS
from reconciler.spec.cache import SpecCache, content_key
from reconciler.spec.facts import Facts, View
from reconciler.spec.source import (
    MAX_FILES,
    DataPath,
    RawDocument,
    display_path,
    parse_bytes,
    read_bytes,
    shared_strings,
    spec_files,
)

if TYPE_CHECKING:  # pydantic loads only when a document must be validated
    from pydantic import BaseModel

    from reconciler.kinds import Document

#: The spec cache's key for the embedded default Workspace's facts (never a content hash).
DEFAULT_WORKSPACE_KEY = "default-workspace"


@quick_init
@dataclass(frozen=True, slots=True)
class LoadedDocument:
    """One valid document: its facts (what the engine reads), its raw data and positions,
    and its model, validated when first asked for (``model``) if it came from the spec
    cache, which keeps facts but no models."""

    facts: Facts
    raw: RawDocument
    validated: Document | None = None

    @property
    def model(self) -> Document:
        """The validated model (imports pydantic and the kind's models on first use)."""
        model = self.validated
        if model is None:
            model, problems = parse_document(self.raw)
            if model is None:  # the cache said it validated: the models changed under it
                raise RuntimeError(f"{self.facts.address} no longer validates: {problems}")
            object.__setattr__(self, "validated", model)  # a cache of what the data implies
        return model

    @property
    def view(self) -> Any:
        """What a kind's own checks read of the document: its model when it was validated
        in this command, else a read-only View of it (``Facts.view``), which reads the
        same (``tests/unit/test_snapshot.py``) and needs no pydantic for a kind that keeps
        its view in the spec cache. A kind that keeps none is validated again."""
        if self.validated is not None:
            return self.validated
        view = self.facts.view()
        return self.model if view is None else view

    def position(self, path: DataPath = ()) -> Position:
        return self.raw.position(path)


@dataclass
class SpecTree:
    """The documents of a spec tree, by address, with the Workspace apart (as a View of
    its model: ``tree.workspace.spec.defaults.labels`` reads as on the model)."""

    root: Path
    workspace: View
    workspace_source: LoadedDocument | None = None
    documents: dict[str, LoadedDocument] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    #: addresses of documents that failed validation (their errors are reported): a
    #: reference to one is not reported again as a reference to nothing
    invalid: set[str] = field(default_factory=set)

    def by_kind(self, kind: str) -> list[LoadedDocument]:
        return [d for d in self.documents.values() if kind == d.facts.kind]

    def sorted_of_kind(self, kind: str) -> list[tuple[str, LoadedDocument]]:
        """(address, document) for the documents of one kind, by address."""
        found = [(a, d) for a, d in self.documents.items() if kind == d.facts.kind]
        found.sort()
        return found


def format_path(path: DataPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _data_path(data: Any, loc: tuple[Any, ...]) -> DataPath:
    """pydantic's loc with union-member tags dropped, so it follows the written data."""
    path: list[str | int] = []
    node = data
    for i, part in enumerate(loc):
        if _contains(node, part):
            path.append(part)
            node = node[part]
        elif i == len(loc) - 1 or not isinstance(node, dict | list):
            path.append(part)
            node = None
    return tuple(path)


def _strip(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _members(tp: Any) -> list[Any]:
    tp = _strip(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return [_strip(m) for m in typing.get_args(tp) if m is not type(None)]
    return [tp]


def _field_names(model: type[BaseModel]) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items()]


def known_fields(tp: Any, path: DataPath, data: Any) -> list[str]:
    """The field names a model accepts at path, following the written data through unions."""
    from pydantic import BaseModel

    out: list[str] = []
    for member in _members(tp):
        if isinstance(member, type) and issubclass(member, BaseModel):
            type_field = member.model_fields.get("type")
            if (
                type_field is not None
                and isinstance(data, dict)
                and "type" in data
                and data["type"] not in typing.get_args(type_field.annotation)
            ):
                continue  # another member of a tagged union
            if not path:
                out.extend(_field_names(member))
                continue
            for name, info in member.model_fields.items():
                if path[0] in (info.alias, name):
                    sub = data.get(path[0]) if isinstance(data, dict) else None
                    out.extend(known_fields(info.annotation, path[1:], sub))
        elif path and typing.get_origin(member) in (list, dict):
            inner = typing.get_args(member)[-1]
            out.extend(known_fields(inner, path[1:], _child(data, path[0])))
    return out


def _contains(data: Any, key: Any) -> bool:
    if isinstance(data, dict):
        return key in data
    return isinstance(data, list) and isinstance(key, int) and 0 <= key < len(data)


def _child(data: Any, key: Any) -> Any:
    return data[key] if _contains(data, key) else None


def _shown(value: Any) -> str:
    """A value as the user wrote it in YAML terms, short."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null (nothing)"
    if isinstance(value, bool):
        return str(value).lower()
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _pattern_hints() -> dict[str, str]:
    """How to fix a value that does not match a pattern, by pattern (for messages only)."""
    from reconciler.kinds.common import ADDRESS, DNS_LABEL, ENV_NAME

    return {
        DNS_LABEL: "use lower-case letters, digits and '-', starting and ending with a letter or digit, such as my-name",
        ADDRESS: "write Kind/name, such as Secret/db-password",
        ENV_NAME: "use letters, digits and '_', not starting with a digit",
        r"^[A-Z]{3}$": "use an ISO 4217 currency code such as USD or EUR",
    }


def _type_hint(kind: str, value: Any) -> str | None:
    """Why YAML may have read a value as another type than meant, and the fix."""
    if kind == "string_type" and isinstance(value, bool):
        return "put it in quotes: YAML reads unquoted yes, no, on, off, true and false as booleans"
    if kind == "string_type" and isinstance(value, int | float):
        return f'put it in quotes ("{value}") to make it text'
    if kind.startswith(("int_", "float_")) and isinstance(value, str):
        return "write a plain number, without quotes or units"
    if kind.startswith("bool_"):
        return "write true or false"
    if kind == "list_type":
        return "write a list: [a, b] or one '- item' per line"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "write a mapping: {key: value} or one 'key: value' per indented line"
    return None


def _describe(err: Any, path: DataPath, model: type[Document], data: Any) -> tuple[str, str | None]:
    where = format_path(path)
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "extra_forbidden":
        known = known_fields(model, path[:-1], data)
        return f"{where} is not a known field", suggestion(str(path[-1]), known) or (
            f"known fields here: {', '.join(sorted(known))}" if known else "remove it"
        )
    if kind == "missing":
        return f"{where} is required", f"add {path[-1]}"
    if kind == "union_tag_invalid":
        tags = re.findall(r"'([^']*)'", str(ctx.get("expected_tags", "")))
        tag = ctx.get("tag")
        return (
            f"{where}.{ctx.get('discriminator', 'type').strip(chr(39))}: {tag!r} is not a known type",
            suggestion(str(tag), tags) or f"use one of {', '.join(tags)}",
        )
    if kind == "missing_key":
        value = err.get("input")
        return f"{where} {err['msg']}", (
            "write exactly one of these keys"
            if isinstance(value, dict)
            else f"write a mapping with one of these keys, not {_shown(value)}"
        )
    if kind == "union_tag_not_found":
        return f"{where} needs a {ctx.get('discriminator', 'type')!s}".replace("'", ""), None
    message = str(err["msg"])
    value = err.get("input")
    hint = None
    if kind in (
        "value_error",
        "assertion_error",
    ):  # our own validators' words, already phrased for users
        message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    elif kind in ("literal_error", "enum"):
        options = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        message = f"{value!r} is not allowed; expected {ctx.get('expected', '')}"
        hint = suggestion(str(value), options)
    elif kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        message = f"{_shown(value)} is not in the expected form"
        hint = _pattern_hints().get(pattern, f"it must match the regular expression {pattern}")
    else:  # pydantic's own words: "Input should be greater than 0" and the like
        message = re.sub(r"a valid dictionary( or instance of \w+)?", "a mapping", message)
        message = f"{message[:1].lower()}{message[1:]} (got {_shown(value)})"
        hint = _type_hint(kind, value)
    return f"{where}: {message}" if where else message, hint


def _check_header(raw: RawDocument) -> tuple[type[Document] | None, list[Diagnostic]]:
    data = raw.data
    if not isinstance(data, dict):
        return None, [
            error(
                f"a document must be a mapping with apiVersion, kind, metadata and spec, not {_shown(data)}",
                raw.start,
                hint="see specs/examples/quickstart for the shape",
            )
        ]
    problems = []
    version = data.get("apiVersion")
    if version is None and "kind" not in data and "groups" in data:
        return None, [
            error(
                "this is a Prometheus rule file, not a pipeform document",
                raw.start,
                hint="pipeform writes Alert and SLO rules to providers.prometheus.rulesDir: keep "
                "it out of the spec tree or in a hidden directory (the default is .pipeform/rules)",
            )
        ]
    if version is None:
        problems.append(
            error("apiVersion is missing", raw.start, hint=f"add apiVersion: {API_VERSION}")
        )
    elif version != API_VERSION:
        problems.append(
            error(
                f"apiVersion {version!r} is not supported",
                raw.position(("apiVersion",)),
                hint=f"use apiVersion: {API_VERSION}",
            )
        )
    kind = data.get("kind")
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if kind is None:
        problems.append(
            error("kind is missing", raw.start, hint=f"add kind: one of {', '.join(KINDS)}")
        )
    elif model is None:
        problems.append(
            error(
                f"kind {kind!r} is not known",
                raw.position(("kind",)),
                hint=suggestion(str(kind), KINDS) or f"use one of {', '.join(KINDS)}",
            )
        )
    return (None if problems else model), problems


def _address(raw: RawDocument) -> str | None:
    data = raw.data if isinstance(raw.data, dict) else {}
    kind, meta = data.get("kind"), data.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    if isinstance(kind, str) and isinstance(name, str) and name:
        return f"{kind}/{name}"
    return kind if isinstance(kind, str) else None


def _header_model(data: Any) -> type[Document] | None:
    """The model of a document whose apiVersion and kind are right (nearly every one),
    else None: ``_check_header`` then says what is wrong."""
    if isinstance(data, dict) and data.get("apiVersion") == API_VERSION:
        kind = data.get("kind")
        if isinstance(kind, str) and kind in KINDS:
            return KINDS[kind]
    return None


def parse_document(raw: RawDocument) -> tuple[Document | None, list[Diagnostic]]:
    """Validate one raw document against its kind's model."""
    model = _header_model(raw.data)
    if model is None:
        model, problems = _check_header(raw)
        if model is None:
            return None, [_with_address(d, raw) for d in problems]
    from pydantic import ValidationError

    from reconciler.kinds.common import FieldError

    try:
        # model_validate without its Python wrapper: the same validator, same errors
        return model.__pydantic_validator__.validate_python(raw.data), []
    except ValidationError as exc:
        problems = []
        seen: set[DataPath] = set()
        for err in exc.errors(include_url=False):
            path = _data_path(raw.data, err["loc"])
            cause = (err.get("ctx") or {}).get("error")
            if isinstance(cause, FieldError):  # a check over a whole value that knows which part
                path = (*path, *cause.path)
            if path in seen:  # one message per place: unions report every member's failure
                continue
            seen.add(path)
            message, hint = _describe(err, path, model, raw.data)
            kind = err["type"]
            where = (
                raw.key_position(path)
                if kind == "extra_forbidden"
                else raw.position(path[:-1])
                if kind == "missing"
                else raw.position(path)
            )
            problems.append(
                error(message, where, hint=hint, address=_address(raw), path=format_path(path))
            )
        return None, problems


def _with_address(d: Diagnostic, raw: RawDocument) -> Diagnostic:
    return Diagnostic(d.severity, d.message, d.position, _address(raw), d.hint, d.path)


PARALLEL_MIN_BYTES = 256 * 2**10  # below this, starting workers costs more than it saves

FileResult = tuple[list[RawDocument], list[Diagnostic]]


def _parse_one(job: tuple[bytes, str]) -> FileResult:
    problems = Diagnostics()
    found = parse_bytes(job[0], job[1], problems)
    return found, problems.items


def _parse_files(jobs: list[tuple[bytes, str]]) -> list[FileResult]:
    """Parse files' bytes, in forked worker processes when there is much and cores allow.

    YAML parsing is CPU-bound Python, so threads would not help; results keep file order.
    """
    workers = min(os.cpu_count() or 1, 8)
    if (
        workers < 2
        or len(jobs) < 4
        or sum(len(data) for data, _ in jobs) < PARALLEL_MIN_BYTES
        or not hasattr(os, "fork")
    ):
        return [_parse_one(job) for job in jobs]
    import concurrent.futures as cf  # loaded only for a large tree with files to parse
    import multiprocessing as mp

    chunk = max(1, len(jobs) // (workers * 4))
    with cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
        return list(pool.map(_parse_one, jobs, chunksize=chunk))


def _read_files(
    jobs: list[tuple[Path, str]],
    cache: SpecCache,
    parsed_clean: list[tuple[str, list[RawDocument]]],
) -> list[FileResult]:
    """Each file's documents and problems, from the spec cache when its bytes are known.

    Files parsed here without a problem are added to ``parsed_clean`` as (content key,
    documents): they go into the cache once their documents are validated."""
    results: list[FileResult] = []
    misses: list[tuple[int, bytes, str, str]] = []  # (slot in results, bytes, display, key)
    for path, display in jobs:
        problems = Diagnostics()
        data = read_bytes(path, display, problems)
        if data is None:
            results.append(([], problems.items))
            continue
        key = content_key(data)
        entry = cache.get(key)
        if entry is None:
            misses.append((len(results), data, display, key))
            results.append(([], []))
        else:
            unpacked = RawDocument.from_packed
            results.append(
                ([unpacked(display, i, doc, at, facts) for i, doc, at, facts in entry], [])
            )
    parsed = _parse_files([(data, display) for _, data, display, _ in misses])
    for (slot, _, _, key), (found, parse_problems) in zip(misses, parsed, strict=True):
        results[slot] = (found, parse_problems)
        if not parse_problems:  # only clean files: every diagnostic comes from a real parse
            parsed_clean.append((key, found))
    return results


def read_tree(
    paths: list[Path],
    diagnostics: Diagnostics,
    cache: SpecCache | None = None,
    parsed_clean: list[tuple[str, list[RawDocument]]] | None = None,
) -> tuple[list[RawDocument], list[str]]:
    """Every raw document in the given files and directories."""
    files: list[Path] = []
    for path in paths:
        if not path.exists():
            diagnostics.add(
                error(
                    f"{path}: no such file or directory", hint="give a spec directory or YAML file"
                )
            )
            continue
        files.extend(spec_files(path))
    if len(files) > MAX_FILES:
        diagnostics.add(
            error(
                f"the spec tree has {len(files):,} YAML files; at most {MAX_FILES:,} are read",
                hint="point pipeform at the spec directory, not a parent of it",
            )
        )
        return [], []
    shown = [display_path(path) for path in files]
    documents: list[RawDocument] = []
    jobs = list(zip(files, shown, strict=True))
    clean = [] if parsed_clean is None else parsed_clean
    for found, problems in _read_files(jobs, cache or SpecCache(None, None), clean):
        documents.extend(found)
        diagnostics.extend(problems)
    if paths and not files and not diagnostics.has_errors:
        diagnostics.add(
            error(
                f"no *.yaml or *.yml files under {', '.join(map(str, paths))}",
                hint="give the directory that holds your specs",
            )
        )
    return documents, shown


def _default_workspace(cache: SpecCache) -> Facts:
    """The embedded default Workspace, validated once and then kept in the spec cache."""
    entry = cache.get(DEFAULT_WORKSPACE_KEY)
    if entry and entry[0][3] is not None:
        return Facts.unpack(entry[0][3])
    data = {"apiVersion": API_VERSION, "kind": "Workspace", "metadata": {"name": "default"}}
    facts = Facts.of(KINDS["Workspace"].model_validate(data))
    with contextlib.suppress(ValueError):  # not marshallable: just not cached
        cache.put(DEFAULT_WORKSPACE_KEY, [(0, data, b"", facts.pack())])
    return facts


def _cache_parsed(cache: SpecCache, parsed: list[tuple[str, list[RawDocument]]]) -> None:
    """Put the files parsed this time into the cache, with their documents' facts."""
    if not parsed or not cache.writable:
        return
    strings: dict[str, str] = {}
    for key, found in parsed:
        with contextlib.suppress(ValueError):  # not marshallable: just not cached
            cache.put(
                key,
                [
                    (
                        d.index,
                        shared_strings(d.data, strings),
                        d.pack(),
                        shared_strings(d.facts, strings),
                    )
                    for d in found
                ],
            )


def load_tree(paths: list[Path], diagnostics: Diagnostics) -> SpecTree:
    """Read and validate every document; duplicate addresses and Workspaces are errors.

    A document from the spec cache with facts is not validated again (see
    ``reconciler.spec.facts``); any other is validated against its kind's model."""
    root = paths[0] if paths and paths[0].is_dir() else (paths[0].parent if paths else Path("."))
    cache = SpecCache.open(root)
    parsed: list[tuple[str, list[RawDocument]]] = []
    raws, files = read_tree(paths, diagnostics, cache, parsed)
    keep = bool(parsed) and cache.writable  # facts are packed only to be cached
    tree = SpecTree(root=root, workspace=None, files=files)  # type: ignore[arg-type]
    documents = tree.documents
    for raw in raws:
        model = None
        if raw.facts is not None:
            facts = Facts.unpack(raw.facts)
        else:
            model, problems = parse_document(raw)
            if model is None:
                diagnostics.extend(problems)
                tree.invalid.add(_address(raw) or "")
                continue
            facts = Facts.of(model)
            if keep:
                raw.facts = facts.pack()
        if facts.workspace is not None:
            _set_workspace(tree, LoadedDocument(facts, raw, model), diagnostics)
            continue
        address = facts.address
        first = documents.get(address)
        if first is not None:
            diagnostics.add(
                error(
                    f"duplicate address {address}",
                    raw.position(("metadata", "name")),
                    address=address,
                    hint=f"first defined at {first.position()}; rename one of them",
                )
            )
            continue
        documents[address] = LoadedDocument(facts, raw, model)
    if tree.workspace_source is None:
        tree.workspace = _default_workspace(cache).workspace  # type: ignore[assignment]
    _cache_parsed(cache, parsed)
    cache.save()
    return tree


def _set_workspace(tree: SpecTree, loaded: LoadedDocument, diagnostics: Diagnostics) -> None:
    """The tree's Workspace, unless it already has one (then a second is an error)."""
    if tree.workspace_source is not None:
        diagnostics.add(
            error(
                "a second Workspace document",
                loaded.raw.start,
                address=loaded.facts.address,
                hint=f"keep one; the first is at {tree.workspace_source.position()}",
            )
        )
        return
    tree.workspace, tree.workspace_source = loaded.facts.workspace, loaded  # type: ignore[assignment]
