"""stress/drift.py's interleaved comparison after the quick ladder: which configs it re-measures (the tie rule
over the recorded phases), what it runs for each window, its time bound, and what results.json gets. The isolated
run is replaced by a recorder."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from ssv2_fixtures.options import Settings
from ssv2_fixtures.run.schema import RunRecord
from ssv2_fixtures.stress import drift
from ssv2_fixtures.stress.campaign import Stress
from ssv2_fixtures.stress.plans import QUICK_WARMUP, ladder
from ssv2_fixtures.stress.session import StressSession


def rec(w: int, v: float, iv: tuple[float, float] | None = None, **kw: Any) -> RunRecord:
    r: dict[str, Any] = {
        "kind": "quick",
        "phase": f"phase-w{w}",
        "status": "passed",
        "config": {"batch_size": 8, "num_workers": w},
        "wall_s": 20.0,
        "metrics": {"videos_per_s": v, "loop_s": 17.0, **({"videos_per_s_interval": list(iv)} if iv else {})},
    }
    r.update(kw)
    return r  # type: ignore[return-value]


def test_tie_set_is_the_fastest_then_its_ties_cheapest_first_at_most_three() -> None:
    results = [
        rec(1, 20.0, (19.0, 21.0)),  # far below: no tie
        rec(2, 46.0, (44.0, 48.0)),  # reaches 90 % of the fastest's lower bound (0.9 × 50 = 45)
        rec(3, 49.0, (47.0, 51.0)),  # overlaps
        rec(4, 52.0, (50.0, 54.0)),  # the fastest
        rec(6, 51.0, (49.5, 52.5)),  # overlaps, but the most workers: cut by the cap
        rec(8, 60.0, status="failed"),
        rec(5, 70.0, kind="sustained"),
        rec(7, 65.0, budget={"fits": False}),
    ]
    got = drift.tie_set(results)
    assert [c.label for c in got] == ["bs8-w4-pf2", "bs8-w2-pf2", "bs8-w3-pf2"]
    assert got[0].startup_s == pytest.approx(3.0)  # wall_s - loop_s
    assert [c.label for c in drift.tie_set(results, cap=5)][3:] == ["bs8-w6-pf2"]
    assert drift.tie_set([rec(1, 20.0, (19.0, 21.0)), rec(4, 52.0, (50.0, 54.0))]) == []  # no tie: nothing to do


def _stress(tmp_path: Path) -> tuple[StressSession, Stress]:
    session = StressSession(replace(Settings(), reports=tmp_path / "reports"))
    return session, Stress(session, {"root": "x"}, "t")  # type: ignore[typeddict-item]


Window = tuple[str, int, float, int]  # (name, workers, seconds, warm-up batches)


def recorder(calls: list[Window], rate: Any) -> Any:
    def window(stress: Stress, config: Any, seconds: float, name: str, warmup: int = 2) -> Any:
        calls.append((name, config.num_workers, seconds, warmup))
        v = rate(config.num_workers, len(calls))
        return SimpleNamespace(passed=True, metrics={"videos_per_s": v, "wait_fraction": 1.0})

    return window


@pytest.fixture
def fresh_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison with a fresh child per window (the path where paused queues would not fit together)."""
    monkeypatch.setattr(drift, "paused_fit", lambda stress, cands: False)


@pytest.mark.usefixtures("fresh_windows")
def test_finish_re_measures_the_tie_in_alternating_windows_then_takes_the_last_control(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Window] = []
    truth = {2: 40.0, 4: 48.0}  # w4 truly 20 % faster; the machine speeds up 1 % run after run
    monkeypatch.setattr(drift, "window", recorder(calls, lambda w, n: truth.get(w, 10.0) * (1 + 0.01 * n)))
    session, stress = _stress(tmp_path)
    phase1 = ladder(4)[0]
    session.results += [
        {"phase": "phase1", "kind": "quick", "config": phase1.config.to_dict()},  # type: ignore[typeddict-item]
        rec(2, 41.0, (39.0, 43.0)),
        rec(4, 43.0, (41.0, 45.0)),
    ]
    drift.after_phase(
        stress, phase1, SimpleNamespace(passed=True, metrics={"videos_per_s": 9.0, "wait_fraction": 1.0, "loop_s": 6.0})
    )
    session.finish()
    assert calls[-1] == ("drift-control-1", 0, drift.CONTROL_S, 2)  # after the comparison: it brackets its windows
    windows = calls[:-1]
    assert [w for _, w, _, _ in windows] == [4, 2, 2, 4, 4, 2, 2, 4]  # fastest first, every other round reversed
    assert all(secs == drift.ROUND_S and warm == QUICK_WARMUP for _, _, secs, warm in windows)
    assert [n for n, *_ in windows][:2] == ["interleaved-1-bs8-w4-pf2", "interleaved-2-bs8-w2-pf2"]
    out = json.loads((session.run_dir / "results.json").read_text())["interleaved"]
    assert out["candidates"] == ["bs8-w4-pf2", "bs8-w2-pf2"] and len(out["rounds"]) == 4
    assert out["faster"] == "bs8-w4-pf2"
    assert out["ratios"]["bs8-w2-pf2"]["interval"][1] < 1.0 and out["windows"] == "fresh"
    assert len(json.loads((session.run_dir / "results.json").read_text())["drift"]["controls"]) == 2


