"""report/drift.py on a recorded quick session (2-core VM shared with other jobs, 2026-12-07): its controls, the
largest change, and the "cannot tell" lines for the configs whose lead over the fastest is inside the drift."""

from __future__ import annotations

from typing import Any

from ssv2_fixtures.report.drift import drift_section, pairs_within_drift
from ssv2_fixtures.report.summary import render_summary
from ssv2_fixtures.run.drift import Control, drift_record, max_change

# (phase, started_at, wall_s, videos/s) and the controls (unix t, videos/s), as results.json recorded them
RUNS = [
    ("phase1", "2026-12-07T00:02:53+00:00", 16.6, 14.7),
    ("phase2", "2026-12-07T00:03:09+00:00", 17.52, 14.01),
    ("phase3", "2026-12-07T00:03:27+00:00", 23.65, 23.91),
    ("phase4", "2026-12-07T00:03:51+00:00", 22.82, 26.65),
    ("phase5", "2026-12-07T00:04:25+00:00", 25.28, 29.68),
    ("phase6", "2026-12-07T00:04:50+00:00", 24.06, 34.92),
    ("phase7", "2026-12-07T00:05:14+00:00", 24.81, 52.41),
]
CONTROLS = [(1796601786.56, 14.93), (1796601864.43, 27.45), (1796601944.35, 39.08)]


def recorded(controls: list[tuple[float, float]] = CONTROLS) -> dict[str, Any]:
    results = [
        {
            "id": f"test_ladder[{p}]",
            "phase": p,
            "kind": "quick",
            "label": p,
            "status": "passed",
            "started_at": t,
            "wall_s": w,
            "config": {"batch_size": 1, "num_workers": 0},
            "metrics": {"videos_per_s": v},
        }
        for p, t, w, v in RUNS
    ]
    return {"run_id": "r", "results": results, "drift": drift_record([Control(t, v) for t, v in controls])}


def test_section_shows_the_series_and_the_largest_change() -> None:
    text = "\n".join(drift_section(recorded()))
    assert "## Drift of the machine" in text
    assert "14.9 (+0 s), 27.4 (+78 s), 39.1 (+158 s)" in text
    assert max_change([v for _, v in CONTROLS]) == 39.08 / 14.93 - 1
    assert "Largest change between controls: **162 %**" in text
    assert "slowest at +0 s, fastest at +158 s" in text


def test_only_rivals_closer_than_the_drift_around_them_cannot_be_told() -> None:
    lines = pairs_within_drift(recorded())  # type: ignore[arg-type]
    # phase7 (52.41) vs phase4 (26.65): 97 % apart, but the controls around them moved by 162 %
    assert "phase7 52.4 vs phase4 26.6 videos/s: cannot tell: the machine changed by 162 % during these runs" in lines
    # phase5 and phase6 ran between the last two controls (27.5 -> 39.1: 42 %): their gap to phase7 is larger
    assert not any("phase5" in x or "phase6" in x for x in lines)
    # a quiet machine: no pair is within its drift
    quiet = [(t, 30.0 + 0.1 * i) for i, (t, _) in enumerate(CONTROLS)]
    assert pairs_within_drift(recorded(quiet)) == []  # type: ignore[arg-type]


def test_no_controls_no_section() -> None:
    data = recorded()
    del data["drift"]
    assert drift_section(data) == []
    assert "Drift of the machine" not in render_summary(data)  # type: ignore[arg-type]
    assert "Drift of the machine" in render_summary(recorded())  # type: ignore[arg-type]


def test_no_drift_says_so_once_configs_ran() -> None:
    data = {**recorded(), "drift": None, "settings": {"no_drift": True}}
    assert drift_section(data)[:3] == [
        "## Drift of the machine",
        "",
        "Not measured: the session ran with `--no-drift`.",
    ]
    assert drift_section({**data, "results": []}) == []  # nothing ran: nothing to say
    assert drift_section({**data, "settings": {"no_drift": False}}) == []  # not told to skip: no controls, no section
