"""Keep secrets out of what the trainer writes: error messages, result.json, metadata.

Secrets reach the trainer only as environment variables (named in the TrainingJob's
``env``); any value of a variable whose name looks secret (KEY, TOKEN, SECRET, PASSWORD,
CREDENTIAL) is replaced by ``***`` in text, and so are credentials in URLs
(``https://user:password@host`` becomes ``https://***@host``).
"""

from __future__ import annotations

import os
import re
from typing import Any

_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
_MIN_SECRET_LENGTH = 4
MASK = "***"


def secret_values() -> list[str]:
    """Values of secret-looking environment variables, longest first."""
    found = {
        value
        for name, value in os.environ.items()
        if _SECRET_NAME.search(name) and len(value) >= _MIN_SECRET_LENGTH
    }
    return sorted(found, key=len, reverse=True)


def scrub(text: str) -> str:
    for value in secret_values():
        text = text.replace(value, MASK)
    return _URL_CREDENTIALS.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)


def scrub_data(value: Any) -> Any:
    """scrub() applied to every string inside dicts and lists."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {key: scrub_data(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_data(item) for item in value]
    return value