class StandInPaused:
    """run/paused.PausedRuns' interface over a fake machine (the real children: tests/unit/run/test_paused.py):
    each candidate "starts" once, then every window reports its true rate times a pace that rises 1 % a window."""

    truth = {2: 40.0, 4: 48.0}
    log: list[tuple[str, str]] = []
    fail_start: str | None = None

    def __init__(self, requests: dict[str, Any]) -> None:
        self.requests = requests
        self.started: list[str] = []

    def __enter__(self) -> StandInPaused:
        for name, req in self.requests.items():
            StandInPaused.log.append(("start", req.name))
            assert (
                req.hold is False
                and req.measure["max_s"] == drift.PAUSED_CHILD_S
                and req.measure["warmup_batches"] == 1
            )
            if name != StandInPaused.fail_start:
                self.started.append(name)
        return self

    def __exit__(self, *exc: object) -> None:
        StandInPaused.log.append(("end", ""))

    def window(self, name: str, seconds: float) -> float:
        StandInPaused.log.append(("window", name))
        assert seconds == drift.ROUND_S
        n = sum(1 for k, _ in StandInPaused.log if k == "window")
        return self.truth[self.requests[name].config.num_workers] * (1 + 0.01 * n)


@pytest.fixture
def paused(monkeypatch: pytest.MonkeyPatch) -> type[StandInPaused]:
    StandInPaused.log = []
    StandInPaused.fail_start = None
    monkeypatch.setattr(drift, "PausedRuns", StandInPaused)
    monkeypatch.setattr(drift, "paused_fit", lambda stress, cands: True)
    return StandInPaused


def test_paused_children_start_once_each_then_alternate(tmp_path: Path, paused: type[StandInPaused]) -> None:
    session, stress = _stress(tmp_path)
    session.results += [rec(2, 41.0, (39.0, 43.0)), rec(4, 43.0, (41.0, 45.0))]
    dec = drift.interleave(stress)
    assert dec is not None and dec["windows"] == "paused" and "startup_s" in dec
    starts = [n for k, n in paused.log if k == "start"]
    assert starts == ["interleaved-bs8-w4-pf2", "interleaved-bs8-w2-pf2"]  # once each, the fastest first
    windows = [n for k, n in paused.log if k == "window"]
    assert windows == ["bs8-w4-pf2", "bs8-w2-pf2", "bs8-w2-pf2", "bs8-w4-pf2"] * 2  # 4 rounds, every other reversed
    assert paused.log[-1] == ("end", "")
    assert dec["faster"] == "bs8-w4-pf2" and len(dec["rounds"]) == 4
    assert session.interleaved == dec


def test_paused_a_candidate_that_does_not_start_measures_nothing(tmp_path: Path, paused: type[StandInPaused]) -> None:
    paused.fail_start = "bs8-w2-pf2"
    session, stress = _stress(tmp_path)
    session.results += [rec(2, 41.0, (39.0, 43.0)), rec(4, 43.0, (41.0, 45.0))]
    dec = drift.interleave(stress)
    assert dec is not None and dec["rounds"] == [] and dec["faster"] is None
    assert dec["text"] == "not re-measured (bs8-w2-pf2 did not start)"
    assert [k for k, _ in paused.log if k == "window"] == []


def test_paused_skips_when_the_start_ups_and_three_rounds_do_not_fit(
    tmp_path: Path, paused: type[StandInPaused], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        drift, "session_elapsed", lambda s, now: 100.0
    )  # 12 s left: 2 × 3 s + 3 × 2 × (1 s + ~0.5 s) do not
    session, stress = _stress(tmp_path)
    session.results += [rec(2, 41.0, (39.0, 43.0)), rec(4, 43.0, (41.0, 45.0))]
    dec = drift.interleave(stress)
    assert dec is not None and paused.log == [] and dec["rounds"] == []
    assert dec["stopped"].startswith("skipped: 2 start-ups and 3 rounds of 2 windows of 1 s would take about 15 s")


