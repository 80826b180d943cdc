"""Diagnostics as terminal text (colour when the terminal allows) or JSON."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any, TextIO

from reconciler.diagnostics import Diagnostic, Diagnostics, Severity
from reconciler.render.lines import Line

if TYPE_CHECKING:
    from rich.console import Console


def plain_stream(stderr: bool = False) -> TextIO | None:
    """The stream to write unstyled text to, or None when output goes to a terminal that
    takes colour. Decided as rich decides (NO_COLOR, FORCE_COLOR, TTY_COMPATIBLE, isatty),
    without loading rich's console: plain output is the common case in CI and pipes."""
    stream = sys.stderr if stderr else sys.stdout
    if os.environ.get("NO_COLOR"):
        return stream
    if os.environ.get("FORCE_COLOR") or os.environ.get("TTY_COMPATIBLE") == "1":
        return None
    isatty = getattr(stream, "isatty", None)
    try:
        return None if isatty is not None and isatty() else stream
    except ValueError:  # a closed stream
        return stream


def write_lines(lines: list[Line], stderr: bool = False) -> None:
    """Styled lines: through rich on a colour terminal, else as plain text in one write."""
    stream = plain_stream(stderr)
    if stream is None:
        out = console(stderr=stderr)
        for line in lines:
            out.print(line.to_rich())
        return
    stream.write("".join(line.plain + "\n" for line in lines))
    stream.flush()


def console(stderr: bool = False) -> Console:
    """A console that honours NO_COLOR and plain output when not on a terminal."""
    from rich.console import Console

    plain = bool(os.environ.get("NO_COLOR"))  # no-color.org: no styling at all, bold included
    return Console(
        stderr=stderr,
        highlight=False,
        soft_wrap=True,
        emoji=False,
        no_color=plain or None,
        color_system=None if plain else "auto",
    )


def _line(d: Diagnostic) -> Line:
    text = Line()
    if d.position is not None:
        text.append(f"{d.position}: ", style="bold")
    if d.severity is Severity.WARNING:
        text.append("warning: ", style="yellow bold")
    else:
        text.append("error: ", style="red bold") if d.position is None else None
    if d.address:
        text.append(f"{d.address}: ", style="cyan")
    text.append(d.message)
    if d.hint:
        text.append(f" ({d.hint})", style="dim")
    return text


def print_diagnostics(diagnostics: Diagnostics, summary: bool = True, stderr: bool = True) -> None:
    """One line per diagnostic, then the summary of errors: styled on a colour terminal,
    else plain (and rich is not loaded)."""
    lines = [_line(d) for d in diagnostics.sorted()]
    if summary and diagnostics.has_errors:
        lines.append(Line(diagnostics.summary(), style="red bold"))
    write_lines(lines, stderr=stderr)


def diagnostics_json(diagnostics: Diagnostics, **extra: Any) -> str:
    """Modelled on ``terraform validate -json``."""
    body = {
        "format_version": "1.0",
        "valid": not diagnostics.has_errors,
        "error_count": len(diagnostics.errors),
        "warning_count": len(diagnostics.warnings),
        **extra,
        "diagnostics": [d.to_json() for d in diagnostics.sorted()],
    }
    return json.dumps(body, indent=2)
