"""Autotune's vocabulary: the cost order and the tie pick (pure)."""

from __future__ import annotations

from ssv2_fixtures.data.loader import LoaderConfig
from ssv2_fixtures.stress.tune_model import Estimate, cost_key, tie_pick


def test_cost_key_orders_workers_then_prefetch_then_shm():
    a = LoaderConfig(batch_size=8, num_workers=2, prefetch_factor=8)
    b = LoaderConfig(batch_size=8, num_workers=3, prefetch_factor=1)
    c = LoaderConfig(batch_size=8, num_workers=2, prefetch_factor=2)
    assert sorted([a, b, c], key=cost_key) == [c, a, b]


def _est(workers: int, rate: float, half: float) -> Estimate:
    cfg = LoaderConfig(batch_size=8, num_workers=workers, prefetch_factor=2)
    return Estimate(cfg, rate, rate - half, rate + half, seconds=3.0)


def test_tie_pick_takes_the_cheapest_that_ties_with_the_fastest():
    fast, near, far = _est(4, 100.0, 2.0), _est(2, 95.0, 1.0), _est(1, 60.0, 1.0)
    pick, group = tie_pick([far, fast, near])
    assert pick is near and set(map(id, group)) == {id(fast), id(near)}
    pick, group = tie_pick([far, fast])
    assert pick is fast and group == [fast]
