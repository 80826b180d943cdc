"""What the run shows while it works: a rich progress bar on a terminal, JSON lines otherwise.

On a terminal (stderr is a TTY) a bar shows epoch, step, loss and samples/s, and events
print as short lines above it. Anywhere else (the local executor's log, a Kubernetes pod)
every event is one JSON object per line on stderr: ``{"event": ..., "ts": <unix time>,
...}``; an ``epoch`` event carries epoch, step, loss, metrics and samples_per_s. Only rank
0 reports; other ranks are silent.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

_REFRESH_SECONDS = 0.2


def process_started_at() -> float:
    """Unix time this process started (from /proc on Linux; now elsewhere)."""
    try:
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        age = uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")
        return time.time() - max(0.0, age)
    except (OSError, ValueError, IndexError):
        return time.time()


def _plain(value: Any) -> Any:
    """JSON-safe values: non-finite floats become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class Reporter:
    """Progress and events for one run; ``enabled`` False (ranks other than 0) is silent."""

    def __init__(
        self, enabled: bool = True, stream: TextIO | None = None, interactive: bool | None = None
    ) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.interactive = (
            self.stream.isatty() if interactive is None and enabled else bool(interactive)
        )
        self._bar: Any = None
        self._task: Any = None
        self._last_refresh = 0.0

    # -- events --------------------------------------------------------------------------

    def event(self, name: str, **fields: Any) -> None:
        if not self.enabled:
            return
        if self.interactive:
            self._console_line(name, fields)
            return
        line = json.dumps({"event": name, "ts": round(time.time(), 6), **_plain(fields)})
        self.stream.write(line + "\n")
        self.stream.flush()

    def _console_line(self, name: str, fields: dict[str, Any]) -> None:
        shown = " ".join(f"{k}={_short(v)}" for k, v in fields.items())
        text = f"[bold]{name}[/bold] {shown}".rstrip()
        if self._bar is not None:
            self._bar.console.print(text, highlight=False)
        else:
            from rich.console import Console

            Console(file=self.stream).print(text, highlight=False)

    # -- the bar -------------------------------------------------------------------------

    def start_epoch(self, epoch: int, epochs: int, steps: int, done: int) -> None:
        """A bar for epoch (0-based) of epochs, with steps batches, done already."""
        if not (self.enabled and self.interactive):
            return
        if self._bar is None:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self._bar = Progress(
                TextColumn("epoch {task.fields[epoch]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}  {task.fields[rate]} samples/s"),
                console=Console(file=self.stream),
                transient=False,
            )
            self._bar.start()
        label = f"{epoch + 1}/{epochs}"
        if self._task is None:
            self._task = self._bar.add_task(
                "", total=steps, completed=done, epoch=label, loss="-", rate="-"
            )
        else:
            self._bar.reset(self._task, total=steps, completed=done, epoch=label)

    def step(self, done: int, loss: Callable[[], float], samples_per_s: float) -> None:
        """Called after every step; refreshes the bar at most every 0.2 s (loss read lazily)."""
        if self._task is None:
            return
        now = time.monotonic()
        if now - self._last_refresh < _REFRESH_SECONDS:
            return
        self._last_refresh = now
        self._bar.update(
            self._task,
            completed=done,
            loss=f"{loss():.4f}",
            rate=f"{samples_per_s:,.0f}",
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
            self._task = None


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in value.items()) + "}"
    return str(value)
