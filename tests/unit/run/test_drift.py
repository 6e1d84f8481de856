"""run/drift.py: the drift record, "cannot tell" and the interleaved decision on a synthetic drifting clock."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssv2_fixtures.run.drift import (
    Control,
    around,
    cannot_tell,
    controls_of,
    drift_around,
    drift_record,
    interleaved,
    max_change,
    ratio_interval,
    schedule,
    sequential,
)
from ssv2_fixtures.run.stats import t975

Speed = Callable[[float], float]


def measured(true_rate: float, speed: Speed, t0: float, seconds: float) -> float:
    """What a window of ``seconds`` from ``t0`` reports for a config whose rate on an undisturbed machine is
    ``true_rate``, while the machine runs at ``speed(t)`` of its own pace: items done / seconds."""
    n = 200
    return true_rate * math.fsum(speed(t0 + (i + 0.5) * seconds / n) for i in range(n)) / n


def run_interleaved(
    true: dict[str, float], speed: Speed, rounds: int, window: float, t0: float = 0.0
) -> list[dict[str, float]]:
    out: list[dict[str, float]] = []
    t = t0
    for order in schedule(list(true), rounds):
        r: dict[str, float] = {}
        for name in order:
            r[name] = measured(true[name], speed, t, window)
            t += window
        out.append(r)
    return out


def run_sequential(true: dict[str, float], speed: Speed, window: float, gap: float) -> dict[str, float]:
    return {name: measured(rate, speed, i * (window + gap), window) for i, (name, rate) in enumerate(true.items())}


def rising(t: float) -> float:
    """A machine that gets faster over a minute (0.7 → 1.0 of its pace), then holds."""
    return 0.7 + 0.3 * min(1.0, max(0.0, t / 60.0))


def test_sequential_picks_the_luckier_interleaved_the_faster() -> None:
    true = {"A": 100.0, "B": 80.0}  # A is truly 25 % faster
    seq = run_sequential(true, rising, window=6.0, gap=60.0)  # A ran in the slow start, B in the fast end
    assert sequential(seq) == "B"
    d = interleaved(run_interleaved(true, rising, rounds=6, window=2.0))
    assert d["faster"] == "A" and d["tie"] == ["A"]
    b = d["ratios"]["B"]
    assert b["interval"][1] < 1.0 and b["mean"] == pytest.approx(0.8, abs=0.02)


def test_a_lead_within_the_tie_margin_is_a_tie_the_bare_test_decides_it() -> None:
    """The ladder's tie rule in ratio form: a real 5 % lead, measured without noise, is a tie at the default margin
    (the cheaper config is then recommended) and a decision only for the bare statistical test."""
    true = {"A": 105.0, "B": 100.0}
    rounds = run_interleaved(true, rising, rounds=4, window=2.0)
    d = interleaved(rounds)
    assert d["faster"] is None and sorted(d["tie"]) == ["A", "B"] and d["leader"] == "A"
    assert "within 10%" in d["text"]
    assert interleaved(rounds, margin=0.0)["faster"] == "A"


def sinusoids(parts: Sequence[tuple[float, float, float]]) -> Speed:
    """1 + Σ a·sin(2πt/P + φ): a smooth drift, slow against a window (P ≥ 120 s)."""
    return lambda t: 1.0 + math.fsum(a * math.sin(2 * math.pi * t / p + ph) for a, p, ph in parts)


drifts = st.lists(
    st.tuples(st.floats(0.0, 0.1), st.floats(120.0, 900.0), st.floats(0.0, 2 * math.pi)), min_size=1, max_size=3
)


@settings(max_examples=200, deadline=None)
@given(
    drift=drifts,
    fast=st.floats(5.0, 500.0),
    lead=st.floats(0.15, 1.0),
    fast_first=st.booleans(),
    rounds=st.integers(4, 8),
    window=st.floats(0.5, 2.0),
    t0=st.floats(0.0, 1000.0),
)
def test_interleaved_picks_the_truly_faster_under_any_slow_drift(
    drift: list[tuple[float, float, float]],
    fast: float,
    lead: float,
    fast_first: bool,
    rounds: int,
    window: float,
    t0: float,
) -> None:
    speed = sinusoids(drift)
    pair = [("fast", fast), ("slow", fast / (1 + lead))]
    true = dict(pair if fast_first else pair[::-1])
    d = interleaved(run_interleaved(true, speed, rounds, window, t0))
    assert d["faster"] == "fast"
    assert len(d["rounds"]) == rounds


@settings(max_examples=200, deadline=None)
@given(
    slope=st.floats(-0.005, 0.005), rate=st.floats(5.0, 500.0), rounds=st.sampled_from([4, 6, 8]), t0=st.floats(0, 50)
)
def test_equal_candidates_under_a_steady_trend_tie(slope: float, rate: float, rounds: int, t0: float) -> None:
    """The reversed rounds cancel a steady trend: the same config twice is never named faster."""
    d = interleaved(run_interleaved({"A": rate, "A'": rate}, lambda t: 0.6 + slope * t + 0.3, rounds, 1.0, t0))
    assert d["faster"] is None and sorted(d["tie"]) == ["A", "A'"]


def test_schedule_alternates_direction() -> None:
    assert schedule(["A", "B", "C"], 3) == [["A", "B", "C"], ["C", "B", "A"], ["A", "B", "C"]]


def test_ratio_interval_is_the_t_rule() -> None:
    m, lo, hi = ratio_interval([1.0, 1.2]) or (0, 0, 0)
    assert m == pytest.approx(1.1)
    assert (hi - lo) / 2 == pytest.approx(t975(1) * math.sqrt(0.02) / math.sqrt(2))
    assert ratio_interval([1.0]) is None


def test_one_round_decides_nothing() -> None:
    d = interleaved([{"A": 10.0, "B": 5.0}])
    assert d["faster"] is None and d["tie"] == ["A", "B"] and "at least 2" in d["text"]


def test_three_candidates_tie_set_and_reference() -> None:
    rounds = [{"A": 10.0, "B": 10.2, "C": 7.0}, {"A": 10.1, "B": 9.9, "C": 7.1}, {"A": 9.8, "B": 10.0, "C": 6.9}]
    d = interleaved(rounds)
    assert d["reference"] == "A" and d["ratios"]["A"]["rounds"] == [1.0, 1.0, 1.0]
    assert d["faster"] is None and sorted(d["tie"]) == ["A", "B"] and "C" not in d["tie"]


@given(st.lists(st.floats(0.1, 1e4), min_size=2, max_size=20))
def test_max_change_is_symmetric_and_relative_to_the_smaller(rates: list[float]) -> None:
    m = max_change(rates)
    assert m == pytest.approx(max(rates) / min(rates) - 1)
    assert max_change(rates[::-1]) == m and m >= 0
    assert all(max_change([a, b]) <= m + 1e-12 for a in rates for b in rates)


def test_max_change_edges() -> None:
    assert max_change([]) == 0.0 and max_change([5.0]) == 0.0 and max_change([0.0, 1.0]) == math.inf


def test_drift_record_orders_controls_and_names_the_extremes() -> None:
    rec = drift_record([Control(20.0, 40.0), Control(10.0, 35.0), Control(30.0, 39.9)])
    assert [c["t"] for c in rec["controls"]] == [10.0, 20.0, 30.0]
    assert rec["max_change"] == pytest.approx(40 / 35 - 1)
    assert rec["slowest_t"] == 10.0 and rec["fastest_t"] == 20.0
    assert controls_of(rec) == [Control(10.0, 35.0), Control(20.0, 40.0), Control(30.0, 39.9)]
    assert drift_record([]) == {"controls": [], "max_change": 0.0}
    assert controls_of(None) == [] and controls_of({"controls": [{"t": 1}]}) == []


def test_around_takes_the_inside_and_one_either_side() -> None:
    cs = [Control(t, 1.0 + t) for t in (0.0, 10.0, 20.0, 30.0, 40.0)]
    assert [c.t for c in around(cs, 12.0, 25.0)] == [10.0, 20.0, 30.0]
    assert [c.t for c in around(cs, 45.0, 50.0)] == [40.0]
    assert drift_around(cs, 45.0, 50.0) is None


def test_cannot_tell_when_the_difference_is_smaller_than_the_drift() -> None:
    cs = [Control(0.0, 40.0), Control(30.0, 35.0), Control(60.0, 39.0)]  # 40/35 − 1 = 14 %
    msg = cannot_tell(38.0, (5.0, 11.0), 36.0, (40.0, 46.0), cs)
    assert msg == "cannot tell: the machine changed by 14 % during these runs"
    assert cannot_tell(38.0, (5.0, 11.0), 30.0, (40.0, 46.0), cs) is None  # 27 % > 14 %
    assert cannot_tell(38.0, (5.0, 11.0), 36.0, (40.0, 46.0), cs[:1]) is None  # no drift known
