"""The interval and percentile rules: property tests over synthetic streams at a known rate."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssv2_fixtures.run.stats import MIN_BATCHES, percentile, rate_interval


@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=50), st.floats(0, 100))
def test_percentile_is_numpys_linear_rule(xs, q):
    want = float(np.percentile(xs, q))
    assert abs(percentile(xs, q) - want) <= 1e-9 * (1 + abs(want))


def _stream(rate: float, n: int, bs: int, cv: float, seed: int) -> tuple[list[int], list[float]]:
    rnd = random.Random(seed)
    secs = [max(1e-6, bs / rate * (1 + rnd.gauss(0, cv))) for _ in range(n)]
    return [bs] * n, secs


@settings(max_examples=25, deadline=None)
@given(st.floats(5, 500), st.integers(30, 200), st.sampled_from([1, 4, 8, 16]), st.floats(0.01, 0.3))
def test_interval_covers_the_true_rate_of_a_steady_stream(rate, n, bs, cv):
    # a 95 % interval misses 1 run in 20 by design: the property is its coverage over many runs
    hits = 0
    for seed in range(100):
        items, secs = _stream(rate, n, bs, cv, seed)
        iv = rate_interval(items, secs)
        assert iv is not None and iv.lo <= iv.rate <= iv.hi
        hits += iv.lo <= rate <= iv.hi
    assert hits >= 85  # nominal 95; the ratio estimator's small bias (≈ cv²) and few groups cost a few


@settings(max_examples=30, deadline=None)
@given(st.floats(10, 200), st.integers(0, 1000))
def test_interval_shrinks_with_more_batches(rate, seed):
    # same process, 8× the batches: the half-width shrinks (on average by √8; here: at all, with margin)
    widths = []
    for n in (30, 240):
        ws = [rate_interval(*_stream(rate, n, 8, 0.2, seed * 7 + r)).relative_half_width for r in range(8)]
        widths.append(sum(ws) / len(ws))
    assert widths[1] < widths[0] * 0.7


def test_too_few_batches_give_no_interval():
    assert rate_interval([8] * (MIN_BATCHES - 1), [0.1] * (MIN_BATCHES - 1)) is None
    assert rate_interval([8] * MIN_BATCHES, [0.1] * MIN_BATCHES) is not None


def test_overlap_is_symmetric_and_not_chained():
    from ssv2_fixtures.run.stats import spans_overlap

    a, b, c = (96.0, 104.0), (99.0, 107.0), (105.0, 115.0)
    assert spans_overlap(a, b) and spans_overlap(b, a) and spans_overlap(b, c)
    assert not spans_overlap(a, c) and not spans_overlap(c, a)


def _bursty(rate: float, rounds: int, workers: int, bs: int, cv: float, seed: int) -> tuple[list[int], list[float]]:
    # W workers decode side by side and the loader returns in order: one long wait per round, then
    # W - 1 batches that are already there
    rnd = random.Random(seed)
    secs: list[float] = []
    for _ in range(rounds):
        cycle = workers * bs / rate * max(0.05, 1 + rnd.gauss(0, cv))
        secs += [cycle * 0.97] + [cycle * 0.03 / (workers - 1)] * (workers - 1)
    return [bs] * len(secs), secs


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 8), st.integers(6, 40), st.floats(20, 300), st.integers(0, 1000))
def test_groups_of_whole_worker_rounds_tame_bursty_arrivals(workers, rounds, rate, seed):
    items, secs = _bursty(rate, rounds, workers, 8, 0.05, seed)
    iv = rate_interval(items, secs, round_size=workers)
    assert iv is not None and iv.groups >= 2
    assert iv.relative_half_width < 0.25  # a steady 5 % cycle noise gives a narrow interval


def test_groups_that_cut_rounds_apart_explode_the_spread():
    # what the quick ladder showed before rounds: BS=16 W=4, 28 batches → "81 ± 839 videos/s"
    items, secs = _bursty(80, 7, 4, 16, 0.05, 1)
    cut, whole = rate_interval(items, secs), rate_interval(items, secs, round_size=4)
    assert cut is not None and whole is not None
    assert cut.relative_half_width > 1 and whole.relative_half_width < 0.1


def test_group_length_is_whole_rounds_of_at_least_three():
    from ssv2_fixtures.run.stats import group_length

    assert [group_length(w) for w in (0, 1, 2, 3, 4, 5, 8)] == [3, 3, 4, 3, 4, 5, 8]


def test_node_interval_sums_rates_and_adds_half_widths_in_quadrature():
    from ssv2_fixtures.run.stats import sum_intervals

    lo, hi = sum_intervals([10.0, 20.0], [(7.0, 13.0), (16.0, 24.0)])  # half-widths 3 and 4
    assert (lo, hi) == (25.0, 35.0)  # 30 ± 5
    with pytest.raises(ValueError):
        sum_intervals([1.0], [])


def test_spans_overlap_touching_counts_as_overlap():
    from ssv2_fixtures.run.stats import spans_overlap

    assert spans_overlap((1.0, 2.0), (2.0, 3.0))
    assert not spans_overlap((1.0, 2.0), (2.1, 3.0))


def test_ties_on_overlap_or_within_the_margin_of_the_faster_lower_bound():
    from ssv2_fixtures.run.stats import TIE_MARGIN, ties

    assert ties(100.0, (95.0, 105.0), 80.0, (70.0, 96.0))  # overlap, 20 % apart
    near = 100.0 * (1 - TIE_MARGIN / 2)
    assert ties(100.0, (99.0, 101.0), near, (near - 0.5, near + 0.5))  # clear intervals, closer than the margin
    assert ties(near, (near - 0.5, near + 0.5), 100.0, (99.0, 101.0))  # argument order does not matter
    # the margin is taken from the faster's lower bound: 85 reaches 90 % of 95 but not of 100
    assert ties(100.0, (95.0, 105.0), 85.5, (85.0, 86.0))
    assert not ties(100.0, (99.5, 100.5), 85.5, (85.0, 86.0))
    assert not ties(100.0, (100.0, 100.0), 80.0, (80.0, 80.0))  # points 20 % apart
    assert ties(0.0, (0.0, 0.0), 0.0, (0.0, 0.0))  # two zeros: same span
