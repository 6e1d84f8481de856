"""Leak and degradation verdicts on synthetic time series (noise from hypothesis, within stated bounds).

The noise bounds are chosen so the expected verdict holds for *every* series hypothesis can draw,
including adversarial ones (all noise negative in the first fifth, positive in the last).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssv2_fixtures.run.growth import LEAK_MIN_BYTES, LEAK_MIN_FRACTION
from ssv2_fixtures.stress.verdicts import DEGRADATION_RATIO, degradation, leak

MB = 2**20
GB = 2**30
N = 200  # samples / batches per run
FAST = settings(max_examples=60, deadline=None)


def _noise(bound: float, n: int = N):
    return st.lists(st.floats(min_value=-bound, max_value=bound, allow_nan=False), min_size=n, max_size=n)


# --------------------------------------------------------------------------- leak


@FAST
@given(
    base=st.floats(min_value=0.5 * GB, max_value=8 * GB),
    noise=_noise(32 * MB),
    per_s=st.floats(min_value=4 * MB, max_value=64 * MB),
)
def test_leak_flags_steady_growth(base, noise, per_s):
    # Total growth at least 3x both thresholds whatever the start: the fifths' means are ~70 % of the
    # run apart, so the measured growth clears both even with adversarial +-32 MB noise.
    t = np.linspace(0.0, 100.0, N)
    total = max(per_s * 100.0, 3 * LEAK_MIN_BYTES, 3 * LEAK_MIN_FRACTION * base)
    rss = base + total * t / 100.0 + np.asarray(noise)
    v = leak(t.tolist(), rss.tolist(), batches=N)
    assert v["ok"] is False and v["name"] == "leak"
    assert v["growth_bytes"] > LEAK_MIN_BYTES
    assert v["slope_bytes_per_s"] > 0
    assert "threshold" in v["detail"] and "MiB" in v["detail"]


@FAST
@given(base=st.floats(min_value=0.5 * GB, max_value=8 * GB), noise=_noise(60 * MB))
def test_leak_passes_flat_noisy_series(base, noise):
    t = np.linspace(0.0, 100.0, N)
    rss = base + np.asarray(noise)
    assert leak(t.tolist(), rss.tolist(), batches=N)["ok"] is True


@FAST
@given(
    base=st.floats(min_value=1 * GB, max_value=8 * GB),
    amplitude=st.floats(min_value=16 * MB, max_value=768 * MB),
    period=st.integers(min_value=4, max_value=12),
    phase=st.integers(min_value=0, max_value=11),
    noise=_noise(16 * MB),
)
def test_leak_passes_sawtooth(base, amplitude, period, phase, noise):
    """Workers restarting every epoch: RSS climbs, drops back, climbs... with no net growth.

    Periods here are short against a fifth of the run (~36 samples): the case of short epochs. An
    epoch longer than a fifth of the run puts the two fifths at different points of the tooth, and
    the first-vs-last comparison can then see up to the full amplitude as growth.
    """
    i = np.arange(N)
    t = i * 0.5
    rss = base + amplitude * (((i + phase) % period) / period) + np.asarray(noise)
    assert leak(t.tolist(), rss.tolist(), batches=N)["ok"] is True


def test_leak_growth_below_either_threshold_is_noise():
    t = np.linspace(0, 100, N)
    # +100 MB on 200 MB: 50 % but under 128 MB.
    assert leak(t, 200 * MB + 100 * MB * t / 100, N)["ok"] is True
    # +1 GB on 16 GB: over 128 MB but under 15 %.
    assert leak(t, 16 * GB + 1 * GB * t / 100, N)["ok"] is True
    # +1 GB on 2 GB: both.
    assert leak(t, 2 * GB + 1 * GB * t / 100, N)["ok"] is False


def test_leak_slope_per_100_batches():
    t = np.linspace(0, 100, N)
    v = leak(t, 1 * GB + 10 * MB * t, batches=N)  # 10 MB/s, 100 s, 200 batches
    assert v["slope_bytes_per_s"] == pytest.approx(10 * MB, rel=1e-6)
    assert v["slope_bytes_per_100_batches"] == pytest.approx(10 * MB * 100 / N * 100, rel=1e-6)


@pytest.mark.parametrize("n", [0, 1, 2, 5])
def test_leak_too_few_samples_is_not_judged(n):
    v = leak(list(range(n)), [GB * (k + 1) for k in range(n)], batches=n)
    assert v["ok"] is True and v["judged"] is False and "too few" in v["detail"]


def test_leak_ignores_warm_up():
    # A big start-up ramp in the first 10 % (imports, worker start), flat afterwards.
    t = np.linspace(0, 100, N)
    rss = np.full(N, 3.0 * GB)
    rss[: N // 10] = np.linspace(0.2 * GB, 3.0 * GB, N // 10)
    assert leak(t, rss, N)["ok"] is True


# --------------------------------------------------------------------------- degradation


@FAST
@given(
    wait=st.floats(min_value=0.01, max_value=2.0),
    bs=st.integers(min_value=1, max_value=64),
    noise=_noise(0.15),
    slowdown=st.floats(min_value=2.0, max_value=10.0),
)
def test_degradation_flags_a_slow_last_fifth(wait, bs, noise, slowdown):
    # +-15 % noise: worst case ratio 1.15 / (2 * 0.85) = 0.68 < 0.7.
    waits = wait * (1 + np.asarray(noise))
    waits[-N // 5 :] *= slowdown  # the last fifth at half the speed (or slower)
    v = degradation(waits.tolist(), [bs] * N)
    assert v["ok"] is False and v["name"] == "degradation"
    assert v["ratio"] < DEGRADATION_RATIO
    assert v["last_videos_per_s"] < v["first_videos_per_s"]
    assert f"threshold {DEGRADATION_RATIO}" in v["detail"]


@FAST
@given(wait=st.floats(min_value=0.01, max_value=2.0), bs=st.integers(min_value=1, max_value=64), noise=_noise(0.15))
def test_degradation_passes_a_steady_run(wait, bs, noise):
    # +-15 % noise: worst case ratio 0.85 / 1.15 = 0.74 >= 0.7.
    waits = wait * (1 + np.asarray(noise))
    v = degradation(waits.tolist(), [bs] * N)
    assert v["ok"] is True
    assert v["ratio"] >= DEGRADATION_RATIO
    assert v["first_videos_per_s"] == pytest.approx(bs / wait, rel=0.2)


def test_degradation_exact_numbers():
    waits = [0.1] * 160 + [0.2] * 40
    v = degradation(waits, [8] * 200)
    assert v["first_videos_per_s"] == pytest.approx(80.0)
    assert v["last_videos_per_s"] == pytest.approx(40.0)
    assert v["ratio"] == pytest.approx(0.5) and v["ok"] is False


def test_degradation_one_slow_batch_in_a_long_run_passes():
    waits = [0.1] * N
    waits[-3] = 0.5  # one 5x batch among the ~36 of the last fifth
    assert degradation(waits, [8] * N)["ok"] is True


def test_degradation_slow_warm_up_is_ignored():
    waits = [5.0] * 10 + [0.1] * (N - 10)  # first batches wait for worker start-up
    v = degradation(waits, [8] * N)
    assert v["ok"] is True and v["ratio"] == pytest.approx(1.0)


@pytest.mark.parametrize("waits", [[], [0.1] * 3, [0.0] * N])
def test_degradation_too_few_or_zero_waits_is_not_judged(waits):
    v = degradation(waits, [4] * len(waits))
    assert v["ok"] is True and v["judged"] is False and "too few" in v["detail"]


@FAST
@given(rounds=st.integers(min_value=1, max_value=32), slowdown=st.floats(min_value=2.0, max_value=10.0))
def test_degradation_is_judged_only_with_whole_rounds_of_enough_batches_per_fifth(rounds, slowdown):
    # One batch against one batch (6 batches in all) used to be judged: now a run shorter than
    # fewest_batches is "too few", whatever its waits say, and a run of exactly that length is judged.
    from ssv2_fixtures.stress.verdicts import fewest_batches, fifth_batches

    n = fewest_batches(rounds)
    assert fifth_batches(rounds) >= max(6, rounds)
    short = [0.1] * (n - 1)
    short[-1] *= slowdown * 100  # a collapse the verdict must not claim to see
    v = degradation(short, [8] * len(short), rounds)
    assert v["ok"] is True and not v["judged"] and "too few batches" in v["detail"] and f"at least {n}" in v["detail"]
    long = [0.1] * n
    long[-(n // 5) :] = [0.1 * slowdown] * (n // 5)
    v = degradation(long, [8] * n, rounds)
    assert v["ok"] is False and v.get("judged", True) and v["ratio"] < DEGRADATION_RATIO


def test_series_verdicts_take_the_round_from_the_workers():
    from ssv2_fixtures.stress.verdicts import fewest_batches, series_verdicts

    n = fewest_batches(1)  # enough for W=0, too few for W=24's rounds
    rec = {"config": {"batch_size": 8, "num_workers": 24}, "batch_waits_s": [0.1] * n, "series": {}}
    assert "too few" in series_verdicts(rec)[1]["detail"]
    rec["config"]["num_workers"] = 0
    assert "ratio" in series_verdicts(rec)[1]


def test_degradation_with_a_step_time_is_judged_on_the_loops_time_per_batch():
    from ssv2_fixtures.stress.verdicts import series_verdicts

    # a loader that keeps up with a 0.2 s step: waits of 1 ms, then 4 ms — the loop's rate barely moves
    waits = [2.0] + [0.001] * 40 + [0.004] * 40
    rec = {"config": {"batch_size": 8}, "batch_waits_s": waits, "series": {}}
    on_waits = {v["name"]: v for v in series_verdicts(rec)}["degradation"]
    on_loop = {v["name"]: v for v in series_verdicts({**rec, "step_s": 0.2})}["degradation"]
    assert not on_waits["ok"] and on_loop["ok"] and on_loop["ratio"] > 0.95


def test_degradation_is_judged_on_the_recorded_wall_time_per_batch():
    from ssv2_fixtures.run.record import batch_walls
    from ssv2_fixtures.stress.verdicts import loop_seconds, series_verdicts

    # waits and step steady, but the loop's receipts drift apart: 0.11 s per batch, then 0.5 s in the last
    # fifth (time the loop spent that is neither wait nor step). videos/s is over the receipts, so is the verdict
    n = 80
    waits = [2.0] + [0.01] * (n - 1)
    gaps = [0.11] * (n - n // 5) + [0.5] * (n // 5)
    bt, t = [], 0.0
    for g in gaps:
        t += g
        bt.append(t)
    rec = {"config": {"batch_size": 8}, "batch_waits_s": waits, "step_s": 0.1, "series": {"batch_t": bt}}
    walls = loop_seconds(rec)
    assert walls == batch_walls([{"t": x, "wait_s": w} for x, w in zip(bt, waits)])
    assert walls[0] == 2.0 and walls[-1] == pytest.approx(0.5)
    v = {x["name"]: x for x in series_verdicts(rec)}["degradation"]
    assert v["ok"] is False and v["ratio"] == pytest.approx(0.11 / 0.5)
    # the same waits and step without receipt times (an older record): wait + step, steady
    old = {**rec, "series": {}}
    assert loop_seconds(old) == [w + 0.1 for w in waits]
    assert {x["name"]: x for x in series_verdicts(old)}["degradation"]["ok"] is True
