"""Structured logs: one JSON object a line on stderr (time, level, event, fields).
Nothing logged holds a secret value: messages are pipeform's own (which never carry
one), and the repository URL is logged without its credentials."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

_lock = threading.Lock()


def event(name: str, level: str = "info", **fields: Any) -> None:
    record = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z",
        "level": level,
        "event": name,
        **fields,
    }
    line = json.dumps(record, default=str)
    with _lock:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
