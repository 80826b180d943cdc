"""Start-up settings the CLI makes before any command runs (see docs/architecture.md).

pydantic looks for validation plugins (the ``pydantic`` entry-point group) when it builds
its first validator. ``PYDANTIC_DISABLE_PLUGINS=__all__`` turns the scan off, but
pydantic still imports its plugin loader first, and the loader imports
``importlib.metadata`` (with email, zipfile, csv and socket): about 25 ms of every command
that validates a spec, for a function that then returns no plugins. With plugins off, a
stand-in takes the loader's place: its ``get_plugins()`` returns none, as the real one
would, and any other name loads the real loader, so a pydantic that uses more of it
still works.
"""

from __future__ import annotations

import os
import sys
import types
from typing import Any

PLUGINS_ENV = "PYDANTIC_DISABLE_PLUGINS"
LOADER = "pydantic.plugin._loader"
#: The values for which pydantic's own get_plugins() returns no plugin at all.
ALL_OFF = ("__all__", "1", "true")


def _real_loader() -> types.ModuleType:
    """Import the real loader in the stand-in's place (it then stays in sys.modules)."""
    import importlib.machinery
    import importlib.util

    import pydantic.plugin

    spec = importlib.machinery.PathFinder.find_spec(LOADER, list(pydantic.plugin.__path__))
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot find {LOADER}", name=LOADER)
    module = importlib.util.module_from_spec(spec)
    sys.modules[LOADER] = module
    spec.loader.exec_module(module)
    return module


def _stand_in() -> types.ModuleType:
    module = types.ModuleType(LOADER, "pipeform's stand-in: plugins are off (startup.py)")

    def get_plugins() -> tuple[()]:
        if os.environ.get(PLUGINS_ENV) in ALL_OFF:
            return ()
        return _real_loader().get_plugins()  # type: ignore[no-any-return]

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):  # the import system asks for __path__ and the like
            raise AttributeError(name)
        return getattr(_real_loader(), name)

    module.get_plugins = get_plugins  # type: ignore[attr-defined]
    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    return module


def configure() -> None:
    """Turn pydantic's plugin scan off (unless the user set the variable) and, when it is
    off, stand in for its loader (unless pydantic already imported the real one)."""
    os.environ.setdefault(PLUGINS_ENV, "__all__")
    if os.environ[PLUGINS_ENV] in ALL_OFF and LOADER not in sys.modules:
        sys.modules[LOADER] = _stand_in()
