"""Named crash points for the reliability tests (as etcd's and TiKV's failpoints).

``PIPEFORM_FAULT=point`` or ``point:Kind/name`` makes the process kill itself with
SIGKILL when it reaches that point, so tests can prove that re-running converges after
a crash at any moment. Unset (always, outside tests) it costs one dict lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "PIPEFORM_FAULT"


def point(name: str, address: str | None = None) -> None:
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    if wanted == name or (address is not None and wanted == f"{name}:{address}"):
        os.kill(os.getpid(), signal.SIGKILL)
