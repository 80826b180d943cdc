"""The trainer's identity: a version constant and a digest of its source files.

The executor folds ``trainer_code_digest()`` into a TrainingJob's inputs fingerprint, so
a change to the trainer's code retrains; the package's metadata records both. This module
imports only the standard library (no torch), so the reconciler can call it cheaply.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

TRAINER_VERSION = "0.1.0"

_PACKAGE_DIR = Path(__file__).resolve().parent
_SOURCE_SUFFIXES = (".py",)
_SOURCE_NAMES = ("Dockerfile",)


def _source_files(root: Path) -> list[Path]:
    found = [
        path
        for path in root.rglob("*")
        if path.is_file()
        and "__pycache__" not in path.parts
        and (path.suffix in _SOURCE_SUFFIXES or path.name in _SOURCE_NAMES)
    ]
    return sorted(found, key=lambda path: path.relative_to(root).as_posix())


@functools.cache
def trainer_code_digest(root: Path | None = None) -> str:
    """``sha256:<hex>`` over the trainer's source files (relative path and bytes, sorted).

    Timestamps, permissions and the checkout's location do not change it; an edit to
    any ``.py`` file under ``trainer/`` (or its Dockerfile) does.
    """
    base = root or _PACKAGE_DIR
    digest = hashlib.sha256(f"trainer {TRAINER_VERSION}\n".encode())
    for path in _source_files(base):
        data = path.read_bytes()
        digest.update(f"{path.relative_to(base).as_posix()}\0{len(data)}\0".encode())
        digest.update(data)
    return f"sha256:{digest.hexdigest()}"
