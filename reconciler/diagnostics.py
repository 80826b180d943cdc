"""User-facing problems as values: collected, all reported at once, never raised one by one.

Modelled on Terraform's diagnostics: each problem has a severity, a one-line message
saying what is wrong, where it is (file:line:column, the resource address and the field
path) and a hint saying how to fix it. Lower layers return them; the CLI renders them.

Exceptions::

    PipeformError          a user-facing failure carrying Diagnostics; the CLI prints
                           them and exits 1 without a traceback
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Position:
    """A place in a spec file; line and column count from 1."""

    file: str
    line: int = 1
    column: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    severity: Severity
    message: str
    position: Position | None = None
    address: str | None = None
    hint: str | None = None
    path: str | None = None

    def render(self) -> str:
        """One line: ``file:line:col: Kind/name: what is wrong (how to fix)``."""
        parts = []
        if self.position is not None:
            parts.append(f"{self.position}:")
        if self.severity is Severity.WARNING:
            parts.append("warning:")
        if self.address:
            parts.append(f"{self.address}:")
        text = self.message
        if self.hint:
            text += f" ({self.hint})"
        parts.append(text)
        return " ".join(parts)

    def to_json(self) -> dict[str, Any]:
        """The shape of ``terraform validate -json`` diagnostics, plus address and path."""
        out: dict[str, Any] = {
            "severity": self.severity.value,
            "summary": self.message,
            "detail": self.hint or "",
            "address": self.address,
            "path": self.path,
        }
        if self.position is not None:
            out["range"] = {
                "filename": self.position.file,
                "start": {"line": self.position.line, "column": self.position.column},
            }
        return out


def error(message: str, position: Position | None = None, **kw: Any) -> Diagnostic:
    return Diagnostic(Severity.ERROR, message, position, **kw)


def warning(message: str, position: Position | None = None, **kw: Any) -> Diagnostic:
    return Diagnostic(Severity.WARNING, message, position, **kw)


@dataclass
class Diagnostics:
    """An ordered collection of diagnostics."""

    items: list[Diagnostic] = field(default_factory=list)

    def add(self, diagnostic: Diagnostic) -> None:
        self.items.append(diagnostic)

    def extend(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.items.extend(diagnostics)

    def __iter__(self) -> Iterator[Diagnostic]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity is Severity.WARNING]

    @property
    def has_errors(self) -> bool:
        return any(d.severity is Severity.ERROR for d in self.items)

    def sorted(self) -> list[Diagnostic]:
        def key(d: Diagnostic) -> tuple[str, int, int]:
            p = d.position
            return (p.file, p.line, p.column) if p else ("", 0, 0)

        return sorted(self.items, key=key)

    def summary(self) -> str:
        """``2 errors in 2 files.`` style footer."""
        errors = self.errors
        files = {d.position.file for d in errors if d.position}
        noun = "error" if len(errors) == 1 else "errors"
        text = f"{len(errors)} {noun}"
        if files:
            text += f" in {len(files)} file{'s' if len(files) != 1 else ''}"
        warnings = len(self.warnings)
        if warnings:
            text += f", {warnings} warning{'s' if warnings != 1 else ''}"
        return text + "."


class PipeformError(Exception):
    """A failure to show to the user as diagnostics, with exit code 1."""

    def __init__(
        self, diagnostics: Diagnostics | Sequence[Diagnostic] | str, footer: str | None = None
    ) -> None:
        """footer: a line shown after the diagnostics, such as "Nothing was changed."."""
        self.footer = footer
        if isinstance(diagnostics, str):
            diagnostics = Diagnostics([error(diagnostics)])
        elif not isinstance(diagnostics, Diagnostics):
            diagnostics = Diagnostics(list(diagnostics))
        self.diagnostics = diagnostics
        super().__init__("; ".join(d.render() for d in diagnostics))


def did_you_mean(word: str, candidates: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The closest candidate to a misspelt word, or None; case-insensitive."""
    pool = {c.lower(): c for c in candidates}
    import difflib  # only an error suggests a name

    matches = difflib.get_close_matches(word.lower(), list(pool), n=1, cutoff=cutoff)
    return pool[matches[0]] if matches else None


def suggestion(word: str, candidates: Iterable[str]) -> str | None:
    """``did you mean X?`` or None."""
    best = did_you_mean(word, candidates)
    return f"did you mean {best}?" if best else None
