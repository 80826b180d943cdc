"""Diagnostics as terminal text (colour when the terminal allows) or JSON."""

from __future__ import annotations

import json
import os
from typing import Any

from rich.console import Console
from rich.text import Text

from reconciler.diagnostics import Diagnostic, Diagnostics, Severity


def console(stderr: bool = False) -> Console:
    """A console that honours NO_COLOR and plain output when not on a terminal."""
    plain = bool(os.environ.get("NO_COLOR"))  # no-color.org: no styling at all, bold included
    return Console(
        stderr=stderr,
        highlight=False,
        soft_wrap=True,
        emoji=False,
        no_color=plain or None,
        color_system=None if plain else "auto",
    )


def _line(d: Diagnostic) -> Text:
    text = Text()
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


def print_diagnostics(diagnostics: Diagnostics, out: Console, summary: bool = True) -> None:
    if not out.is_terminal or out.no_color:  # plain text: skip rich's per-line rendering
        stream = out.file
        stream.write("".join(_line(d).plain + "\n" for d in diagnostics.sorted()))
        if summary and diagnostics.has_errors:
            stream.write(diagnostics.summary() + "\n")
        stream.flush()
        return
    for d in diagnostics.sorted():
        out.print(_line(d))
    if summary and diagnostics.has_errors:
        out.print(Text(diagnostics.summary(), style="red bold"))


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
