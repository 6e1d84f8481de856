"""ssv2_fixtures.report.terminal: the plugin's end-of-session table (ASCII)."""

from __future__ import annotations

from report_helpers import DATA, fixture, with_intervals

from ssv2_fixtures.report import terminal_lines


def test_terminal_lines() -> None:
    lines = terminal_lines(DATA / "failures.json")
    assert len(lines) == 1 + len(fixture("failures")["results"])
    assert lines[0].split() == ["config", "test", "videos/s", "result"]
    assert any(ln.split()[:5] == ["bs4-w2-pf2", "quick", "26.8", "+-?", "passed"] for ln in lines)
    assert any("shm_exhausted (after 1 of 20 batches)" in ln for ln in lines)
    assert all(ln.isascii() for ln in lines)


def test_terminal_shows_spread_in_ascii() -> None:
    lines = terminal_lines(with_intervals(fixture("failures")))
    row = next(ln.split() for ln in lines if ln.split()[:2] == ["bs4-w2-pf2", "quick"])
    assert row[2] == "26.8" and row[3] == "+-" and float(row[4]) > 0 and row[5] == "passed"
    assert all(ln.isascii() for ln in lines)


def test_terminal_says_when_the_host_was_busy() -> None:
    data = fixture("failures")
    assert not [ln for ln in terminal_lines(data) if ln.startswith("note:")]
    data["results"][0]["host"] = {"foreign_cores": 1.1, "steal_frac": 0.0, "seconds": 9.0, "cores": 2}
    notes = [ln for ln in terminal_lines(data) if ln.startswith("note:")]
    assert len(notes) == 1 and "host was not idle" in notes[0] and notes[0].isascii()
