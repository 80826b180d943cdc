"""Units in specs: durations (10m, 24h, 28d), Kubernetes quantities (32Gi, 500m), money.

Each unit is a pydantic-annotated type: it accepts the human spelling, stores a
canonical value (seconds, bytes, cores, Decimal), serialises back to a canonical
string, and documents its syntax in the JSON Schema so editors can check it. The
parsers and formatters themselves are in ``reconciler.kinds.quantities``, without pydantic.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

from reconciler.kinds.quantities import (
    DURATION_PATTERN,
    MAX_CPU,
    MAX_MEMORY,
    MAX_MONEY,
    MONEY_PATTERN,
    QUANTITY_PATTERN,
    UNIT_KEY,
    format_cpu,
    format_duration,
    format_memory,
    parse_cpu,
    parse_duration,
    parse_memory,
    parse_money,
)

Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": DURATION_PATTERN,
            "examples": ["30s", "10m", "24h", "28d"],
            UNIT_KEY: "duration",
        }
    ),
]

CpuQuantity = Annotated[
    Decimal,
    BeforeValidator(parse_cpu),
    PlainSerializer(format_cpu, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": int(MAX_CPU)},
                {"type": "string", "pattern": QUANTITY_PATTERN},
            ],
            "examples": [2, "500m"],
            UNIT_KEY: "cpu",
        }
    ),
]

MemoryQuantity = Annotated[
    int,
    BeforeValidator(parse_memory),
    PlainSerializer(format_memory, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0, "maximum": MAX_MEMORY},
                {"type": "string", "pattern": QUANTITY_PATTERN},
            ],
            "examples": ["512Mi", "32Gi"],
            UNIT_KEY: "memory",
        }
    ),
]


def _money_type(places: int) -> Any:
    return Annotated[
        Decimal,
        BeforeValidator(lambda v: parse_money(v, places)),
        PlainSerializer(
            lambda d: format(d.normalize(), "f") if places > 2 else format(d, "f"), return_type=str
        ),
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "number", "minimum": 0, "exclusiveMaximum": int(MAX_MONEY)},
                    {"type": "string", "pattern": MONEY_PATTERN},
                ],
                "examples": [1000, "1,000.50"] if places == 2 else [0.04, 2.5],
                UNIT_KEY: "money",
            }
        ),
    ]


Money = _money_type(2)
"""An amount, such as a budget: at most 2 decimal places."""
UnitPrice = _money_type(6)
"""A price per unit of use, such as per CPU-hour: at most 6 decimal places."""
