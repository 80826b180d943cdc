"""What every model registry shares: its errors, the name checks, the package digest.

The local and the MLflow registry raise the same errors (``RegistryError``, and
``RegistryLookupError`` for an unknown model, version or alias), accept the same model
names, run ids and aliases, and identify a package by the same ``package_digest``.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from trainer.fsio import sha256_file

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_ALIAS = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,254}")
_VERSION_LIKE = re.compile(r"[vV]\d+")
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,199}")


class RegistryError(RuntimeError):
    """A registry call failed: bad input, an unreachable server, a broken package."""


class RegistryLookupError(RegistryError, KeyError):
    """An unknown model, version or alias; the message names what exists."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def check_model_name(model: str) -> None:
    if not _NAME.fullmatch(model):
        raise RegistryError(
            f"invalid model name {model!r}: use 1-200 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )


def check_run_id(run_id: str) -> None:
    if not _RUN_ID.fullmatch(run_id):
        raise RegistryError(
            f"invalid run id {run_id!r}: use 1-200 letters, digits, '.', '_', ':' or '-'"
        )


def check_alias(alias: str) -> None:
    if not _ALIAS.fullmatch(alias) or alias.lower() == "latest" or _VERSION_LIKE.fullmatch(alias):
        raise RegistryError(
            f"invalid alias {alias!r}: use letters, digits, '_' or '-', starting with a letter "
            "or '_'; 'latest' and version-like names such as 'v3' are reserved"
        )


def package_files(package_dir: Path) -> list[str]:
    """The package's files as sorted relative POSIX paths; a symbolic link is an error."""
    files: list[str] = []
    for path in package_dir.rglob("*"):
        if path.is_symlink():
            raise RegistryError(
                f"package {package_dir} holds a symbolic link ({path}); copy the file instead"
            )
        if path.is_file():
            files.append(path.relative_to(package_dir).as_posix())
    return sorted(files)


def package_digest(package_dir: Path) -> str:
    """Hex sha256 over the sorted relative paths and each file's sha256.

    Each file adds ``"<relative posix path>\\0<hex sha256 of its bytes>\\n"`` to the
    hash, in sorted path order; so the digest changes when a file's name or bytes do and
    not with timestamps, permissions or the directory's own location.
    """
    if not package_dir.is_dir():
        raise RegistryError(f"package directory {package_dir} does not exist")
    files = package_files(package_dir)
    if not files:
        raise RegistryError(f"package directory {package_dir} is empty")
    digest = hashlib.sha256()
    for relative in files:
        digest.update(f"{relative}\0{sha256_file(package_dir / relative)}\n".encode())
    return digest.hexdigest()
