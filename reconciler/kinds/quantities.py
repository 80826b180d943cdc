"""Units as people write them in specs: durations (10m, 24h, 28d), Kubernetes quantities
(32Gi, 500m) and money, parsed to canonical values and formatted back.

Plain functions without pydantic, so that commands which only format (plan, cost, policy)
need no models; ``reconciler.kinds.units`` builds the spec types from them.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

UNIT_KEY = "x-pipeform-unit"
"""Marks unit types in generated JSON Schemas so their defaults can be written in units."""

_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
DURATION_PATTERN = r"^(\d+(\.\d+)?(ms|s|m|h|d|w))+$"


def parse_duration(value: Any) -> float:
    """``"1h30m"`` -> 5400.0 seconds. Bare numbers are refused: a unit is required."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(
            f"{value!r} is not a duration; write a number with a unit, such as 30s, 10m, 24h or 28d"
        )
    text = value.strip()
    if not text or not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(
            f"{value!r} is not a duration; use units ms, s, m, h, d, w (for example 90s, 1h30m, 28d)"
        )
    return sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(text))


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
        raise ValueError(f"{value!r} is not a quantity")
    if isinstance(value, int | float | Decimal):
        if value < 0:
            raise ValueError(f"{value!r} is negative; quantities are zero or more")
        return Decimal(str(value))
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a quantity")
    match = _QUANTITY.fullmatch(value.strip())
    if not match:
        raise ValueError(
            f"{value!r} is not a quantity; use a number with an optional suffix "
            "such as 500m, 2, 512Mi, 32Gi or 1G"
        )
    number, suffix = Decimal(match.group(1)), match.group(2) or ""
    return number * (_BINARY[suffix] if suffix in _BINARY else _DECIMAL[suffix])


def parse_cpu(value: Any) -> Decimal:
    cores = parse_quantity(value)
    if isinstance(value, str) and value.strip()[-2:] in _BINARY:
        raise ValueError(
            f"{value!r} is a memory size, not a CPU amount; use cores (2) or millicores (500m)"
        )
    return cores


def format_cpu(cores: Decimal) -> str:
    if cores == cores.to_integral_value():
        return str(int(cores))
    return f"{int(cores * 1000)}m"


def parse_memory(value: Any) -> int:
    amount = parse_quantity(value)
    if isinstance(value, str) and value.strip().endswith("m") and not value.strip().endswith("Mi"):
        raise ValueError(f"{value!r} means milli-bytes; write 512Mi or 512M for megabytes")
    if amount != amount.to_integral_value():
        raise ValueError(f"{value!r} is not a whole number of bytes")
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
        raise ValueError(f"{value!r} is not an amount of money")
    if isinstance(value, int | float | Decimal):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
        if not re.fullmatch(MONEY_PATTERN, text):
            raise ValueError(
                f'{value!r} is not an amount of money; write 1000, 1000.50 or "$1,000.50"'
            )
        text = text.lstrip("$").replace(",", "")
    else:
        raise ValueError(f"{value!r} is not an amount of money")
    try:
        amount = Decimal(text)
    except InvalidOperation as exc:
        raise ValueError(f"{value!r} is not an amount of money") from exc
    if amount < 0:
        raise ValueError(f"{value!r} is negative; amounts are zero or more")
    step = Decimal(1).scaleb(-places)
    if amount != amount.quantize(step):
        raise ValueError(f"{value!r} has more than {places} decimal places")
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
