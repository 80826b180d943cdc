"""The YAML parser behind reconciler.spec.source: builds plain data and positions straight
from PyYAML's events, with the limits (value budget, depth, document count) checked as it
goes, and turns PyYAML's errors into one clear diagnostic with file:line:column.

Imported only when a file is really parsed: a command whose files all come from the spec
cache never loads PyYAML.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import yaml

from reconciler.diagnostics import Diagnostics, Position, error
from reconciler.spec import numbers
from reconciler.spec.source import (
    MAX_DEPTH,
    MAX_DOCUMENTS_PER_FILE,
    MAX_NODES_PER_DOCUMENT,
    MAX_NODES_PER_FILE,
    DataPath,
    Place,
    RawDocument,
)

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_constructor = yaml.constructor.SafeConstructor()
_TAG = "tag:yaml.org,2002:"
_RESOLVED: dict[tuple[str, tuple[bool, bool]], str] = {}  # (plain scalar, implicit) -> tag
_SCALARS = {f"{_TAG}{t}" for t in ("null", "bool", "int", "float")}
_MAY_RESOLVE = frozenset(k for k in yaml.resolver.Resolver.yaml_implicit_resolvers if k)


class _Limit(Exception):
    """A problem that stops the document; ``fatal`` ones stop the whole file."""

    def __init__(self, message: str, mark: Any, hint: str, fatal: bool = False) -> None:
        super().__init__(message)
        self.where = _mark(mark)
        self.hint = hint
        self.fatal = fatal


@dataclass
class _Anchor:
    data: Any
    path: DataPath  # where the anchored value was written
    mark: Place
    places: tuple[int, int]  # its slice of _Builder.places
    keys: tuple[int, int]  # its slice of _Builder.keys
    size: int  # values in it, aliases expanded
    height: int  # levels of nesting in it
    line: int


def _show_tag(tag: str) -> str:
    return "!!" + tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag


class _Budget:
    """Values built (aliases expanded) in one document and in the whole file."""

    def __init__(self) -> None:
        self.file = 0
        self.document = 0
        self.aliased = False  # whether an alias was expanded in this file

    def charge(self, n: int, mark: Any) -> None:
        self.file += n
        self.document += n
        if self.document > MAX_NODES_PER_DOCUMENT:
            raise self._over(
                f"document {self._verb} more than {MAX_NODES_PER_DOCUMENT:,} values",
                mark,
                "document",
            )
        if self.file > MAX_NODES_PER_FILE:
            raise self._over(
                f"file {self._verb} more than {MAX_NODES_PER_FILE:,} values in all", mark, "file"
            )

    @property
    def _verb(self) -> str:
        return "expands to" if self.aliased else "holds"

    def _over(self, what: str, mark: Any, unit: str) -> _Limit:
        if self.aliased:
            return _Limit(
                f"{what} (aliases repeated too often: a YAML bomb?); the rest of the file is not read",
                mark,
                f"split the {unit}, or write the values out instead of nesting aliases",
                fatal=True,
            )
        return _Limit(
            f"{what}; the rest of the file is not read",
            mark,
            f"split the {unit}; spec documents are small, so large data belongs in a Dataset's source",
            fatal=True,
        )


class _MergeSlot:
    """Stands in a path for the value of a merge key (<<) while it is being built."""


class _Builder:
    """Turns one document's parse events into plain data with positions, as they stream.

    Nothing is composed ahead: every limit (values, depth, tags, duplicate keys) is
    checked as soon as the parser reaches the offending place, and an alias is charged
    the size of what it stands for before its positions are copied. Positions are
    appended to lists (a later entry for the same path wins), so that an anchored
    value's positions are one slice, cheap to copy under an alias's path.
    """

    def __init__(self, loader: Any, budget: _Budget) -> None:
        self.loader = loader
        self.budget = budget
        self.places: list[tuple[DataPath, Place]] = []
        self.keys: list[tuple[DataPath, Place]] = []
        self.anchors: dict[str, _Anchor] = {}
        self.open: dict[str, int] = {}  # anchors whose value is being built -> line
        self.merged = False

    def document(self) -> tuple[Any, dict[DataPath, Place], dict[DataPath, Place]]:
        data, _ = self.build((), 0, keyed=False)
        places, keys = dict(self.places), dict(self.keys)
        if self.merged:  # drop where merge values were first built
            places = {
                p: v for p, v in places.items() if not any(isinstance(x, _MergeSlot) for x in p)
            }
            keys = {p: v for p, v in keys.items() if not any(isinstance(x, _MergeSlot) for x in p)}
        return data, places, keys

    def build(self, path: DataPath, depth: int, keyed: bool) -> tuple[Any, int]:
        """The next value, at path (under a mapping key when keyed); returns it and its height."""
        event = self.loader.get_event()
        mark = event.start_mark
        if isinstance(event, yaml.AliasEvent):
            return self._alias(event, path, depth, keyed)
        if depth > MAX_DEPTH:
            raise _Limit(
                f"nesting deeper than {MAX_DEPTH} levels", mark, "flatten the document", fatal=True
            )
        self.budget.charge(1, mark)
        scalar = isinstance(event, yaml.ScalarEvent)
        anchor = event.anchor
        if anchor is not None:
            if anchor in self.anchors or anchor in self.open:
                first = self.anchors[anchor].line if anchor in self.anchors else self.open[anchor]
                raise _Limit(
                    f"anchor &{anchor} is defined twice (first at line {first})",
                    mark,
                    "give each anchor its own name",
                )
            self.open[anchor] = mark.line + 1
        if scalar or not keyed:
            self.places.append((path, _mark(mark)))
        places, keys, before = len(self.places), len(self.keys), self.budget.document
        data, height = self._value(event, path, depth)
        if anchor is not None:
            del self.open[anchor]
            self.anchors[anchor] = _Anchor(
                data,
                path,
                _mark(mark),
                (places, len(self.places)),
                (keys, len(self.keys)),
                self.budget.document - before + 1,
                height,
                mark.line + 1,
            )
        return data, height

    def _alias(self, event: Any, path: DataPath, depth: int, keyed: bool) -> tuple[Any, int]:
        mark, name = event.start_mark, event.anchor
        if name in self.open:
            raise _Limit(
                f"alias *{name} is used inside the value of its own anchor &{name} "
                f"(line {self.open[name]}), which would make it infinite",
                mark,
                f"an alias may only refer to a value that is complete; remove *{name} here",
            )
        anchor = self.anchors.get(name)
        if anchor is None:
            raise _Limit(
                f"alias *{name} has no anchor &{name} before it in this document",
                mark,
                f"define &{name} earlier in the same document, or quote the value if '*' is meant literally",
            )
        if depth + anchor.height > MAX_DEPTH:
            raise _Limit(
                f"nesting deeper than {MAX_DEPTH} levels once alias *{name} is expanded",
                mark,
                "flatten the document",
                fatal=True,
            )
        self.budget.aliased = True
        self.budget.charge(anchor.size, mark)
        if not keyed or not isinstance(anchor.data, dict | list):
            self.places.append((path, anchor.mark))
        cut = len(anchor.path)
        for target, (first, last) in ((self.places, anchor.places), (self.keys, anchor.keys)):
            target.extend([((*path, *p[cut:]), where) for p, where in target[first:last]])
        return anchor.data, anchor.height

    def _value(self, event: Any, path: DataPath, depth: int) -> tuple[Any, int]:
        if isinstance(event, yaml.ScalarEvent):
            return self._scalar(event), 0
        tag = event.tag
        if isinstance(event, yaml.SequenceStartEvent):
            if tag not in (None, "!", f"{_TAG}seq"):
                raise _not_allowed(tag, event.start_mark)
            items: list[Any] = []
            height = 0
            while not self.loader.check_event(yaml.SequenceEndEvent):
                item, h = self.build((*path, len(items)), depth + 1, keyed=False)
                items.append(item)
                height = max(height, h + 1)
            self.loader.get_event()
            return items, height
        if isinstance(event, yaml.MappingStartEvent):
            if tag not in (None, "!", f"{_TAG}map"):
                raise _not_allowed(tag, event.start_mark)
            return self._mapping(path, depth)
        raise _Limit(
            f"unexpected YAML event {type(event).__name__}", event.start_mark, "check the syntax"
        )

    def _scalar(self, event: Any) -> Any:
        tag, value = event.tag, event.value
        if tag is None or tag == "!":
            if not event.implicit[0] or (value and value[0] not in _MAY_RESOLVE):
                return value  # quoted, or plain text that no implicit type can match (fast path)
            implicit = event.implicit
            tag = _RESOLVED.get((value, implicit))
            if tag is None:  # the resolver is pure Python regex work: remember its answers
                tag = self.loader.resolve(yaml.ScalarNode, value, implicit)
                if len(_RESOLVED) < 65_536:
                    _RESOLVED[(value, implicit)] = tag
            if (
                tag == f"{_TAG}int"
                and value.isascii()
                and value.isdigit()
                and (value[0] != "0" or value == "0")
                and len(value) < numbers.INT64_DIGITS
            ):
                return int(value)  # plain decimal (a leading 0 means octal in YAML 1.1)
        if tag in (f"{_TAG}str", f"{_TAG}timestamp"):
            return value
        if tag in _SCALARS:
            return self._construct(tag, value, event.start_mark)
        raise _not_allowed(tag, event.start_mark)

    @staticmethod
    def _construct(tag: str, value: str, mark: Any) -> Any:
        if tag == f"{_TAG}int" and len(value) > numbers.MAX_INT_TEXT:
            raise _Limit(numbers.too_large_integer(value), mark, numbers.HINT)
        try:
            data = _constructor.yaml_constructors[tag](_constructor, yaml.ScalarNode(tag, value))
        except (ValueError, yaml.YAMLError) as exc:
            shown = repr(value) if len(value) <= 40 else numbers.cut(value)
            raise _Limit(
                f"{shown} is not a valid {_show_tag(tag)}",
                mark,
                f"remove the tag {_show_tag(tag)} or fix the value",
            ) from exc
        problem = numbers.number_problem(data, value)
        if problem:
            raise _Limit(problem, mark, numbers.HINT)
        return data

    def _key(self) -> tuple[Any, Any]:
        event = self.loader.get_event()
        if not isinstance(event, yaml.ScalarEvent):
            what = "an alias" if isinstance(event, yaml.AliasEvent) else "a list or mapping"
            raise _Limit(
                f"mapping keys must be plain text, not {what}",
                event.start_mark,
                "write the key as plain text",
            )
        tag = event.tag
        if (tag is None or tag == "!") and event.implicit[0] and event.value == "<<":
            return _MERGE, event.start_mark
        key = self._scalar(event)
        if key is None or isinstance(key, bool | float):
            key = event.value
        return key, event.start_mark

    def _mapping(self, path: DataPath, depth: int) -> tuple[Any, int]:
        own: dict[Any, Any] = {}
        first_seen: dict[Any, int] = {}
        merges: list[tuple[Any, DataPath, tuple[int, int], Any]] = []
        height = 0
        while not self.loader.check_event(yaml.MappingEndEvent):
            key, mark = self._key()
            if key is _MERGE:
                slot = (*path, cast(str, _MergeSlot()))
                starts = (len(self.places), len(self.keys))
                value, h = self.build(slot, depth + 1, keyed=False)
                merges.append((value, slot, starts, mark))
                self.merged = True
                height = max(height, h)
                continue
            if key in first_seen:
                raise _Limit(
                    f"duplicate key {key!r} (first at line {first_seen[key]})",
                    mark,
                    "remove one of them; YAML would silently keep only the last",
                )
            first_seen[key] = mark.line + 1
            self.keys.append(((*path, key), _mark(mark)))
            self.places.append(((*path, key), _mark(mark)))
            own[key], h = self.build((*path, key), depth + 1, keyed=True)
            height = max(height, h + 1)
        self.loader.get_event()
        return (self._merge(own, merges, path), height) if merges else (own, height)

    def _merge(
        self,
        own: dict[Any, Any],
        merges: list[tuple[Any, DataPath, tuple[int, int], Any]],
        path: DataPath,
    ) -> dict[Any, Any]:
        """Explicit keys win over merged ones, and earlier merges over later ones (YAML's rule)."""
        out: dict[Any, Any] = {}
        for value, slot, starts, mark in merges:
            sources = (
                [value] if isinstance(value, dict) else value if isinstance(value, list) else []
            )
            if not sources or not all(isinstance(v, dict) for v in sources):
                raise _Limit(
                    "a merge key (<<) takes a mapping or a list of mappings",
                    mark,
                    "write <<: *anchor or <<: [*one, *two] where each anchor is a mapping",
                )
            taken: list[set[Any]] = []
            for source in sources:
                keys = {k for k in source if k not in own and k not in out}
                out.update((k, source[k]) for k in keys)
                taken.append(keys)
            skip = len(slot) + (0 if isinstance(value, dict) else 1)
            for target, start in zip((self.places, self.keys), starts, strict=True):
                self.budget.charge(
                    (len(target) - start) // 2, mark
                )  # copying positions is work too
                copied = []
                for p, where in target[start:]:
                    if len(p) > skip and p[: len(slot)] == slot:
                        which = 0 if skip == len(slot) else cast(int, p[len(slot)])
                        if p[skip] in taken[which]:
                            copied.append(((*path, *p[skip:]), where))
                target.extend(copied)
        out.update(own)
        return out


_MERGE = object()


def _not_allowed(tag: str, mark: Any) -> _Limit:
    return _Limit(
        f"tag {_show_tag(tag)} is not allowed in specs (only plain YAML values are)",
        mark,
        "remove the tag; pipeform never constructs objects from YAML",
    )


def _mark(mark: Any) -> Place:
    return mark.line + 1, mark.column + 1


_SYNTAX_HINTS = (
    (
        "mapping values are not allowed",
        "a ': ' inside a plain value starts a new key: quote the value, "
        "or put each key on its own line",
    ),
    ("did not find expected key", "keys of one mapping must line up at the same indentation"),
    ("did not find expected ',' or", "separate the entries with commas and close the bracket"),
    (
        "did not find expected '-' indicator",
        "items of one list must line up at the same indentation",
    ),
    ("exceeded maximum nesting depth", "flatten the document"),
    ("cannot start any token", "quote the value"),
    ("undefined tag handle", "remove the tag"),
)


def _yaml_error(exc: yaml.YAMLError, text: str, display: str) -> tuple[str, Position, str]:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark, context_mark = exc.problem_mark, exc.context_mark
        lines = text.splitlines()
        line_text = lines[mark.line] if mark.line < len(lines) else ""
        problem, context = exc.problem or "invalid YAML", exc.context
        hint = next(
            (h for key, h in _SYNTAX_HINTS if key in problem),
            "check the indentation and quoting around this place",
        )
        if "\t" in line_text[: mark.column + 1] or (
            "cannot start any token" in problem and "\t" in line_text
        ):
            problem, context = "a tab character is used for indentation", None
            hint = "YAML allows only spaces for indentation; replace tabs with spaces"
        elif "end of stream" in problem and context_mark is not None:
            # "unexpected end of stream" points past the last line; the cause is where it began
            what = (context or "").removeprefix("while scanning ").removeprefix("while parsing ")
            quoted = "quoted scalar" in what
            problem = f"{'the quoted string' if quoted else what or 'this value'} starting here is never closed"
            mark, context = context_mark, None
            hint = "add the closing quote" if quoted else "close it, or check the indentation"
        elif context and context_mark is not None and context_mark.line != mark.line:
            context = f"{context} (which starts at line {context_mark.line + 1})"
        if context:
            problem = f"{context}: {problem}"
        return f"invalid YAML: {problem}", Position(display, mark.line + 1, mark.column + 1), hint
    if isinstance(exc, yaml.reader.ReaderError):
        before = text[: max(0, exc.position)]
        line, col = before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1
        reason = (
            f"{exc.reason} (character #x{exc.character:04x})"
            if isinstance(exc.character, int)
            else exc.reason
        )
        return (
            f"invalid YAML: {reason}",
            Position(display, line, col),
            "remove the control character",
        )
    return f"invalid YAML: {exc}", Position(display), "check the syntax"


def _skip_document(loader: Any, budget: _Budget) -> None:
    """Drop the rest of a document after a problem in it; skipping is charged like building."""
    while True:
        event = loader.get_event()
        if isinstance(event, yaml.DocumentEndEvent):
            return
        budget.charge(1, event.start_mark)


def parse_text(text: str, display: str, diagnostics: Diagnostics) -> list[RawDocument]:
    """Every non-empty document of one file's text; problems go to diagnostics."""
    documents: list[RawDocument] = []
    loader = _Loader(text)
    budget = _Budget()
    index = 0
    try:
        loader.get_event()  # StreamStartEvent
        while not loader.check_event(yaml.StreamEndEvent):
            start = loader.get_event()  # DocumentStartEvent
            index += 1
            if index > MAX_DOCUMENTS_PER_FILE:
                diagnostics.add(
                    error(
                        f"more than {MAX_DOCUMENTS_PER_FILE:,} documents in one file; the rest is not read",
                        Position(display, *_mark(start.start_mark)),
                        hint="split the file",
                    )
                )
                return documents
            empty = loader.check_event(yaml.ScalarEvent) and loader.peek_event().value == ""
            budget.document = 0
            try:
                data, positions, keys = _Builder(loader, budget).document()
                loader.get_event()  # DocumentEndEvent
            except _Limit as exc:
                if exc.fatal:
                    raise
                diagnostics.add(error(str(exc), Position(display, *exc.where), hint=exc.hint))
                _skip_document(loader, budget)
                continue
            if data is None and empty:
                continue  # an empty document between separators
            documents.append(RawDocument(display, index, data, positions, keys))
    except _Limit as exc:  # a limit that stops the file: what was read before it is kept
        diagnostics.add(error(str(exc), Position(display, *exc.where), hint=exc.hint))
    except yaml.YAMLError as exc:
        message, position, hint = _yaml_error(exc, text, display)
        diagnostics.add(error(message, position, hint=hint))
    finally:
        loader.dispose()
    return documents
