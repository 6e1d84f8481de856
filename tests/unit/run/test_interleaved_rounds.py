"""run/drift.py's interleaved comparison loop (``measure_rounds``/``decide``) on a synthetic drifting clock:
a fake window advances a fake clock and reports the candidate's true rate times the machine's speed then."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ssv2_fixtures.run.drift import Plan, decide, measure_rounds, narrowed, sequential

STARTUP_S = 3.0


class Machine:
    """A clock and a machine whose speed is ``speed(t)``; a window costs a child's start-up plus its seconds."""

    def __init__(self, true: dict[str, float], speed: Callable[[float], float], fail: str | None = None) -> None:
        self.t = 0.0
        self.true, self.speed, self.fail = true, speed, fail
        self.calls: list[tuple[str, float, float]] = []  # (name, seconds, start time)

    def clock(self) -> float:
        return self.t

    def window(self, name: str, seconds: float) -> float | None:
        self.calls.append((name, seconds, self.t))
        self.t += STARTUP_S + seconds
        if name == self.fail:
            return None
        return self.true[name] * self.speed(self.t - seconds / 2)


def rising(t: float) -> float:
    return 1.0 + 0.012 * t  # the machine speeds up by 1.2 % of its pace per second


def test_interleaved_picks_the_truly_faster_where_sequential_picks_the_later() -> None:
    true = {"A": 50.0 * 1.15, "B": 50.0}  # A truly 15 % faster (more than the tie margin)
    seq = Machine(true, rising)
    rates = {"A": seq.window("A", 6.0) or 0.0}  # the ladder: one window each, phases ~20 s apart
    seq.t += 11.0
    rates["B"] = seq.window("B", 6.0) or 0.0
    assert sequential(rates) == "B"  # B ran 20 s later on a machine 24 % faster
    m = Machine(true, rising)
    rec = decide(["A", "B"], m.window, Plan(round_s=2.0, max_rounds=4, budget_s=60.0, window_cost_s=5.0), m.clock)
    assert [c[0] for c in m.calls] == ["A", "B", "B", "A", "A", "B", "B", "A"]  # schedule(): reversed every round
    assert all(c[1] == 2.0 for c in m.calls)
    assert rec["faster"] == "A" and len(rec["rounds"]) == 4
    assert rec["seconds"] == pytest.approx(8 * (STARTUP_S + 2.0))
    assert rec["round_s"] == 2.0 and rec["stopped"] == "4 rounds"


def test_equal_candidates_tie_under_the_same_drift() -> None:
    m = Machine({"A": 40.0, "B": 40.0, "C": 40.0}, rising)
    rec = decide(["A", "B", "C"], m.window, Plan(budget_s=100.0), m.clock)
    assert rec["faster"] is None and sorted(rec["tie"]) == ["A", "B", "C"]


def test_the_budget_bounds_the_rounds_and_skips_when_two_cannot_fit() -> None:
    m = Machine({"A": 40.0, "B": 41.0}, rising)
    rounds, why = measure_rounds(["A", "B"], m.window, Plan(budget_s=19.0, window_cost_s=4.0), m.clock)
    # planned at 8 s a round (2 fit in 19 s); the first took 10 s, so the second would end at 20 s: one round only
    assert len(rounds) == 1 and "next would end past 19 s" in why
    assert m.t <= 19.0 + 1e-9
    m2 = Machine({"A": 40.0, "B": 41.0}, rising)
    rounds, why = measure_rounds(["A", "B"], m2.window, Plan(budget_s=15.0, window_cost_s=5.0), m2.clock)
    assert rounds == [] and why.startswith("skipped: 2 rounds of 2 windows would take about 20 s")
    assert m2.calls == []  # nothing ran
    rec = decide(["A", "B"], m2.window, Plan(budget_s=15.0, window_cost_s=5.0), m2.clock)
    assert rec["faster"] is None and rec["tie"] == ["A", "B"] and rec["text"].startswith("not re-measured (skipped")


def test_a_failed_window_ends_the_comparison_and_drops_its_round() -> None:
    m = Machine({"A": 40.0, "B": 41.0}, rising, fail="B")
    rounds, why = measure_rounds(["A", "B"], m.window, Plan(budget_s=100.0), m.clock)
    assert rounds == [] and why == "stopped after 0 rounds: B's window failed"
    assert [c[0] for c in m.calls] == ["A", "B"]


def test_narrowed_takes_the_named_pick_or_drops_only_the_measured_slower() -> None:
    tie = ["w2", "w3", "w4", "w6"]
    assert narrowed(tie, {"rounds": [{}], "faster": "w4", "candidates": ["w4", "w2"], "tie": ["w4"]}) == ["w4"]
    dec = {"rounds": [{}], "faster": None, "candidates": ["w4", "w2", "w3"], "tie": ["w4", "w3"]}
    assert narrowed(tie, dec) == ["w3", "w4", "w6"]  # w2 measured slower; w6 not re-measured stays
    assert narrowed(tie, {"rounds": [], "candidates": ["w4", "w2"], "tie": ["w4"]}) == tie  # measured nothing
    assert narrowed(tie, None) == tie
    # a config outside the tie that the rounds could not tell from the leader joins it
    assert narrowed(tie, {"rounds": [{}], "faster": None, "candidates": ["w4", "w1"], "tie": ["w4", "w1"]}) == [
        *tie,
        "w1",
    ]
