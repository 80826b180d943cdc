"""How large a number a spec may hold: the parser's check on each integer and float it builds.

YAML 1.1 builds integers of any size (``0x`` and five thousand digits is one) and reads a
float past about 1.8e308 (``1.0e+309``) as infinity, which the writer never meant.
Integers in specs are 64-bit, as in Kubernetes objects, JSON consumers and SQLite; a
larger one, or a float that overflowed, is refused where it is written. ``.inf`` and
``.nan`` written as such are left to the models, which refuse them in number fields.
"""

from __future__ import annotations

import math
from typing import Any

INT64 = 2**63
INT64_DIGITS = 19
"""A plain decimal integer with fewer digits is always within 64 bits."""
MAX_INT_TEXT = 100
"""No 64-bit integer needs more characters, in any YAML notation (0b..., 1_000, 1:30:00);
longer text is refused before it is converted, which is slow for long text."""
HINT = "write a smaller number, or quote it to make it text"
_INFINITIES = (".inf", "+.inf", "-.inf")


def cut(text: str) -> str:
    """A scalar as written, cut short when long: a message names a number, not 5,000 digits."""
    return text if len(text) <= 40 else f"{text[:20]}...{text[-6:]} ({len(text):,} characters)"


def too_large_integer(text: str) -> str:
    return (
        f"{cut(text)} is too large for an integer: numbers in specs lie between "
        f"{-INT64:,} and {INT64 - 1:,} (64 bits)"
    )


def number_problem(data: Any, text: str) -> str | None:
    """Why the number that YAML built from ``text`` cannot be in a spec, or None."""
    if isinstance(data, int) and not isinstance(data, bool) and not -INT64 <= data < INT64:
        return too_large_integer(text)
    if isinstance(data, float) and math.isinf(data) and text.lower() not in _INFINITIES:
        return f"{cut(text)} is too large for a number (floats reach about 1.8e308)"
    return None
