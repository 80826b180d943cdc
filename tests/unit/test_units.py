from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.kinds import quantities as units


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("10m", 600),
        ("24h", 86400),
        ("28d", 28 * 86400),
        ("1h30m", 5400),
        ("1w", 604800),
        ("250ms", 0.25),
        ("1.5h", 5400),
    ],
)
def test_durations_parse_to_seconds(text: str, seconds: float) -> None:
    assert units.parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["10", "10 minutes", "m10", "", "1y", 10, True, "-5m"])
def test_bad_durations_say_how_to_write_one(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        units.parse_duration(bad)


@given(st.integers(min_value=0, max_value=10**8))
def test_duration_format_round_trips(seconds: int) -> None:
    assert units.parse_duration(units.format_duration(seconds)) == seconds


@pytest.mark.parametrize(
    ("text", "cores"),
    [("500m", Decimal("0.5")), ("2", Decimal(2)), (2, Decimal(2)), (1.5, Decimal("1.5"))],
)
def test_cpu_quantities(text: object, cores: Decimal) -> None:
    assert units.parse_cpu(text) == cores


def test_cpu_refuses_memory_units() -> None:
    with pytest.raises(ValueError, match="memory size, not a CPU"):
        units.parse_cpu("2Gi")


@pytest.mark.parametrize(
    ("text", "size"),
    [("32Gi", 32 * 2**30), ("512Mi", 512 * 2**20), ("1G", 10**9), ("1024", 1024), (4096, 4096)],
)
def test_memory_quantities(text: object, size: int) -> None:
    assert units.parse_memory(text) == size


@pytest.mark.parametrize("bad", ["4GB", "lots", "-1Gi", "512m", "1.5"])
def test_bad_memory_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        units.parse_memory(bad)


@given(st.integers(min_value=1, max_value=2**50))
def test_memory_format_round_trips(size: int) -> None:
    assert units.parse_memory(units.format_memory(size)) == size


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        (1000, Decimal("1000.00")),
        ("$1,000.50", Decimal("1000.50")),
        ("12.5", Decimal("12.50")),
        (0, Decimal("0.00")),
    ],
)
def test_money(text: object, amount: Decimal) -> None:
    assert units.parse_money(text) == amount


@pytest.mark.parametrize("bad", ["1,00", "ten", -5, "1.005", True, "$-3"])
def test_bad_money(bad: object) -> None:
    with pytest.raises(ValueError):
        units.parse_money(bad)


def test_unit_prices_allow_six_decimals() -> None:
    assert units.parse_money("0.000125", places=6) == Decimal("0.000125")


# -- bounds: past them a value is a mistake or an attack, refused before it can overflow


def test_durations_reach_ten_years_and_no_further() -> None:
    assert units.parse_duration("3650d") == units.MAX_DURATION_SECONDS
    for bad in ("3651d", "522w", "9" * 400 + "s"):  # 400 digits: once infinity, crashing plan
        with pytest.raises(ValueError, match=r"longer than 521w3d \(3650d, about ten years\)"):
            units.parse_duration(bad)


def test_cpu_is_bounded_and_whole_millicores() -> None:
    assert units.parse_cpu("1000000") == Decimal(1_000_000)
    assert units.parse_cpu("1m") == Decimal("0.001")
    with pytest.raises(ValueError, match="more than 1,000,000 cores"):
        units.parse_cpu("9" * 400)
    with pytest.raises(ValueError, match="finer than a millicore"):
        units.parse_cpu("0.0001")


def test_memory_is_bounded_at_one_exbibyte() -> None:
    assert units.parse_memory("1Ei") == 2**60
    with pytest.raises(ValueError, match=r"more than 1Ei"):
        units.parse_memory("1025Pi")


@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan"), Decimal("NaN")])
def test_quantities_and_money_refuse_nan_and_infinity(bad: object) -> None:
    with pytest.raises(ValueError, match="finite"):
        units.parse_cpu(bad)
    with pytest.raises(ValueError, match="finite"):
        units.parse_memory(bad)
    with pytest.raises(ValueError, match="finite"):
        units.parse_money(bad)


def test_money_is_below_ten_to_the_fifteen() -> None:
    assert units.parse_money("$999,999,999,999,999.99") == Decimal("999999999999999.99")
    for bad in (10**15, "1" + "0" * 29, 1e30):  # 30 digits: once decimal.InvalidOperation
        with pytest.raises(ValueError, match=r"too large; amounts are below"):
            units.parse_money(bad, places=6)
