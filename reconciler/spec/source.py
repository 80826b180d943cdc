"""Reading YAML spec files safely into plain data with a position for every value.

Safe by construction: only the YAML core schema (mappings, sequences, strings, numbers,
booleans, null) is built; any other tag, a duplicate key, a binary or non-UTF-8 file,
an oversized file, too many documents, deep nesting or alias expansion past a value
budget (the "billion laughs" attack) is reported as a diagnostic with file:line:column.
Timestamps stay strings: the models decide what a value means.

Data is built straight from the parser's events, never from a composed node tree, so
a limit stops the work as soon as the parser reaches the place that breaks it: the time
spent on any file is bounded by the limits below, not by what the file asks for.

This module holds what a command needs when every file comes from the spec cache
(documents, positions, limits, reading bytes); the parser itself, and PyYAML with it, is in
``reconciler.spec.parser`` and is imported only when a file has to be parsed.
"""

from __future__ import annotations

import marshal
import os
import stat
from pathlib import Path
from typing import Any

from reconciler.diagnostics import Diagnostics, Position, error

MAX_FILE_BYTES = 8 * 2**20
MAX_DOCUMENTS_PER_FILE = 10_000
MAX_NODES_PER_DOCUMENT = 100_000
MAX_NODES_PER_FILE = 200_000
MAX_DEPTH = 64
MAX_FILES = 10_000

DataPath = tuple[str | int, ...]
Place = tuple[int, int]


class RawDocument:
    """One YAML document as plain data, with the position of every key and value.

    ``positions`` holds, for a scalar, where the value is written and, for a list or
    mapping under a key, where that key is written (the line a reader looks for);
    ``key_positions`` holds where each mapping key is written. A document read from the
    spec cache keeps its positions packed (marshal) until something asks for one: most
    commands on a valid tree never do. ``facts`` holds, for a document that validated
    when the cache was written, its packed ``reconciler.spec.facts.Facts``.
    """

    __slots__ = ("_key_positions", "_packed", "_positions", "data", "facts", "file", "index")

    def __init__(
        self,
        file: str,
        index: int,
        data: Any,
        positions: dict[DataPath, Place] | None = None,
        key_positions: dict[DataPath, Place] | None = None,
    ) -> None:
        self.file = file
        self.index = index
        self.data = data
        self._positions = {} if positions is None else positions
        self._key_positions = {} if key_positions is None else key_positions
        self._packed: bytes | None = None
        self.facts: list[Any] | None = None

    @classmethod
    def from_packed(
        cls, file: str, index: int, data: Any, packed: bytes, facts: list[Any] | None
    ) -> RawDocument:
        """A document whose positions are in ``packed`` (from ``pack``), unpacked on use.

        Made once per cached document: its position maps are left unset, not made empty,
        as every reader of them unpacks first.
        """
        document = object.__new__(cls)
        document.file = file
        document.index = index
        document.data = data
        document._packed = packed
        document.facts = facts
        return document

    def pack(self) -> bytes:
        """The positions as bytes, for the spec cache."""
        if self._packed is not None:
            return self._packed
        return marshal.dumps((self._positions, self._key_positions))

    def _unpack(self) -> None:
        if self._packed is not None:
            self._positions, self._key_positions = marshal.loads(self._packed)
            self._packed = None

    @property
    def positions(self) -> dict[DataPath, Place]:
        self._unpack()
        return self._positions

    @property
    def key_positions(self) -> dict[DataPath, Place]:
        self._unpack()
        return self._key_positions

    def __repr__(self) -> str:
        return f"RawDocument({self.file!r}, {self.index}, {self.data!r})"

    @property
    def start(self) -> Position:
        line, column = self.positions.get((), (1, 1))
        return Position(self.file, line, column)

    def position(self, path: DataPath) -> Position:
        """The position of path, or of its nearest written ancestor."""
        positions = self.positions
        for end in range(len(path), -1, -1):
            found = positions.get(tuple(path[:end]))
            if found:
                return Position(self.file, *found)
        return self.start

    def key_position(self, path: DataPath) -> Position:
        """Where the key of path is written (for unknown or duplicate fields)."""
        found = self.key_positions.get(tuple(path))
        return Position(self.file, *found) if found else self.position(path)


