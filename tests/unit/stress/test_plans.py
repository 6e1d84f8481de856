"""The config sets (quick ladder, sustained matrix, limits worker counts), the distributed epoch size and
the quick phases' measured window: pure functions of the settings."""

from __future__ import annotations

from typing import Any

from ssv2_fixtures.options import OPTIONS, resolve
from ssv2_fixtures.stress.plans import (
    LADDER,
    QUICK_MIN_BATCHES,
    QUICK_MIN_S,
    epoch_limit,
    ladder,
    limits_workers,
    matrix,
    quick_measure,
)


def _settings(**cli: Any):
    repeat = {o.dest for o in OPTIONS if o.repeat}
    return resolve(lambda d: cli.get(d), lambda d: [] if d in repeat else None, None)


def test_ladder_capped_to_four_workers() -> None:
    phases = ladder(max_workers=4)
    assert len(phases) == 9 == len(LADDER)
    assert [p.number for p in phases] == list(range(1, 10))
    assert [p.id for p in phases] == [
        "phase1-bs1-w0",
        "phase2-bs2-w0",
        "phase3-bs4-w2-pf2",
        "phase4-bs8-w2-pf2",
        "phase5-bs8-w4-pf2",
        "phase6-bs16-w4-pf2",
        "phase7-bs16-w4-pf4",
        "phase8-bs16-w4-pf4",
        "phase9-bs16-w4-pf4",
    ]
    assert [p.requested_workers for p in phases] == [w for _, w, _ in LADDER]
    assert [p.duplicate_of for p in phases] == [None] * 7 + [7, 7]
    assert all(p.config.num_workers <= 4 for p in phases)


def test_ladder_uncapped_and_single_core() -> None:
    big = ladder(max_workers=64, sharing_strategy="file_system", seed=9)
    assert all(p.duplicate_of is None for p in big)
    assert big[-1].id == "phase9-bs16-w24-pf4-fs" and big[-1].config.seed == 9
    one = ladder(max_workers=1)
    assert [p.config.num_workers for p in one] == [0, 0, 1, 1, 1, 1, 1, 1, 1]
    assert [p.duplicate_of for p in one] == [None, None, None, None, 4, None, None, 7, 7]
    zero = ladder(max_workers=0)  # every phase single-process, prefetch dropped (torch refuses it)
    assert all(p.config.num_workers == 0 and p.config.prefetch_factor is None for p in zero)
    assert zero[2].id == "phase3-bs4-w0" and zero[3].duplicate_of is None and zero[4].duplicate_of == 4


def test_matrix_dedups_capped_configs() -> None:
    out = matrix([4, 8], [0, 2, 4, 8], [2, 4], max_workers=4)
    cfgs = [c for c, _ in out]
    assert len(cfgs) == len(set(cfgs))
    # Per batch size: w0 (one: prefetch dropped), w2 x 2 pf, w4 x 2 pf; w8 capped onto w4: dropped.
    assert len(out) == 2 * (1 + 2 + 2)
    assert [(c.label, w) for c, w in out[:5]] == [
        ("bs4-w0", 0),
        ("bs4-w2-pf2", 2),
        ("bs4-w2-pf4", 2),
        ("bs4-w4-pf2", 4),
        ("bs4-w4-pf4", 4),
    ]
    assert all(c.shuffle and c.drop_last for c in cfgs)
    capped = matrix([4], [8, 16], [2], max_workers=4, shuffle=False)
    assert [(c.label, w) for c, w in capped] == [("bs4-w4-pf2", 8)]  # first request kept
    assert capped[0][0].shuffle is False


def test_limits_workers_capped_and_unique() -> None:
    assert limits_workers(_settings(workers="0,2,8,24", max_workers="4")) == [0, 2, 4]


def test_epoch_limit_crosses_an_epoch_and_shows_the_tail_rule() -> None:
    assert epoch_limit(4, 2, 2) == 2 * 2 * 2 + 1
    assert epoch_limit(1, 8, 1) == 8  # at least one batch per epoch


def test_quick_window_defaults_and_caps() -> None:
    m = quick_measure(_settings())
    assert m == {
        "warmup_batches": 3,
        "min_batches": QUICK_MIN_BATCHES,
        "max_batches": 1000,
        "max_s": 4.0,
        "target_rel": 0.05,
        "min_s": QUICK_MIN_S,
    }
    small = quick_measure(_settings(quick_batches="3", quick_seconds="1.5"))
    # a smoke run: still something measured after warm-up, and never a minimum above the cap
    assert small["max_batches"] == 3 and small["warmup_batches"] < 3
    assert small["warmup_batches"] + small["min_batches"] <= 3 and small["max_s"] == 1.5
    assert small["min_s"] == 1.5  # never a minimum window above the cap


def test_only_the_first_rung_is_the_decode_rate_run_and_it_is_single_process() -> None:
    from ssv2_fixtures.stress.plans import ladder as _ladder

    marked = [p for p in _ladder(4) if p.decode_rate]
    assert [p.number for p in marked] == [1]
    assert marked[0].config.num_workers == 0 and marked[0].config.batch_size == 1


def test_item_timeout_uses_the_runs_watchdog() -> None:
    # the one watchdog rule (watchdog_for) sizes pytest-timeout, so the watchdog fires first
    from types import SimpleNamespace

    from ssv2_fixtures.options import Settings
    from ssv2_fixtures.stress.plans import _SETUP_MARGIN_S, item_timeout, quick_measure, watchdog_for
    from ssv2_fixtures.stress.plans import ladder as _ladder

    s = Settings(stall_timeout=7)
    assert watchdog_for(s).stall_s == 7.0 and watchdog_for(Settings()).stall_s is None
    phase = _ladder(s.max_workers)[2]
    item = SimpleNamespace(callspec=SimpleNamespace(params={"ladder_phase": phase}))
    # sized from the phase's time window (as the runner does), not from the 1000-batch cap
    want = watchdog_for(s).resolve(phase.config, s.quick_batches, measure=quick_measure(s))["total_s"] + _SETUP_MARGIN_S
    assert item_timeout(item, s) == want
    assert want < watchdog_for(s).resolve(phase.config, s.quick_batches)["total_s"] + _SETUP_MARGIN_S
