"""Reading YAML spec files safely into plain data with a position for every value.

Safe by construction: only the YAML core schema (mappings, sequences, strings, numbers,
booleans, null) is built; any other tag, a duplicate key, a binary or non-UTF-8 file,
an oversized file, too many documents, deep nesting or alias expansion past a node
budget (the "billion laughs" attack) is reported as a diagnostic with file:line:column.
Timestamps stay strings: the models decide what a value means.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reconciler.diagnostics import Diagnostics, Position, error

MAX_FILE_BYTES = 8 * 2**20
MAX_DOCUMENTS_PER_FILE = 10_000
MAX_NODES_PER_DOCUMENT = 100_000
MAX_DEPTH = 64
MAX_FILES = 10_000

DataPath = tuple[str | int, ...]

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_constructor = yaml.constructor.SafeConstructor()
_TAG = "tag:yaml.org,2002:"
_SCALARS = {f"{_TAG}{t}" for t in ("null", "bool", "int", "float")}


@dataclass
class RawDocument:
    """One YAML document as plain data, with the position of every key and item."""

    file: str
    index: int
    data: Any
    positions: dict[DataPath, tuple[int, int]] = field(default_factory=dict)

    @property
    def start(self) -> Position:
        line, column = self.positions.get((), (1, 1))
        return Position(self.file, line, column)

    def position(self, path: DataPath) -> Position:
        """The position of path, or of its nearest written ancestor."""
        for end in range(len(path), -1, -1):
            found = self.positions.get(tuple(path[:end]))
            if found:
                return Position(self.file, *found)
        return self.start


class _Limit(Exception):
    def __init__(self, message: str, node: yaml.Node, hint: str) -> None:
        super().__init__(message)
        self.node = node
        self.hint = hint


class _Builder:
    """Turns composed nodes into plain data, counting nodes so that aliases cannot explode."""

    def __init__(self, positions: dict[DataPath, tuple[int, int]]) -> None:
        self.positions = positions
        self.count = 0

    def build(self, node: yaml.Node, path: DataPath, depth: int = 0) -> Any:
        self.count += 1
        if self.count > MAX_NODES_PER_DOCUMENT:
            raise _Limit(
                f"document expands to more than {MAX_NODES_PER_DOCUMENT:,} values "
                "(aliases repeated too often: a YAML bomb?)",
                node,
                "write the values out instead of nesting aliases",
            )
        if depth > MAX_DEPTH:
            raise _Limit(
                f"nesting deeper than {MAX_DEPTH} levels (or an alias that contains itself)",
                node,
                "flatten the document",
            )
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != f"{_TAG}seq":
                raise _Limit(f"tag {node.tag} is not allowed", node, "remove the tag")
            out = []
            for i, item in enumerate(node.value):
                self.positions[(*path, i)] = _mark(item)
                out.append(self.build(item, (*path, i), depth + 1))
            return out
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        raise _Limit(f"unexpected YAML node {type(node).__name__}", node, "check the syntax")

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        if node.tag == f"{_TAG}str" or node.tag == f"{_TAG}timestamp":
            return node.value
        if node.tag in _SCALARS:
            return _constructor.yaml_constructors[node.tag](_constructor, node)
        raise _Limit(
            f"tag {node.tag} is not allowed in specs (only plain YAML values are)",
            node,
            "remove the tag; pipeform never constructs objects from YAML",
        )

    def _pairs(self, node: yaml.MappingNode) -> Iterator[tuple[yaml.Node, yaml.Node]]:
        """Key/value pairs, with merge keys (<<) expanded; explicit keys win."""
        merged: list[tuple[yaml.Node, yaml.Node]] = []
        own: list[tuple[yaml.Node, yaml.Node]] = []
        for key, value in node.value:
            if key.tag == f"{_TAG}merge":
                sources = value.value if isinstance(value, yaml.SequenceNode) else [value]
                for source in sources:
                    if not isinstance(source, yaml.MappingNode):
                        raise _Limit("a merge key (<<) takes a mapping or a list of mappings", source, "fix the merge")
                    merged.extend(source.value)
            else:
                own.append((key, value))
        explicit = {k.value for k, _ in own if isinstance(k, yaml.ScalarNode)}
        seen: set[Any] = set()
        for key, value in merged:
            if key.value not in explicit and key.value not in seen:
                seen.add(key.value)
                yield key, value
        yield from own

    def _mapping(self, node: yaml.MappingNode, path: DataPath, depth: int) -> dict[Any, Any]:
        if node.tag != f"{_TAG}map":
            raise _Limit(f"tag {node.tag} is not allowed", node, "remove the tag")
        out: dict[Any, Any] = {}
        first_seen: dict[Any, yaml.Node] = {}
        for key_node, value_node in self._pairs(node):
            if not isinstance(key_node, yaml.ScalarNode):
                raise _Limit("mapping keys must be plain text", key_node, "use a plain key")
            key = self._scalar(key_node)
            if key is None or isinstance(key, bool | float):
                key = key_node.value
            if key in first_seen:
                line = first_seen[key].start_mark.line + 1
                raise _Limit(
                    f"duplicate key {key!r} (first at line {line})",
                    key_node,
                    "remove one of them; YAML would silently keep only the last",
                )
            first_seen[key] = key_node
            self.positions[(*path, key)] = _mark(key_node)
            out[key] = self.build(value_node, (*path, key), depth + 1)
        return out


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _line_col(data: bytes, offset: int) -> tuple[int, int]:
    before = data[:offset]
    line = before.count(b"\n") + 1
    return line, offset - (before.rfind(b"\n") + 1) + 1


def _decode(data: bytes, display: str, diagnostics: Diagnostics) -> str | None:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        diagnostics.add(error("file is UTF-16 encoded", Position(display), hint="save it as UTF-8"))
        return None
    nul = data.find(b"\x00")
    if nul >= 0:
        diagnostics.add(error("binary file, not YAML text (it contains NUL bytes)", Position(display, *_line_col(data, nul)),
                              hint="remove it from the spec tree or rename it away from .yaml/.yml"))
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        diagnostics.add(error(f"file is not valid UTF-8 (byte 0x{data[exc.start]:02x})",
                              Position(display, *_line_col(data, exc.start)),
                              hint="save the file as UTF-8"))
        return None


def _yaml_error(exc: yaml.YAMLError, text: str, display: str) -> tuple[str, Position, str]:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        line_text = text.splitlines()[mark.line] if mark.line < len(text.splitlines()) else ""
        problem = exc.problem or "invalid YAML"
        hint = "check the indentation and quoting around this place"
        if "\t" in line_text[: mark.column + 1] or "found character that cannot start any token" in problem and "\t" in line_text:
            problem, hint = "a tab character is used for indentation", "YAML allows only spaces for indentation; replace tabs with spaces"
        if exc.context:
            problem = f"{exc.context}: {problem}"
        return f"invalid YAML: {problem}", Position(display, mark.line + 1, mark.column + 1), hint
    if isinstance(exc, yaml.reader.ReaderError):
        raw = text.encode("utf-8")
        line, col = _line_col(raw, min(exc.position, len(raw)))
        return f"invalid YAML: {exc.reason} (character #x{exc.character:04x})" if isinstance(exc.character, int) else f"invalid YAML: {exc.reason}", Position(display, line, col), "remove the control character"
    return f"invalid YAML: {exc}", Position(display), "check the syntax"


def parse_text(text: str, display: str, diagnostics: Diagnostics) -> list[RawDocument]:
    """Every non-empty document of one file's text; problems go to diagnostics."""
    documents: list[RawDocument] = []
    loader = _Loader(text)
    index = 0
    try:
        while loader.check_node():
            node = loader.get_node()
            index += 1
            if index > MAX_DOCUMENTS_PER_FILE:
                diagnostics.add(error(f"more than {MAX_DOCUMENTS_PER_FILE:,} documents in one file",
                                      Position(display, *_mark(node)), hint="split the file"))
                return documents
            if isinstance(node, yaml.ScalarNode) and node.tag == f"{_TAG}null":
                continue  # an empty document between separators
            positions: dict[DataPath, tuple[int, int]] = {(): _mark(node)}
            try:
                data = _Builder(positions).build(node, ())
            except _Limit as exc:
                diagnostics.add(error(str(exc), Position(display, *_mark(exc.node)), hint=exc.hint))
                continue
            documents.append(RawDocument(display, index, data, positions))
    except yaml.YAMLError as exc:
        message, position, hint = _yaml_error(exc, text, display)
        diagnostics.add(error(message, position, hint=hint))
    except RecursionError:
        diagnostics.add(error(f"nesting deeper than {MAX_DEPTH} levels", Position(display), hint="flatten the document"))
    finally:
        loader.dispose()
    return documents


