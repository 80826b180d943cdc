"""Checkpoints: atomic, checksummed files; the newest that verifies is resumed from.

``ckpt-<step>.pt`` is written to a temporary file in the same directory, fsynced, renamed
into place, and its sha256 written the same way to ``ckpt-<step>.pt.sha256`` (the
``sha256sum`` format); then the directory is fsynced. A crash at any moment leaves either
the previous set of checkpoints or a new one whose sidecar is missing or does not match,
which ``latest`` skips (and reports). Only the newest ``keep`` checkpoints are kept.

The write recipe itself (also used for small files such as result.json) is
``trainer.fsio``. Also here: ``StopFlag``, the SIGTERM handler that asks the loop to
checkpoint and stop.
"""

from __future__ import annotations

import contextlib
import re
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import torch

from trainer.fsio import fsync_path, sha256_file, write_atomic, write_stream_atomic

_NAME = re.compile(r"ckpt-(\d+)\.pt")


def checkpoint_path(directory: Path, step: int) -> Path:
    return directory / f"ckpt-{step:09d}.pt"


def save(directory: Path, step: int, payload: dict[str, Any], keep: int) -> Path:
    """Write ``payload`` as the checkpoint of global step ``step``; prune to ``keep``."""
    target = checkpoint_path(directory, step)
    write_stream_atomic(target, lambda stream: torch.save(payload, stream), sync_dir=False)
    sidecar = target.with_name(target.name + ".sha256")
    line = f"{sha256_file(target)}  {target.name}\n"
    write_atomic(sidecar, line.encode(), sync_dir=False)
    fsync_path(directory)
    prune(directory, keep)
    return target


def _checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """(step, path) of every checkpoint file, newest first."""
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = _NAME.fullmatch(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found, reverse=True)


def prune(directory: Path, keep: int) -> None:
    """Remove all but the newest ``keep`` checkpoints (and their sidecars)."""
    for _, path in _checkpoints(directory)[max(1, keep) :]:
        for stale in (path.with_name(path.name + ".sha256"), path):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()


def verify(path: Path) -> str | None:
    """None when the sidecar's sha256 matches the file; otherwise why it does not."""
    sidecar = path.with_name(path.name + ".sha256")
    try:
        recorded = sidecar.read_text().split()[0]
    except (OSError, IndexError):
        return "its .sha256 sidecar is missing or empty"
    actual = sha256_file(path)
    if actual != recorded:
        return f"sha256 {actual[:12]}… does not match the sidecar's {recorded[:12]}…"
    return None


@dataclass(frozen=True)
class Skipped:
    path: Path
    reason: str


@dataclass(frozen=True)
class Found:
    """The checkpoint to resume from (None: start afresh) and the ones passed over."""

    path: Path | None
    payload: dict[str, Any] | None
    skipped: list[Skipped]


def latest(directory: Path, accept: Callable[[dict[str, Any]], str | None]) -> Found:
    """The newest checkpoint that verifies, loads, and that ``accept`` takes.

    ``accept(payload)`` returns None to take it or the reason to pass it over (it was
    written for another config). Corrupt and passed-over checkpoints are listed in
    ``skipped``, newest first.
    """
    skipped: list[Skipped] = []
    for _, path in _checkpoints(directory):
        reason = verify(path)
        if reason is None:
            try:
                payload = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as error:  # a truncated or foreign file
                reason = f"it does not load ({type(error).__name__}: {str(error)[:120]})"
            else:
                reason = accept(payload)
                if reason is None:
                    return Found(path, payload, skipped)
        skipped.append(Skipped(path, reason))
    return Found(None, None, skipped)


class StopFlag:
    """Set by SIGTERM (or a first Ctrl-C); the loop checks it at every step boundary.

    A second Ctrl-C raises KeyboardInterrupt at once. Installed only in the main thread
    (where Python delivers signals); ``restore`` puts the previous handlers back.
    """

    _SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def install(self) -> StopFlag:
        with contextlib.suppress(ValueError):  # not the main thread: no handler
            for signum in self._SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def restore(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
