"""ssv2_fixtures.report.fmt: the one table formatter, the one size formatter, rates with spread."""

from __future__ import annotations

import math

from ssv2_fixtures.report import md_table
from ssv2_fixtures.report.fmt import half_width, rate, size


def test_md_table_escapes_pipes_and_newlines() -> None:
    lines = md_table(["a", "b"], [["x|y", "two\nlines"], [1, None]])
    assert lines[0] == "| a | b |" and lines[1] == "|---|---|"
    assert lines[2] == "| x\\|y | two lines |"
    assert lines[3] == "| 1 | None |"


def test_size_units() -> None:
    assert size(None) == "?"
    assert size(512) == "512 B" and size(2048) == "2 KB"
    assert size(331 * 2**20) == "331 MB" and size(32 * 2**30) == "32.0 GB"


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
