"""Setting up a SQLite connection that other processes may be opening at the same moment.

Setting the journal mode (even to the mode the file already has) can fail at once with
"database is locked", without SQLite's busy handler, while another process opens or
checkpoints the same file: two commands starting together, or two trainers registering
at once, hit it. ``setup`` runs the pragmas and the schema, retrying that error for as
long as the busy timeout would have waited. It lives in the trainer, which imports nothing
from ``reconciler``, so that the state backend (``reconciler/state/sqlite.py``) and the
local model registry (``trainer/registry/local.py``) share one copy.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable

WAIT_S = 30.0  # as long as the busy timeout


def setup(db: sqlite3.Connection, pragmas: Iterable[str], schema: str) -> None:
    """Run each pragma, then the schema script, on a new connection."""
    pragmas = tuple(pragmas)
    deadline = time.monotonic() + WAIT_S
    delay = 0.005
    while True:
        try:
            for pragma in pragmas:
                db.execute(pragma)
            db.executescript(schema)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
