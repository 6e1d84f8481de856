"""tune's pick among tied finalists decided on interleaved rounds (stress/tune.py stage 5), on a fake measure
whose machine drifts under the probes: each probe reports the config's true rate times the machine's speed at
that moment on a fake clock. No processes, no real time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ssv2_fixtures.data.loader import LoaderConfig
from ssv2_fixtures.stress.tune import tune
from ssv2_fixtures.stress.tune_model import Probe, Space


@dataclass
class Clock:
    t: float = 0.0

    def __call__(self) -> float:
        return self.t


@dataclass
class DriftingMeasure:
    clock: Clock
    true: Callable[[LoaderConfig], float]
    speed: Callable[[float], float]
    overhead: float = 3.0
    calls: list[tuple[LoaderConfig, float]] = field(default_factory=list)

    def __call__(self, config: LoaderConfig, seconds: float) -> Probe:
        self.calls.append((config, seconds))
        self.clock.t += self.overhead + seconds
        r = self.true(config) * self.speed(self.clock.t - seconds / 2)
        h = 0.04 * r  # ±4 %: w3 and w4 below tie by the tie rule on any one probe
        return Probe(videos_per_s=r, interval=(r - h, r + h), batches=10, seconds=self.overhead + seconds)


def workers_only(ws: tuple[int, ...] = (1, 2, 3, 4)) -> Space:
    return Space(batch_size=8, workers=ws, prefetch=(2,), strategies=("file_descriptor",), persistent=(False,))


def plateau(c: LoaderConfig) -> float:
    # w4 is truly 14 % faster than w3 (more than the tie margin); w1 and w2 far below
    return {1: 20.0, 2: 30.0, 3: 50.0, 4: 57.0}[c.num_workers]


def rising(t: float) -> float:
    return 1.0 + 0.004 * t  # the machine speeds up by 0.4 % of its pace per second: w3, probed after w4, gains


def test_a_truly_faster_finalist_is_the_pick_when_the_rounds_say_so() -> None:
    clock = Clock()
    m = DriftingMeasure(clock, plateau, rising)
    r = tune(workers_only(), m, budget_s=400, clock=clock, confirm=lambda c, s: True)
    rounds = [t for t in r.tried if t.stage == "interleaved"]
    assert [t.config.num_workers for t in rounds][:4] == [4, 3, 3, 4]  # the leader first, every other reversed
    dec = r.interleaved
    # both were in the tie by the tie rule, where the cheaper (w3) would be the pick without the rounds
    assert dec is not None and dec["candidates"] == ["bs8-w4-pf2", "bs8-w3-pf2"] and len(dec["rounds"]) == 4
    assert dec["faster"] == "bs8-w4-pf2"
    assert r.best is not None and r.best.config.num_workers == 4 and r.ties == []
    assert r.record()["interleaved"] == dec


def test_finalists_the_rounds_cannot_tell_apart_go_to_the_cheaper() -> None:
    clock = Clock()
    wobble = [1.06, 0.95, 1.01, 0.97, 1.04, 0.96, 0.93, 1.07]
    m = DriftingMeasure(clock, lambda c: 50.0 if c.num_workers >= 3 else 20.0, lambda t: wobble[len(m.calls) % 8])
    r = tune(workers_only(), m, budget_s=400, clock=clock, confirm=lambda c, s: True)
    dec = r.interleaved
    assert dec is not None and dec["rounds"] and dec["faster"] is None
    assert r.best is not None and r.best.config.num_workers == 3  # the cheaper of the tie
    assert [t.config.num_workers for t in r.ties] == [4]


def test_no_time_for_two_rounds_skips_them_and_says_why() -> None:
    clock = Clock()
    m = DriftingMeasure(clock, lambda c: 50.0 if c.num_workers >= 3 else 20.0, lambda t: 1.0, overhead=6.0)
    r = tune(workers_only(), m, budget_s=60, clock=clock, confirm=lambda c, s: True)
    dec = r.interleaved
    assert dec is not None and dec["candidates"] == ["bs8-w4-pf2", "bs8-w3-pf2"]  # the probes tied w3 and w4
    assert dec["rounds"] == [] and dec["stopped"].startswith("skipped: 2 rounds")
    assert not any(t.stage == "interleaved" for t in r.tried)
    assert r.best is not None and r.best.config.num_workers == 3  # the tie rule's pick, as without the rounds


def test_target_mode_takes_no_rounds() -> None:
    clock = Clock()
    m = DriftingMeasure(clock, plateau, rising)
    r = tune(workers_only(), m, budget_s=400, clock=clock, confirm=lambda c, s: True, target=30.0)
    assert r.interleaved is None and not any(t.stage == "interleaved" for t in r.tried)


def test_the_tune_section_shows_the_rounds_and_the_decision() -> None:
    from ssv2_fixtures.report.tune import tune_section

    clock = Clock()
    m = DriftingMeasure(clock, plateau, rising)
    r = tune(workers_only(), m, budget_s=400, clock=clock, confirm=lambda c, s: True)
    text = "\n".join(tune_section({"tune": [dict(r.record())]}))
    assert "Batch size 8: the finalists' tie re-measured in alternating windows" in text
    assert "| round | bs8-w4-pf2 | bs8-w3-pf2 |" in text and "| 4 | " in text
    assert "Decision: **bs8-w4-pf2 is faster" in text
