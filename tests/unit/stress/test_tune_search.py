"""Autotune's search stages (stress/tune_search.py) driven directly, on a fake measure and a fake clock."""

from __future__ import annotations

import pytest
from unit_helpers import FakeClock

from ssv2_fixtures.data.loader import LoaderConfig
from ssv2_fixtures.stress.tune_model import PREDICTED_UNFIT, Probe, Space
from ssv2_fixtures.stress.tune_search import Search, _OutOfTime, short_probe_s


def search(
    workers: range, rate, *, deadline: float = 1e9, fits=lambda c: True
) -> tuple[Search, list[LoaderConfig], FakeClock]:
    clock = FakeClock()
    measured: list[LoaderConfig] = []

    def measure(c: LoaderConfig, seconds: float) -> Probe:
        measured.append(c)
        clock.t += seconds + 1.0
        return Probe(videos_per_s=rate(c.num_workers), seconds=seconds + 1.0)

    s = Search(Space(batch_size=8, workers=tuple(workers)), measure, clock, deadline, fits, lambda c: 0.0, 1.0, 3.0)
    return s, measured, clock


def test_workers_probe_the_grid_then_bisect_next_to_the_fastest() -> None:
    # peak at 6 workers; of the grid (1, 2, 4, 8, 12) 8 is fastest, so 6 and 10 come next, then 5 and 7 beside 6
    s, measured, _ = search(range(1, 13), lambda w: 100.0 - (w - 6) ** 2 + 0.1 * w)
    found = s.workers()
    assert [c.num_workers for c in measured] == [1, 2, 4, 8, 12, 6, 10, 5, 7]
    assert max(found, key=lambda e: e.rate).config.num_workers == 6


def test_a_probe_past_the_deadline_is_not_started_unless_forced() -> None:
    s, measured, clock = search(range(1, 5), lambda w: 10.0 * w, deadline=5.0)
    clock.t = 2.0  # 3 s of measuring plus 1 s of start-up would end at 6 s
    with pytest.raises(_OutOfTime):
        s.probe(s.start(1), 3.0, "workers")
    assert s.ran_out and measured == []
    e = s.probe(s.start(1), 3.0, "workers", force=True)
    assert e is not None and e.rate == 10.0 and len(measured) == 1 and [t.stage for t in s.tried] == ["workers"]


def test_a_config_predicted_unfit_is_recorded_not_run() -> None:
    s, measured, _ = search(range(1, 5), lambda w: 10.0 * w, fits=lambda c: c.num_workers < 4)
    assert s.probe(s.space.config(4), 3.0, "workers") is None
    assert measured == [] and s.failed[s.space.config(4)] == PREDICTED_UNFIT
    assert [t.probe.kind for t in s.tried] == [PREDICTED_UNFIT]


def test_the_short_probe_is_held_between_2_and_20_seconds() -> None:
    sp = Space(batch_size=8, workers=tuple(range(1, 9)))
    assert short_probe_s(sp, 1.0, 8.0) == 2.0 and short_probe_s(sp, 100_000.0, 8.0) == 20.0
    assert 2.0 < short_probe_s(sp, 600.0, 8.0) < 20.0
