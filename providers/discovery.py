"""Finding providers' entry points without scanning every installed package each run.

``importlib.metadata.entry_points`` reads the metadata of every installed distribution:
in an environment with a few hundred packages that is 50-60 ms, a tenth of a no-op plan.
The group's entry points are kept in a small JSON file under the user's cache directory
(``$XDG_CACHE_HOME/pipeform``, else ``~/.cache/pipeform``), keyed by the interpreter
and by every ``sys.path`` directory with its modification time. Installing, upgrading or
removing a package adds or removes a ``*.dist-info`` directory in one of them, which
changes that directory's time, so the key no longer matches and the group is scanned
again. A cached entry that cannot be imported also triggers a scan.

The file keeps the last few environments (a console script, ``python -m`` and a test
runner each see their own ``sys.path``). It holds only names and ``module:attribute``
strings, never code. It is optional in every way: an unreadable, corrupt or unwritable
file just means a scan.
``PIPEFORM_ENTRY_POINT_CACHE=0`` turns it off.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any

DISABLE_ENV = "PIPEFORM_ENTRY_POINT_CACHE"
FORMAT = 2


def cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pipeform" / "entry-points.json"


def environment_key() -> list[Any]:
    """The interpreter and each sys.path directory with its modification time."""
    key: list[Any] = [sys.executable, sys.version]
    for entry in sys.path:
        try:
            key.append([entry, os.stat(entry or ".").st_mtime_ns])
        except OSError:
            key.append([entry, None])
    return key


def _scan(group: str) -> dict[str, str]:
    from importlib.metadata import entry_points

    found: dict[str, str] = {}
    for ep in entry_points(group=group):
        found.setdefault(ep.name, ep.value)  # the first on sys.path wins, as load() does
    return found


MAX_ENVIRONMENTS = 8  # a console script, python -m, test runners: each sees its own sys.path


def _env_id(key: list[Any]) -> str:
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:32]


def _load_body(path: Path) -> dict[str, Any]:
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        return {}
    environments = body.get("environments")
    return environments if isinstance(environments, dict) else {}


def _read(path: Path, key: list[Any], group: str) -> dict[str, str] | None:
    entry = _load_body(path).get(_env_id(key))
    if not isinstance(entry, dict) or entry.get("key") != key:
        return None
    found = entry.get("groups", {}).get(group)
    if not isinstance(found, dict) or not all(isinstance(v, str) for v in found.values()):
        return None
    return found


def _write(path: Path, key: list[Any], group: str, found: dict[str, str]) -> None:
    """Record the group for this environment, keeping the most recent few environments."""
    environments = _load_body(path)
    environments.pop(_env_id(key), None)
    kept = list(environments.items())[-(MAX_ENVIRONMENTS - 1) :]
    kept.append((_env_id(key), {"key": key, "groups": {group: found}}))
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        body = {"format": FORMAT, "environments": dict(kept)}
        tmp.write_text(json.dumps(body), encoding="utf-8")
        os.replace(tmp, path)


def group_entries(group: str) -> dict[str, str]:
    """name -> ``module:attribute`` for every entry point in the group."""
    if os.environ.get(DISABLE_ENV) == "0":
        return _scan(group)
    path, key = cache_file(), environment_key()
    found = _read(path, key, group)
    if found is None:
        found = _scan(group)
        _write(path, key, group, found)
    return found


def load_entry(value: str) -> Any:
    """The object an entry point's ``module:attribute`` value names."""
    value = value.split("[", 1)[0]  # extras ("module:attr [extra]") do not change what loads
    module, _, attribute = value.partition(":")
    target: Any = importlib.import_module(module.strip())
    for part in attribute.strip().split(".") if attribute.strip() else ():
        target = getattr(target, part)
    return target


def load(group: str, name: str) -> Any | None:
    """The named entry point's object, or None when no installed package provides it."""
    value = group_entries(group).get(name)
    if value is not None:
        try:
            return load_entry(value)
        except (ImportError, AttributeError):  # moved since it was cached: look again
            pass
    found = _scan(group)  # not cached, or cached wrongly: the packages decide
    if os.environ.get(DISABLE_ENV) != "0":
        _write(cache_file(), environment_key(), group, found)
    value = found.get(name)
    return None if value is None else load_entry(value)
