"""Units as people write them in specs: durations (10m, 24h, 28d), Kubernetes quantities
(32Gi, 500m) and money, parsed to canonical values and formatted back.

Plain functions without pydantic, so that commands which only format (plan, cost, policy)
need no models; ``reconciler.kinds.units`` builds the spec types from them.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any

UNIT_KEY = "x-pipeform-unit"
"""Marks unit types in generated JSON Schemas so their defaults can be written in units."""

# Upper bounds, far above any real spec and low enough that every sum, product and
# format of them (cost = price x cores x hours x workers) stays exact: a value past one
# is a mistake or an attack, refused with the bound rather than overflowing later.
MAX_DURATION_SECONDS = 3650 * 86400
"""The longest duration: 3650d (about ten years)."""
MAX_CPU = Decimal(1_000_000)
"""The most CPU cores in one quantity: a million."""
MAX_MEMORY = 2**60
"""The most memory in one quantity: 1Ei (2^60 bytes)."""
MAX_MONEY = Decimal(10**15)
"""Amounts and prices are below this: a million billion (10^15) in any currency."""

_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
DURATION_PATTERN = r"^(\d+(\.\d+)?(ms|s|m|h|d|w))+$"


def shown(value: Any) -> str:
    """A value for a message: YAML's spelling of NaN and infinities, long text cut short."""
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:30]}...{text[-6:]} ({len(text):,} characters)"


def parse_duration(value: Any) -> float:
    """``"1h30m"`` -> 5400.0 seconds. Bare numbers are refused: a unit is required."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(
            f"{shown(value)} is not a duration; write a number with a unit, such as 30s, 10m, 24h or 28d"
        )
    text = value.strip()
    if not text or not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(
            f"{shown(value)} is not a duration; use units ms, s, m, h, d, w (for example 90s, 1h30m, 28d)"
        )
    # Decimal, not float: a float of 400 digits is infinity, which no format can print
    seconds = sum(
        Decimal(n) * Decimal(str(_DURATION_UNITS[u])) for n, u in _DURATION_PART.findall(text)
    )
    if seconds > MAX_DURATION_SECONDS:
        raise ValueError(
            f"{shown(value)} is longer than {format_duration(MAX_DURATION_SECONDS)} "
            "(3650d, about ten years), the longest duration pipeform accepts"
        )
    return float(seconds)


def format_duration(seconds: float) -> str:
    """5400.0 -> ``"1h30m"``: the largest units first, whole parts only."""
    if seconds == 0:
        return "0s"
    if seconds != int(seconds):
        return f"{round(seconds * 1000)}ms"
    rest = int(seconds)
    out = []
    for unit in ("w", "d", "h", "m", "s"):
        size = int(_DURATION_UNITS[unit])
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(out)


_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "m": Decimal("0.001"),
    "": Decimal(1),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
}
QUANTITY_PATTERN = r"^\+?\d+(\.\d+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
_QUANTITY = re.compile(r"\+?(\d+(?:\.\d+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?")


def parse_quantity(value: Any) -> Decimal:
    """A Kubernetes quantity (``32Gi``, ``500m``, ``2``, ``1.5``) as a Decimal."""
    if isinstance(value, bool):
        raise ValueError(f"{shown(value)} is not a quantity")
    if isinstance(value, int | float | Decimal):
        if isinstance(value, float | Decimal) and not math.isfinite(value):
            raise ValueError(f"{shown(value)} is not a quantity; write a finite number")
        if value < 0:
            raise ValueError(f"{shown(value)} is negative; quantities are zero or more")
        return Decimal(str(value))
    if not isinstance(value, str):
        raise ValueError(f"{shown(value)} is not a quantity")
    match = _QUANTITY.fullmatch(value.strip())
    if not match:
        raise ValueError(
            f"{shown(value)} is not a quantity; use a number with an optional suffix "
            "such as 500m, 2, 512Mi, 32Gi or 1G"
        )
    number, suffix = Decimal(match.group(1)), match.group(2) or ""
    return number * (_BINARY[suffix] if suffix in _BINARY else _DECIMAL[suffix])


def parse_cpu(value: Any) -> Decimal:
    cores = parse_quantity(value)
    if isinstance(value, str) and value.strip()[-2:] in _BINARY:
        raise ValueError(
            f"{shown(value)} is a memory size, not a CPU amount; use cores (2) or millicores (500m)"
        )
    if cores > MAX_CPU:
        raise ValueError(
            f"{shown(value)} is more than {MAX_CPU:,} cores, the most pipeform accepts"
        )
    if cores != cores.quantize(_DECIMAL["m"]):
        raise ValueError(
            f"{shown(value)} is finer than a millicore; write whole millicores such as 1m or 0.001"
        )
    return cores


def format_cpu(cores: Decimal) -> str:
    if cores == cores.to_integral_value():
        return str(int(cores))
    return f"{int(cores * 1000)}m"


def parse_memory(value: Any) -> int:
    amount = parse_quantity(value)
    if isinstance(value, str) and value.strip().endswith("m") and not value.strip().endswith("Mi"):
        raise ValueError(f"{shown(value)} means milli-bytes; write 512Mi or 512M for megabytes")
    if amount > MAX_MEMORY:
        raise ValueError(f"{shown(value)} is more than 1Ei (2^60 bytes), the most pipeform accepts")
    if amount != amount.to_integral_value():
        raise ValueError(f"{shown(value)} is not a whole number of bytes")
    return int(amount)


def format_memory(size: int) -> str:
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        if size and size % _BINARY[suffix] == 0:
            return f"{size // _BINARY[suffix]}{suffix}"
    return str(size)


MONEY_PATTERN = r"^\$?\d{1,3}(,?\d{3})*(\.\d+)?$"


def parse_money(value: Any, places: int = 2) -> Decimal:
    """``1000``, ``1000.5``, ``"$1,000.50"`` -> Decimal("1000.50"), at most ``places`` decimals."""
    if isinstance(value, bool):
        raise ValueError(f"{shown(value)} is not an amount of money")
    if isinstance(value, int | float | Decimal):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
        if not re.fullmatch(MONEY_PATTERN, text):
            raise ValueError(
                f'{shown(value)} is not an amount of money; write 1000, 1000.50 or "$1,000.50"'
            )
        text = text.lstrip("$").replace(",", "")
    else:
        raise ValueError(f"{shown(value)} is not an amount of money")
    try:
        amount = Decimal(text)
    except InvalidOperation as exc:
        raise ValueError(f"{shown(value)} is not an amount of money") from exc
    if not amount.is_finite():
        raise ValueError(f"{shown(value)} is not an amount of money; write a finite number")
    if amount < 0:
        raise ValueError(f"{shown(value)} is negative; amounts are zero or more")
    if amount >= MAX_MONEY:
        raise ValueError(
            f"{shown(value)} is too large; amounts are below 1,000,000,000,000,000 (10^15)"
        )
    step = Decimal(1).scaleb(-places)
    if amount != amount.quantize(step):
        raise ValueError(f"{shown(value)} has more than {places} decimal places")
    return amount.quantize(step)


def format_default(unit: str, value: Any) -> Any:
    """A model default (seconds, bytes, cores) as a user writes it (6h, 2Gi, 500m)."""
    if unit == "duration" and isinstance(value, int | float):
        return format_duration(value)
    if unit == "memory" and isinstance(value, int):
        return format_memory(value)
    if unit == "cpu" and isinstance(value, int | float | str):
        return format_cpu(Decimal(str(value)))
    return value
