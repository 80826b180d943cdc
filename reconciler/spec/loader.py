"""Spec tree -> validated models: reads YAML files, checks each document against its kind.

Every problem in the tree is collected and reported at once, each with file:line:column,
the resource address and, for misspellings, a "did you mean".
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.diagnostics import Diagnostic, Diagnostics, Position, error
from reconciler.kinds import API_VERSION, KINDS
from reconciler.kinds.reads import (
    BudgetRead,
    DatasetRead,
    FeatureSetRead,
    QuotaRead,
    TrainingJobRead,
    WorkspaceRead,
)
from reconciler.spec.cache import SpecCache, content_key
from reconciler.spec.facts import Facts, View, freeze, thaw
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
from reconciler.spec.trust import outside_tree
from reconciler.spec.validate import document_address, parse_document

if TYPE_CHECKING:  # pydantic loads only when a document must be validated
    from reconciler.kinds import Document

#: The spec cache's key for the embedded default Workspace's facts (never a content hash).
DEFAULT_WORKSPACE_KEY = "default-workspace"


@dataclass(frozen=True, slots=True)
class LoadedDocument:
    """One valid document: its facts (what the engine reads), its raw data and positions,
    and its model, validated when first asked for (``model``) if it came from the spec
    cache, which keeps facts but no models.

    The engine reads a document's fields through one typed interface, the same whether it
    came from the spec cache or was validated in this command: ``view`` (a read-only
    ``View``), typed by the kind's protocol in ``reconciler.kinds.reads``
    (``training_job()``, ``quota()``, ...)."""

    facts: Facts
    raw: RawDocument
    validated: Document | None = None
    viewed: View | None = None

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
    def view(self) -> View:
        """The document as a read-only View of its model: its fields and the results of
        the methods its kind lists in ``PLAIN_METHODS``, nothing else. Always a View, so a
        check reads the same on a cold and a warm run. A kind that keeps its view in the
        spec cache (``KEEP_VIEW``) needs no pydantic for it; any other is validated."""
        view = self.viewed
        if view is None:
            view = self.facts.view()
            if view is None:
                view = thaw(freeze(self.model, json=False))
            object.__setattr__(self, "viewed", view)  # a cache of what the data implies
        return view

    def training_job(self) -> TrainingJobRead:
        return self._of_kind("TrainingJob")

    def quota(self) -> QuotaRead:
        return self._of_kind("Quota")

    def budget(self) -> BudgetRead:
        return self._of_kind("Budget")

    def dataset(self) -> DatasetRead:
        return self._of_kind("Dataset")

    def feature_set(self) -> FeatureSetRead:
        return self._of_kind("FeatureSet")

    def _of_kind(self, kind: str) -> View:
        if self.facts.kind != kind:
            raise TypeError(f"{self.facts.address} is not a {kind}")
        return self.view

    def position(self, path: DataPath = ()) -> Position:
        return self.raw.position(path)


@dataclass
class SpecTree:
    """The documents of a spec tree, by address, with the Workspace apart (as a View of
    its model: ``tree.workspace.spec.defaults.labels`` reads as on the model)."""

    root: Path
    workspace: WorkspaceRead
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
    confined: bool = False,
) -> tuple[list[RawDocument], list[str]]:
    """Every raw document in the given files and directories. ``confined`` (an untrusted
    run): a file that is a symlink leading out of its directory is refused, not read."""
    files: list[Path] = []
    for path in paths:
        if not path.exists():
            diagnostics.add(
                error(
                    f"{path}: no such file or directory", hint="give a spec directory or YAML file"
                )
            )
            continue
        listed = spec_files(path)
        if confined and path.is_dir():
            for outside in [f for f in listed if outside_tree(f, path)]:
                diagnostics.add(
                    error(
                        f"{display_path(outside)} is a symlink to a file outside the spec tree, "
                        "which an untrusted run does not read",
                        hint="commit the file itself into the tree",
                    )
                )
                listed.remove(outside)
        files.extend(listed)
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


def load_tree(paths: list[Path], diagnostics: Diagnostics, confined: bool = False) -> SpecTree:
    """Read and validate every document; duplicate addresses and Workspaces are errors.

    A document from the spec cache with facts is not validated again (see
    ``reconciler.spec.facts``); any other is validated against its kind's model."""
    root = paths[0] if paths and paths[0].is_dir() else (paths[0].parent if paths else Path("."))
    cache = SpecCache.open(root)
    parsed: list[tuple[str, list[RawDocument]]] = []
    raws, files = read_tree(paths, diagnostics, cache, parsed, confined)
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
                tree.invalid.add(document_address(raw) or "")
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
