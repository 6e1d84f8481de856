"""units.py: the one size formatter picks the largest binary unit the size reaches, names it as IEC does (KiB, MiB,
GiB: never the decimal KB/MB/GB) and rounds within it; a rate is written with its spread."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ssv2_fixtures.run.units import GiB, KiB, MiB, fmt_bytes, half_width, rate

_UNITS = {"GiB": GiB, "MiB": MiB, "KiB": KiB, "B": 1}


def _parse(text: str) -> tuple[float, int]:
    number, unit = text.split(" ")
    return float(number), _UNITS[unit]


@given(st.floats(min_value=-(2.0**50), max_value=2.0**50, allow_nan=False))
def test_the_unit_is_the_largest_the_size_reaches_and_the_number_reads_back(n: float) -> None:
    number, unit = _parse(fmt_bytes(n))
    assert abs(n) >= unit or unit == 1
    assert unit == GiB or abs(n) < unit * 1024  # never "1024 KiB": the next unit would have been used
    decimals = 1 if unit == GiB else 0
    assert abs(number * unit - n) <= 0.5 * 10**-decimals * unit + 1e-9 * abs(n)


@pytest.mark.parametrize(
    "n,text",
    [
        (None, "?"),
        (0, "0 B"),
        (1023, "1023 B"),
        (100, "100 B"),
        (KiB, "1 KiB"),
        (12 * KiB, "12 KiB"),
        (MiB, "1 MiB"),
        (1.5 * GiB, "1.5 GiB"),
        (385 * MiB, "385 MiB"),
        (-2 * MiB, "-2 MiB"),
        (10**9, "954 MiB"),  # a decimal gigabyte is less than one GiB
    ],
)
def test_fmt_bytes_examples(n: float | None, text: str) -> None:
    assert fmt_bytes(n) == text


def test_rate_with_spread_without_and_ascii() -> None:
    assert rate(97.0, (93.9, 100.1)) == "97.0 ± 3.1"
    assert rate(97.0, None) == "97.0 ±?"  # old record: the spread is unknown, and says so
    assert rate(97.0, (93.9, 100.1), ascii=True) == "97.0 +- 3.1"
    assert rate(97.0, None, ascii=True) == "97.0 +-?"
    assert rate(None, None) == "—" and rate(None, None, ascii=True) == "-"
    assert rate(5.0, (0.0, math.inf)) == "5.0 ± inf"


def test_half_width_takes_the_unclipped_side() -> None:
    # the batch-means rule clips lo at 0: the half-width is the distance to hi
    assert half_width(2.0, (0.0, 5.0)) == 3.0
    assert half_width(10.0, (8.0, 12.0)) == 2.0