@pytest.mark.usefixtures("fresh_windows")
def test_no_time_left_in_the_two_minutes_skips_it_and_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Window] = []
    monkeypatch.setattr(drift, "window", recorder(calls, lambda w, n: 9.0))
    monkeypatch.setattr(drift, "session_elapsed", lambda s, now: 110.0)  # the ladder took 110 s of 120
    session, stress = _stress(tmp_path)
    session.results += [rec(2, 41.0, (39.0, 43.0)), rec(4, 43.0, (41.0, 45.0))]
    dec = drift.interleave(stress)
    assert calls == [] and dec is not None
    assert dec["rounds"] == [] and dec["stopped"].startswith("skipped: 3 rounds of 2 windows")
    assert "more than the 2 s left" in dec["stopped"]
    assert session.interleaved == dec


def test_the_plan_takes_the_phases_start_up_and_the_time_left() -> None:
    cands = drift.tie_set([rec(2, 41.0, (39.0, 43.0)), rec(4, 43.0, (41.0, 45.0))])
    p = drift.plan_for(cands, left_s=100.0)
    assert p.window_cost_s == pytest.approx(3.0 + drift.ROUND_S) and p.budget_s == drift.INTERLEAVED_MAX_S
    assert drift.plan_for(cands, left_s=7.0).budget_s == 7.0 and p.min_rounds == drift.MIN_ROUNDS
    assert drift.plan_for(cands, left_s=-3.0).budget_s == 0.0


def test_sustained_validate_and_tune_take_a_control_per_group_and_one_at_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Window] = []
    monkeypatch.setattr(drift, "window", recorder(calls, lambda w, n: 10.0 + n))
    session, stress = _stress(tmp_path)
    drift.group_control(stress)  # before the first group: the series' start, arms the end
    drift.group_control(stress)  # between groups
    assert [n for n, *_ in calls] == ["drift-control-0", "drift-control-1"]
    assert all((w, secs) == (0, drift.CONTROL_S) for _, w, secs, _ in calls)  # the reference: BS=1 W=0
    # a quick ladder in the same session adds phase 1's rate and the interleaved hook, not a second end control
    phase1 = ladder(4)[0]
    drift.after_phase(stress, phase1, SimpleNamespace(passed=True, metrics={"videos_per_s": 9.0, "wait_fraction": 1.0}))
    session.finish()
    assert [n for n, *_ in calls] == ["drift-control-0", "drift-control-1", "drift-control-3"]
    rec = json.loads((session.run_dir / "results.json").read_text())
    assert [c["videos_per_s"] for c in rec["drift"]["controls"]] == [11.0, 12.0, 9.0, 13.0]
    assert "interleaved" not in rec  # the ladder had no tie: nothing was re-measured


def test_a_failed_first_control_arms_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(drift, "window", lambda *a, **k: SimpleNamespace(passed=False, metrics={}))
    session, stress = _stress(tmp_path)
    drift.group_control(stress)
    assert session.drift is None and session.finish_hooks == []


def test_three_candidates_shrink_to_what_three_rounds_fit(tmp_path: Path) -> None:
    cands = drift.tie_set([rec(2, 46.0, (44.0, 48.0)), rec(3, 49.0, (47.0, 51.0)), rec(4, 52.0, (50.0, 54.0))])
    assert len(cands) == 3
    seen: list[str] = []

    def window_of(c: drift.Candidate, secs: float) -> float:
        seen.append(c.label)
        return 40.0

    # 3 rounds × 3 windows × 5 s = 45 s do not fit in 30 s; 3 rounds × 2 windows do
    dec = drift.compare(cands, window_of, left_s=100.0)
    assert dec["candidates"] == ["bs8-w4-pf2", "bs8-w2-pf2"] and set(seen) == {"bs8-w4-pf2", "bs8-w2-pf2"}
    assert dec["stopped"].endswith("not re-measured for time: bs8-w3-pf2")


def test_the_7_phase_ladder_of_2_cores_pays_for_the_end_control_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Window] = []
    monkeypatch.setattr(drift, "window", recorder(calls, lambda w, n: 10.0))
    session = StressSession(replace(Settings(), reports=tmp_path / "reports", max_workers=4))
    stress = Stress(session, {"root": "x"}, "t")  # type: ignore[typeddict-item]
    phases = [p for p in ladder(4) if p.duplicate_of is None]
    assert len(phases) == 7
    for p in phases:
        r = SimpleNamespace(passed=True, metrics={"videos_per_s": 9.0, "wait_fraction": 1.0, "loop_s": 6.0})
        drift.after_phase(stress, p, r)
    assert calls == []  # phase 4 is followed by 3 phases: the end control is as near
    session.finish()
    assert [n for n, *_ in calls] == ["drift-control-1"]


def test_the_end_reserve_is_phase_1s_overhead_a_control_and_the_report() -> None:
    phase1 = {"phase": "phase1", "kind": "quick", "status": "passed", "wall_s": 8.5, "metrics": {"loop_s": 6.0}}
    assert drift.end_reserve_s([phase1]) == pytest.approx(2.5 + drift.CONTROL_S + drift.REPORT_S)  # type: ignore[list-item]
    assert drift.end_reserve_s([]) == drift.END_RESERVE_S


