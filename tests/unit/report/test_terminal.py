"""ssv2_fixtures.report.terminal: the plugin's end-of-session table (ASCII)."""

from __future__ import annotations

from report_helpers import DATA, fixture, with_intervals

from ssv2_fixtures.report import recommend, terminal_lines
from ssv2_fixtures.run.units import rate


def test_terminal_lines() -> None:
    lines = terminal_lines(DATA / "failures.json")
    table = [ln for ln in lines if not ln.startswith(("recommended:", "  "))]
    assert len(table) == 1 + len(fixture("failures")["results"])
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
    assert not [ln for ln in terminal_lines(data) if "host was not idle" in ln]
    data["results"][0]["host"] = {"foreign_cores": 1.1, "steal_frac": 0.0, "seconds": 9.0, "cores": 2}
    notes = [ln for ln in terminal_lines(data) if "host was not idle" in ln]
    assert len(notes) == 1 and notes[0].startswith("  caveat: ") and notes[0].isascii()


def test_the_terminal_ends_with_the_recommendation_its_rate_and_ties() -> None:
    data = with_intervals(fixture("healthy"))
    rec = recommend(data)
    assert rec is not None and rec.basis.interval is not None
    lines = terminal_lines(data)
    answer = lines[next(i for i, ln in enumerate(lines) if ln.startswith("recommended:")) :]
    lo, hi = rec.basis.interval
    # the config, its measured rate with the spread and the interval as recorded, and what it passed
    assert answer[0].startswith(f"recommended: {rec.label} - {rate(rec.basis.vps, rec.basis.interval, ascii=True)}")
    assert f"[{lo:.1f}, {hi:.1f}] as recorded" in answer[0] and "passed a sustained run" in answer[0]
    others = [t for t in rec.ties if t != rec.label]
    assert any(ln.startswith("  tied with: ") for ln in answer) == bool(others)
    assert not any("only short runs" in ln for ln in answer)
    assert all(ln.isascii() for ln in lines)


def test_only_short_runs_and_a_small_split_are_caveats() -> None:
    data = fixture("healthy")
    data["results"] = [r for r in data["results"] if r["kind"] == "quick"]
    for r in data["results"]:
        r["metrics"]["split_size"] = 3  # fewer videos than any of these configs holds in flight
    answer = [ln for ln in terminal_lines(data) if ln.startswith(("recommended:", "  "))]
    assert "fastest passing quick run" in answer[0]
    caveats = [ln for ln in answer if ln.startswith("  caveat: ")]
    assert any("only short runs" in c and "pytest -m sustained" in c for c in caveats)
    assert any("The split holds 3 videos" in c for c in caveats) and all(c.isascii() for c in caveats)


def test_without_a_recommendation_the_terminal_says_why() -> None:
    data = fixture("failures")
    for r in data["results"]:
        r["status"] = "failed"
    assert terminal_lines(data)[-1].startswith("recommended: none - no configuration passed")
    err = fixture("data_error")
    assert terminal_lines(err) == ["recommended: none - the data could not be loaded; the fix is in summary.md"]


def test_a_check_too_short_to_judge_is_said_in_the_result() -> None:
    from ssv2_fixtures.stress.verdicts import degradation

    data = fixture("healthy")
    data["results"][5]["verdicts"] = [degradation([0.1] * 8, [16] * 8)]
    row = next(ln for ln in terminal_lines(data) if ln.startswith("bs16-w4-pf2") and "sustained" in ln)
    assert row.endswith("passed (not judged, too few batches: degradation)")