def read_file(path: Path, display: str, diagnostics: Diagnostics) -> list[RawDocument]:
    """Read and parse one file, refusing what is too large, binary or not UTF-8."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            diagnostics.add(error(
                f"file is {size / 2**20:.1f} MiB; spec files may be at most {MAX_FILE_BYTES // 2**20} MiB",
                Position(display), hint="split it into several files, or move data out of specs"))
            return []
        data = path.read_bytes()
    except OSError as exc:
        diagnostics.add(error(f"cannot read file: {exc.strerror}", Position(display), hint="check the path and its permissions"))
        return []
    text = _decode(data, display, diagnostics)
    if text is None:
        return []
    before = len(diagnostics)
    documents = parse_text(text, display, diagnostics)
    if not documents and len(diagnostics) == before:
        diagnostics.add(error("file holds no documents", Position(display),
                              hint="add a document (apiVersion, kind, metadata, spec) or delete the file"))
    return documents


def spec_files(root: Path) -> list[Path]:
    """*.yaml and *.yml under root, recursively and sorted, skipping hidden directories."""
    if root.is_file():
        return [root]
    found = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        found.extend(Path(directory) / f for f in sorted(files) if f.endswith((".yaml", ".yml")) and not f.startswith("."))
    return found


def display_path(path: Path) -> str:
    """Path as the user would type it: relative to the current directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
