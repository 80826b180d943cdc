"""Styled lines of terminal output that load rich only when they are shown in colour.

Renderers build ``Line`` objects the way they would build ``rich.text.Text``: a base style
for the whole line, and appended pieces with their own styles. Written to a pipe, a file or
under NO_COLOR (CI, GitOps controllers, ``pipeform plan | tee``), a line is its plain text
and rich is never imported, which is a tenth of a no-op plan's start-up; on a colour
terminal ``to_rich`` hands rich an identical ``Text`` to render.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.text import Text


class Line:
    """Text with a base style over the whole line and styled pieces, as rich.text.Text."""

    __slots__ = ("pieces", "style")

    def __init__(self, text: str = "", style: str = "") -> None:
        self.style = style
        self.pieces: list[tuple[str, str]] = [(text, "")] if text else []

    def append(self, text: str, style: str = "") -> Line:
        self.pieces.append((text, style))
        return self

    @property
    def plain(self) -> str:
        return "".join(text for text, _ in self.pieces)

    def to_rich(self) -> Text:
        from rich.text import Text

        out = Text(style=self.style)
        for text, style in self.pieces:
            out.append(text, style=style or None)
        return out

    def __repr__(self) -> str:
        return f"Line({self.plain!r}, style={self.style!r})"
