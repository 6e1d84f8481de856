"""Targets as ``target:<name>`` verdicts, and the printed table (no processes)."""

from __future__ import annotations

from ssv2_fixtures.stress.traincfg import check
from ssv2_fixtures.stress.validate import table, target_verdicts
from ssv2_fixtures.stress.verdicts import decide


def test_targets_become_verdicts_that_decide_the_status() -> None:
    rows = check({"min_videos_per_s": 50.0, "max_rss_gb": 1.0}, {"videos_per_s": 40.0, "rss_peak_bytes": 2**29})
    vs = target_verdicts(rows)
    assert [v["name"] for v in vs] == ["target:min_videos_per_s", "target:max_rss_gb"]
    assert [v["ok"] for v in vs] == [False, True]
    assert "wanted at least 50 videos/s, achieved 40 videos/s" in vs[0]["detail"]
    assert decide("passed", vs) == "failed"
    assert decide("passed", vs[1:]) == "passed"


def test_missing_metric_is_a_missed_target() -> None:
    vs = target_verdicts(check({"max_wait_ms_p95": 10.0}, {}))
    assert vs[0]["ok"] is False and "achieved -" in vs[0]["detail"]


def test_table_marks_each_row() -> None:
    rows = check({"min_videos_per_s": 50.0}, {"videos_per_s": 60.0})
    t = table(rows)
    assert t.splitlines()[0].startswith("target") and t.splitlines()[1].rstrip().endswith("yes")


def test_a_rate_judged_on_its_interval_says_so_in_the_verdict_and_the_table() -> None:
    rows = check({"min_videos_per_s": 50.0}, {"videos_per_s": 60.0, "videos_per_s_interval": [45.0, 75.0]})
    (v,) = target_verdicts(rows)
    assert v["ok"] is False and "judged on its lower bound" in v["detail"] and "45–75" in v["detail"]
    assert "45 (lower bound; rate 60)" in table(rows) and table(rows).rstrip().endswith("NO")


def test_the_table_is_shown_once() -> None:
    from ssv2_fixtures.run.runner import RunResult
    from ssv2_fixtures.stress.validate import ValidateResult

    passed: RunResult = RunResult({"status": "passed", "label": "bs8-w2-pf2", "verdicts": []})  # type: ignore[typeddict-item]
    missed = ValidateResult(passed, check({"min_videos_per_s": 50.0}, {"videos_per_s": 40.0}))
    # the failure message carries the table; the test prints nothing more (pytest shows both)
    assert missed.shown_table is None and missed.failure is not None and missed.failure.count("min_videos_per_s") == 1
    met = ValidateResult(passed, check({"min_videos_per_s": 50.0}, {"videos_per_s": 60.0}))
    assert met.failure is None and met.shown_table == met.table
    assert ValidateResult(None, error="no --train-config").shown_table is None
