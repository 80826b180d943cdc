"""A reference from one document to another: plain data, no pydantic, so that document
facts read from the spec cache can hold references without loading the models."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Reference:
    """A reference from one document to another, by name."""

    kind: str
    name: str
    path: tuple[str | int, ...]  # where the name is written, from the document root

    @property
    def address(self) -> str:
        return f"{self.kind}/{self.name}"
