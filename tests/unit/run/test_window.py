"""The measured window's round rule (NOTE [measured window] in run/loop.py): pure, a given clock."""

from __future__ import annotations

from ssv2_fixtures.run.loop import MeasureSpec, Window
from ssv2_fixtures.run.stats import rate_interval


def _spec(**kw: float) -> MeasureSpec:
    base = {"warmup_batches": 3, "min_batches": 12, "max_batches": 1000, "max_s": 5.0, "target_rel": 0.05, "min_s": 0.0}
    base.update(kw)
    return MeasureSpec(**base)  # type: ignore[typeddict-item]


def _rounds(w: Window, workers: int, period: float, rounds: int, bs: int = 8) -> tuple[str | None, float]:
    """A 4-worker stream: one long wait per round, then W − 1 batches that were ready."""
    now, stopped = 0.0, None
    for _ in range(rounds):
        for j in range(workers):
            wait = period if j == 0 else 0.0
            now += wait
            stopped = w.add(bs, wait, now)
            if stopped:
                return stopped, now
    return stopped, now


def test_warm_up_is_rounded_up_to_whole_rounds():
    assert Window(_spec(warmup_batches=3), opened=0.0, round_size=4).warmup == 4
    assert Window(_spec(warmup_batches=3), opened=0.0, round_size=2).warmup == 4
    assert Window(_spec(warmup_batches=3), opened=0.0, round_size=1).warmup == 3
    assert Window(_spec(warmup_batches=3, max_batches=3), opened=0.0, round_size=4).warmup == 2  # cap - 1


def test_time_stop_waits_for_the_round_to_end():
    w = Window(_spec(max_s=1.0, target_rel=1e-9), opened=0.0, round_size=4)
    stopped, _ = _rounds(w, 4, period=0.3, rounds=50)
    assert stopped == "time"
    assert len(w.videos) % 4 == 0


def test_a_periodic_stream_measures_its_true_rate_whatever_the_cut():
    # 32 videos per 0.4 s round: 80 videos/s exactly, for every window length
    for max_s in (1.0, 1.1, 1.3, 2.05):
        w = Window(_spec(max_s=max_s, target_rel=1e-9), opened=0.0, round_size=4)
        _rounds(w, 4, period=0.4, rounds=100)
        assert abs(w.result("time")["rate"] - 80.0) < 1e-9


def test_the_point_rate_leaves_out_a_partial_oldest_round():
    # 2 leftover batches at the start (one long wait, one short) then 3 whole rounds of 4
    waits = [0.4, 0.0] + [0.4, 0.0, 0.0, 0.0] * 3
    iv = rate_interval([8] * len(waits), waits, round_size=4)
    assert iv is not None and abs(iv.rate - 80.0) < 1e-9


def test_a_steady_stream_converges_only_after_the_minimum_window():
    # a perfectly steady single-process stream: its interval is within target from the first groups,
    # but the window stays open until min_s has passed (the host's drift needs time to average out)
    w = Window(_spec(warmup_batches=0, max_s=100.0, min_s=2.0), opened=0.0, round_size=1)
    now, stopped = 0.0, None
    while stopped is None:
        now += 0.05
        stopped = w.add(4, 0.05, now)
    assert stopped == "converged" and 2.0 <= now < 2.0 + 0.05 + 1e-9


def test_without_a_minimum_window_the_same_stream_stops_at_min_batches():
    w = Window(_spec(warmup_batches=0, max_s=100.0), opened=0.0, round_size=1)
    now, stopped = 0.0, None
    while stopped is None:
        now += 0.05
        stopped = w.add(4, 0.05, now)
    assert stopped == "converged" and now < 2.0  # as soon as min_batches and MIN_GROUPS allow


def test_the_minimum_window_never_holds_back_the_time_or_batches_stop():
    # min_s only delays "converged": the time cap and the batch cap still end the window
    w = Window(_spec(warmup_batches=0, max_s=1.0, min_s=1.0, target_rel=1e-9), opened=0.0, round_size=1)
    now, stopped = 0.0, None
    while stopped is None:
        wait = 0.05 + 0.002 * len(w.videos)  # a drifting stream: never within 1e-9
        now += wait
        stopped = w.add(4, wait, now)
    assert stopped == "time"
    w = Window(_spec(warmup_batches=0, max_batches=20, min_s=5.0), opened=0.0, round_size=1)
    now, stopped = 0.0, None
    while stopped is None:
        now += 0.05
        stopped = w.add(4, 0.05, now)
    assert stopped == "batches" and w.received == 20
