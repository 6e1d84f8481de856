"""ssv2_fixtures.report.fmt: the one table formatter."""

from __future__ import annotations

from ssv2_fixtures.report import md_table


def test_md_table_escapes_pipes_and_newlines() -> None:
    lines = md_table(["a", "b"], [["x|y", "two\nlines"], [1, None]])
    assert lines[0] == "| a | b |" and lines[1] == "|---|---|"
    assert lines[2] == "| x\\|y | two lines |"
    assert lines[3] == "| 1 | None |"
