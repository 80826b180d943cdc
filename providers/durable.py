"""Durable file writes shared by the providers: atomic replace, fsync of a directory, sha256.

A file is replaced by writing a temporary file in the same directory, fsyncing it,
optionally letting a caller check it (``promtool check rules`` looks there), renaming it
over the target and fsyncing the directory, so a crash leaves either the old file or the
new one, never half of either. The temporary file's name carries the writer's pid and
start time (``providers.leftovers``), so one left by a killed writer can be proven
abandoned and removed. (The trainer, which ships on its own, has the same recipe
in ``trainer.fsio``.)
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from providers import leftovers
from reconciler import faults

CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """The hex sha256 of the file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries (a rename or unlink in it) to disk; given a file, its
    bytes (``os.fsync`` on a read-only descriptor works for both)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def durable_temp(path: Path, data: bytes, mode: int) -> Path:
    """A synced temporary file beside path holding data; the caller renames or links it."""
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.{leftovers.owner_tag()}.", suffix=".tmp"
    )  # .<name>.<pid>-<start>.<random>.tmp
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return Path(tmp)


def atomic_write(
    path: Path, data: bytes, mode: int = 0o644, check: Callable[[Path], None] | None = None
) -> None:
    """Replace path with data: temporary file, fsync, ``check(temp)``, rename, fsync of dir.

    ``check`` sees the complete temporary file and raises to keep the old file in place.
    Temporary files of path that a killed writer left are removed first.
    """
    leftovers.clean(path.parent, f".{path.name}.")  # a killed writer's temporary files
    tmp = durable_temp(path, data, mode)
    try:
        if check is not None:
            check(tmp)
        faults.point("mid-file-write", path.name)  # the new bytes are in tmp, not yet in place
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def remove(path: Path) -> None:
    """Delete path; a path that is already gone is fine."""
    try:
        path.unlink()
    except FileNotFoundError:
        return
    fsync_dir(path.parent)
