"""Durable file writes for the trainer: chunked sha256, fsync by path, atomic replace.

A file is replaced by writing a temporary file in the same directory, fsyncing it and
renaming it over the target, then fsyncing the directory, so a reader (or a run resumed
after a crash) sees the old bytes or the new, never half of either. The trainer ships on
its own (``python -m trainer``), so it keeps these few helpers rather than importing the
provider's ``providers.durable``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """The hex sha256 of the file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_path(path: Path) -> None:
    """Flush a file's or a directory's entries to disk, by name."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_stream_atomic(
    target: Path, write: Callable[[BinaryIO], object], *, sync_dir: bool = True
) -> None:
    """Replace target with what ``write(stream)`` writes: temp file beside it, fsync, rename.

    ``sync_dir=False`` leaves the directory's fsync to the caller (one for several files).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    if sync_dir:
        fsync_path(target.parent)


def write_atomic(path: Path, data: bytes, *, sync_dir: bool = True) -> None:
    """Replace path with data so that a reader sees the old bytes or the new, never half."""
    write_stream_atomic(path, lambda stream: stream.write(data), sync_dir=sync_dir)