def shared_strings(
    value: Any, strings: dict[str, str], copies: dict[int, Any] | None = None
) -> Any:
    """value for the spec cache, with equal strings made one object (``strings`` keeps them
    across documents): marshal writes a repeated object once and reads it back as a
    reference, which makes reading the cache, on every command, cheaper. A list or mapping
    met twice (a YAML alias) stays one object."""
    if isinstance(value, str):
        return strings.setdefault(value, value)
    if isinstance(value, tuple):
        return tuple(shared_strings(v, strings, copies) for v in value)
    if not isinstance(value, dict | list):
        return value
    copies = {} if copies is None else copies
    copy = copies.get(id(value))
    if copy is None:
        if isinstance(value, dict):
            copy = {
                shared_strings(k, strings, copies): shared_strings(v, strings, copies)
                for k, v in value.items()
            }
        else:
            copy = [shared_strings(v, strings, copies) for v in value]
        copies[id(value)] = copy
    return copy


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
        diagnostics.add(
            error(
                "binary file, not YAML text (it contains NUL bytes)",
                Position(display, *_line_col(data, nul)),
                hint="remove it from the spec tree or rename it away from .yaml/.yml",
            )
        )
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        diagnostics.add(
            error(
                f"file is not valid UTF-8 (byte 0x{data[exc.start]:02x})",
                Position(display, *_line_col(data, exc.start)),
                hint="save the file as UTF-8",
            )
        )
        return None


def read_bytes(path: Path, display: str, diagnostics: Diagnostics) -> bytes | None:
    """One file's bytes, refusing what is not a regular file or is too large."""
    too_large = "split it into several files, or move data out of specs"
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            diagnostics.add(
                error(
                    "not a regular file (a device, pipe or socket)",
                    Position(display),
                    hint="remove it from the spec tree or rename it away from .yaml/.yml",
                )
            )
            return None
        if info.st_size > MAX_FILE_BYTES:
            diagnostics.add(
                error(
                    f"file is {info.st_size / 2**20:.1f} MiB; spec files may be at most {MAX_FILE_BYTES // 2**20} MiB",
                    Position(display),
                    hint=too_large,
                )
            )
            return None
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)  # never more, even if the file grows meanwhile
        if len(data) > MAX_FILE_BYTES:
            diagnostics.add(
                error(
                    f"file is larger than {MAX_FILE_BYTES // 2**20} MiB",
                    Position(display),
                    hint=too_large,
                )
            )
            return None
    except OSError as exc:
        diagnostics.add(
            error(
                f"cannot read file: {exc.strerror}",
                Position(display),
                hint="check the path and its permissions",
            )
        )
        return None
    return data


def parse_bytes(data: bytes, display: str, diagnostics: Diagnostics) -> list[RawDocument]:
    """Parse one file's bytes, refusing what is binary or not UTF-8."""
    text = _decode(data, display, diagnostics)
    if text is None:
        return []
    from reconciler.spec.parser import parse_text  # PyYAML loads only when a file is parsed

    before = len(diagnostics)
    documents = parse_text(text, display, diagnostics)
    if not documents and len(diagnostics) == before:
        diagnostics.add(
            error(
                "file holds no documents",
                Position(display),
                hint="add a document (apiVersion, kind, metadata, spec) or delete the file",
            )
        )
    return documents


def read_file(path: Path, display: str, diagnostics: Diagnostics) -> list[RawDocument]:
    """Read and parse one file, refusing what is too large, binary or not UTF-8."""
    data = read_bytes(path, display, diagnostics)
    return [] if data is None else parse_bytes(data, display, diagnostics)


def spec_files(root: Path) -> list[Path]:
    """*.yaml and *.yml under root, recursively and sorted, skipping hidden directories."""
    if not root.is_dir():
        return [root]  # a file named on the command line, whatever its kind
    found: list[Path] = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        found.extend(
            Path(directory) / f
            for f in sorted(files)
            if f.endswith((".yaml", ".yml")) and not f.startswith(".")
        )
    return found


def display_path(path: Path) -> str:
    """Path as the user would type it: relative to the current directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
