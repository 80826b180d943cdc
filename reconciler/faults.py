"""Named crash points for the reliability tests (as etcd's and TiKV's failpoints).

``PIPEFORM_FAULT=point`` or ``point:Kind/name`` makes the process kill itself with
SIGKILL when it reaches that point, so tests can prove that re-running converges after
a crash at any moment (``address`` is a resource's address, or for the providers' points
``mid-materialise`` and ``mid-file-write`` the FeatureSet's address and the file's name).
The variable is read once, when the process starts (tests set
it for the process they run); unset (always, outside tests) a point costs one comparison.
"""

from __future__ import annotations

import os
import signal

ENV = "PIPEFORM_FAULT"
_WANTED = os.environ.get(ENV) or None


def point(name: str, address: str | None = None) -> None:
    wanted = _WANTED
    if wanted is None:
        return
    if wanted == name or (address is not None and wanted == f"{name}:{address}"):
        os.kill(os.getpid(), signal.SIGKILL)