def test_a_paused_window_costs_its_round_the_opening_batch_and_half_a_worker_round() -> None:
    r = rec(4, 40.0, (38.0, 42.0))
    r["metrics"]["startup_s"] = 2.5  # type: ignore[typeddict-unknown-key]
    (c,) = [x for x in drift.tie_set([r, rec(2, 39.0, (37.0, 41.0))]) if x.config.num_workers == 4]
    assert c.first_batch_s == 2.5 and c.batch_s == pytest.approx(8 / 40.0)
    assert c.paused_extra_s == pytest.approx(3 * 0.2)


def test_the_tie_is_ordered_as_the_recommendation_orders_it_less_shared_memory_first() -> None:
    """bs4-w2 and bs8-w2 share workers and prefetch: the tie rule recommends the one holding less /dev/shm (bs4),
    so that is the cheap candidate re-measured against the fastest, even where bs8 measured faster."""
    from ssv2_fixtures.report.model import Run
    from ssv2_fixtures.report.tie import candidate, pick

    bs4 = rec(2, 60.0, (57.0, 63.0), config={"batch_size": 4, "num_workers": 2}, budget={"shm_bytes": 4e7})
    bs8 = rec(2, 62.0, (59.0, 65.0), budget={"shm_bytes": 8e7})
    w4 = rec(4, 64.0, (61.0, 67.0), budget={"shm_bytes": 1.6e8})
    for r, label in ((bs4, "bs4-w2-pf2"), (bs8, "bs8-w2-pf2"), (w4, "bs8-w4-pf2")):
        r["label"] = label  # type: ignore[typeddict-unknown-key]
    got = drift.tie_set([bs8, bs4, w4])
    assert [c.label for c in got] == ["bs8-w4-pf2", "bs4-w2-pf2", "bs8-w2-pf2"]
    recommended = pick([candidate(Run(r)) for r in (bs8, bs4, w4)]).best.label
    assert recommended == got[1].label


def test_a_smoke_run_does_not_re_measure_its_tie(tmp_path: Path, paused: type[StandInPaused]) -> None:
    session = StressSession(replace(Settings(), reports=tmp_path / "reports", quick_batches=3))
    stress = Stress(session, {"root": "x"}, "t")  # type: ignore[typeddict-item]
    session.results += [rec(2, 41.0, (39.0, 43.0)), rec(4, 43.0, (41.0, 45.0))]
    dec = drift.interleave(stress)
    assert dec is not None and dec["rounds"] == [] and paused.log == []
    assert dec["stopped"] == "smoke run: --quick-batches 3 leaves the phases no measured window"


def test_a_tight_budget_shortens_the_windows_down_to_the_minimum(
    tmp_path: Path, paused: type[StandInPaused], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[float] = []
    real = StandInPaused.window

    def window(self: StandInPaused, name: str, seconds: float) -> float:
        seen.append(seconds)
        return real(self, name, drift.ROUND_S)

    monkeypatch.setattr(StandInPaused, "window", window)
    monkeypatch.setattr(drift, "session_elapsed", lambda s, now: 95.0)  # 17 s left
    session, stress = _stress(tmp_path)
    session.results += [rec(2, 41.0, (39.0, 43.0)), rec(4, 43.0, (41.0, 45.0))]
    dec = drift.interleave(stress)
    assert dec is not None and len(dec["rounds"]) >= drift.MIN_ROUNDS
    assert drift.ROUND_MIN_S <= seen[0] < drift.ROUND_S and set(seen) == {seen[0]}
    assert dec["round_s"] == pytest.approx(seen[0], abs=0.01)


def test_a_config_the_drift_could_have_slowed_out_of_the_tie_is_re_measured() -> None:
    """w2 read 40 against the fastest's 52 [50, 54]: outside the tie (40 < 0.9 × 50), inside it had its window run
    15 % faster; w1 at 30 is out either way."""
    results = [rec(1, 30.0, (29.0, 31.0)), rec(2, 40.0, (39.0, 41.0)), rec(4, 52.0, (50.0, 54.0))]
    assert drift.tie_set(results) == []
    assert [c.label for c in drift.tie_set(results, allowance=drift.DRIFT_ALLOWANCE)] == ["bs8-w4-pf2", "bs8-w2-pf2"]


def test_the_budget_clock_starts_with_the_stress_part_of_the_session(tmp_path: Path) -> None:
    """A plain ``pytest`` runs the unit tests first: the quick session's 2 minutes start at its first stress test."""
    session, _ = _stress(tmp_path)
    session.flush()
    created = drift.session_elapsed(session, 1e12)
    session.stress_started = 1e12 - 30.0
    assert drift.session_elapsed(session, 1e12) == pytest.approx(30.0) and created > 30.0
