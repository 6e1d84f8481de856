"""units.py: the one size formatter picks the largest binary unit the size reaches and rounds within it; a rate
is written with its spread."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ssv2_fixtures.run.units import GB, KB, MB, fmt_bytes, half_width, rate

_UNITS = {"GB": GB, "MB": MB, "KB": KB, "B": 1}


def _parse(text: str) -> tuple[float, int]:
    number, unit = text.split(" ")
    return float(number), _UNITS[unit]


@given(st.floats(min_value=-(2.0**50), max_value=2.0**50, allow_nan=False))
def test_the_unit_is_the_largest_the_size_reaches_and_the_number_reads_back(n: float) -> None:
    number, unit = _parse(fmt_bytes(n))
    assert abs(n) >= unit or unit == 1
    assert unit == GB or abs(n) < unit * 1024  # never "1024 KB": the next unit would have been used
    decimals = 1 if unit == GB else 0
    assert abs(number * unit - n) <= 0.5 * 10**-decimals * unit + 1e-9 * abs(n)


@pytest.mark.parametrize(
    "n,text",
    [
        (None, "?"),
        (0, "0 B"),
        (1023, "1023 B"),
        (KB, "1 KB"),
        (MB, "1 MB"),
        (1.5 * GB, "1.5 GB"),
        (385 * MB, "385 MB"),
        (-2 * MB, "-2 MB"),
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
