"""The autotune's adapter (:mod:`ssv2_fixtures.stress.tune_run`) over a fake ``Stress`` whose runs are
stored records: what a probe and a confirmation make of a run, and that a slow, noisy machine (a
confirmation judged degraded, a budget that runs out after the first probe, failing probes) still gives
a valid record with a named failure. No processes: the real runs are in ``test_tune.py``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from unit_helpers import FakeClock

from ssv2_fixtures.data.loader import LoaderConfig
from ssv2_fixtures.run.runner import RunResult
from ssv2_fixtures.stress.tune import bound_s, tune, tune_batch_sizes
from ssv2_fixtures.stress.tune_model import PREDICTED_UNFIT, RAN_OUT, TUNE_KEYS, Space
from ssv2_fixtures.stress.tune_run import (
    CONFIRM_BATCHES,
    MIN_BATCHES,
    RunConfirm,
    RunMeasure,
    probe_line,
    probe_of,
    tuned_toml,
)
from ssv2_fixtures.stress.verdicts import decide


def record(
    config: LoaderConfig, waits: list[float], *, kind: str | None = None, interval: list[float] | None = None
) -> dict[str, Any]:
    """A run record as the runner writes it (the fields the adapter reads)."""
    bs = config.batch_size
    steady = waits[1:]
    rate = bs * len(steady) / sum(steady) if steady and kind is None else None
    metrics: dict[str, Any] = {"batches": len(waits)}
    if rate is not None:
        metrics["videos_per_s"] = rate
    if interval is not None:
        metrics["videos_per_s_interval"] = interval
    return {
        "status": "passed" if kind is None else "failed",
        "label": config.label,
        "config": config.to_dict(),
        "metrics": metrics,
        "wall_s": 5.0 + sum(waits),
        "batch_waits_s": waits,
        "series": {},
        "verdicts": [],
        "outcome": None
        if kind is None
        else {"kind": kind, "batch": len(waits), "message": f"{kind} here", "remedy": "a remedy"},
    }


@dataclass
class FakeStress:
    """``Stress.run`` over a table: ``waits(config, batches, phase)`` gives the run's per-batch waits or a
    failure kind; the clock advances by the run's wall time."""

    clock: FakeClock
    waits: Callable[[LoaderConfig, int, str], list[float] | str]
    decode_rate: float | None = 40.0
    settings: Any = field(default_factory=lambda: SimpleNamespace(step_time=0.0))
    runs: list[tuple[LoaderConfig, int, str]] = field(default_factory=list)
    walls: list[float] = field(default_factory=list)  # each run's wall time, as runs
    recorded: list[dict[str, Any]] = field(default_factory=list)

    def decode_limit(self, config: LoaderConfig, *, probe: bool) -> float | None:
        return self.decode_rate * max(config.num_workers, 1) if self.decode_rate else None

    def run(
        self,
        config: LoaderConfig,
        batches: int,
        *,
        kind: str,
        phase: str | None = None,
        train: bool = False,
        checks: Any = (),
        **kw: Any,
    ) -> RunResult:
        assert kind == "tune" and train
        self.runs.append((config, batches, phase or ""))
        w = self.waits(config, batches, phase or "")
        rec = record(config, [0.5] * 3, kind=w) if isinstance(w, str) else record(config, w)
        rec["step_s"] = float(self.settings.step_time or 0.0)  # the runner records --step-time
        rec["wall_s"] += rec["step_s"] * len(rec["batch_waits_s"])  # ... and sleeps it after each batch
        self.clock.t += rec["wall_s"]
        self.walls.append(rec["wall_s"])
        result = RunResult(rec)  # type: ignore[arg-type]
        rec["verdicts"] = [v for check in checks for v in check(result)]  # as Stress.run's stamp does
        rec["status"] = decide(rec["status"], rec["verdicts"])
        return result

    def record(self, result: RunResult) -> None:
        self.recorded.append(result.record)  # type: ignore[arg-type]


def steady(config: LoaderConfig, batches: int, phase: str = "") -> list[float]:
    return [2.0] + [config.batch_size / (20.0 * config.num_workers)] * (batches - 1)


def slowing(config: LoaderConfig, batches: int, phase: str = "") -> list[float]:
    """A run that loses three quarters of its rate half-way (what the degradation verdict catches)."""
    w = steady(config, batches)
    return w[: batches // 2] + [x * 4 for x in w[batches // 2 :]]


def cfg(w: int = 2, pf: int = 2) -> LoaderConfig:
    return LoaderConfig(batch_size=8, num_workers=w, prefetch_factor=pf, shuffle=True, drop_last=True)


# --- probe_of -------------------------------------------------------------------------------------


def test_probe_takes_the_records_rate_and_interval():
    c = cfg(2)
    p = probe_of(RunResult(record(c, steady(c, 20), interval=[35.0, 45.0])))  # type: ignore[arg-type]
    assert p.passed and p.interval == (35.0, 45.0) and p.batches == 20 and p.seconds > 0
    assert p.videos_per_s == pytest.approx(40.0)  # 20 videos/s per worker
    short = probe_of(RunResult(record(c, [2.0, 0.1, 0.1])))  # type: ignore[arg-type]
    assert short.passed and short.interval is None  # the writer had too few batches for one: a rate only


def test_failed_or_rateless_run_is_a_probe_with_a_kind():
    c = cfg(2)
    p = probe_of(RunResult(record(c, [0.5] * 3, kind="shm_exhausted")))  # type: ignore[arg-type]
    assert not p.passed and p.kind == "shm_exhausted" and p.batches == 3
    rec = record(c, steady(c, 4))
    del rec["metrics"]["videos_per_s"]
    assert probe_of(RunResult(rec)).kind == "no_rate"  # type: ignore[arg-type]


# --- measure and confirm --------------------------------------------------------------------------


def test_measure_turns_seconds_into_batches_from_the_best_rate_guess():
    clock = FakeClock()
    st = FakeStress(clock, lambda c, n, ph: steady(c, n))
    m = RunMeasure(st)  # type: ignore[arg-type]
    assert m.batches(cfg(2), 10.0) == 1 + 10 * 64 // 8  # no neighbour yet: 0.8 × (40 × 2) videos/s
    assert m.batches(cfg(2), 0.01) == MIN_BATCHES
    m(cfg(2), 4.0)
    assert m.rates[(8, 2)] == pytest.approx(40.0)  # measured: 20 videos/s per worker
    assert m.batches(cfg(3), 10.0) == 1 + 10 * 40 // 8  # the measured neighbour, not the decode limit
    st.settings.step_time = 0.5  # slept after each batch, on top of the loader's wait
    assert m.batches(cfg(3), 10.0) == 1 + math.ceil(10 / (8 / 40 + 0.5))
    st.decode_rate = None
    assert RunMeasure(st).batches(cfg(2), 10.0) == 1 + math.ceil(10 / 0.5)  # type: ignore[arg-type]
    st.settings.step_time = 0.0
    assert RunMeasure(st).batches(cfg(2), 10.0) == MIN_BATCHES  # type: ignore[arg-type]


def test_confirmation_judged_degraded_fails_with_the_verdict_and_is_recorded():
    clock = FakeClock()
    st = FakeStress(clock, lambda c, n, ph: slowing(c, n))
    res = RunConfirm(st, RunMeasure(st))(cfg(2), 60.0)  # type: ignore[arg-type]
    assert not res.ok and res.kind == "degradation" and "ratio" in res.detail
    (rec,) = st.recorded
    assert rec["status"] == "failed" and any(v["name"] == "degradation" and not v["ok"] for v in rec["verdicts"])
    st.waits = lambda c, n, ph: steady(c, n)
    good = RunConfirm(st, RunMeasure(st))(cfg(2), 60.0)  # type: ignore[arg-type]
    assert good.ok and good.kind is None and good.videos_per_s == pytest.approx(40.0)
    st.waits = lambda c, n, ph: "worker_killed"
    bad = RunConfirm(st, RunMeasure(st))(cfg(2), 60.0)  # type: ignore[arg-type]
    assert not bad.ok and bad.kind == "worker_killed" and "worker_killed" in bad.detail


def test_with_a_step_time_the_confirmation_judges_the_loops_throughput():
    """A loader that keeps up with a 0.2 s step: its waits grow from 1 to 4 ms, which is no degradation of
    the training loop (0.201 → 0.204 s per batch); judged on the waits alone it would be."""
    clock = FakeClock()

    def waits(c: LoaderConfig, n: int, ph: str) -> list[float]:
        return [2.0] + [0.001] * (n // 2) + [0.004] * (n - 1 - n // 2)

    st = FakeStress(clock, waits)
    st.settings.step_time = 0.2
    assert RunConfirm(st, RunMeasure(st))(cfg(2), 60.0).ok  # type: ignore[arg-type]
    st.settings.step_time = 0.0
    res = RunConfirm(st, RunMeasure(st))(cfg(2), 60.0)  # type: ignore[arg-type]
    assert not res.ok and res.kind == "degradation"
    st.settings.step_time = 0.2  # a loader that falls far behind the step still fails
    st.waits = lambda c, n, ph: [2.0] + [0.001] * (n // 2) + [1.0] * (n - 1 - n // 2)
    res = RunConfirm(st, RunMeasure(st))(cfg(2), 60.0)  # type: ignore[arg-type]
    assert not res.ok and res.kind == "degradation"


def test_confirmation_fits_its_time_in_batches_or_runs_nothing():
    clock = FakeClock()
    st = FakeStress(clock, lambda c, n, ph: steady(c, n))
    conf = RunConfirm(st, RunMeasure(st))  # type: ignore[arg-type]
    per = conf.measure.batch_s(cfg(2))
    assert per is not None and conf.least(cfg(2)) >= MIN_BATCHES
    conf(cfg(2), 1000.0)
    conf(cfg(2), (conf.least(cfg(2)) - 1 + 1e-6) * per)  # just room for the shortest judged run (+ warm-up)
    assert [n for _, n, _ in st.runs] == [CONFIRM_BATCHES, conf.least(cfg(2))]
    t = clock.t
    res = conf(cfg(2), (conf.least(cfg(2)) - 2 + 1e-6) * per)  # one batch short of it: nothing is started
    assert not res.ok and res.kind == RAN_OUT and res.batches == 0 and str(conf.least(cfg(2))) in res.detail
    assert len(st.runs) == 2 and clock.t == t and len(st.recorded) == 2


# --- a slow, noisy machine still gives a valid record ---------------------------------------------


def assert_valid(r: Any) -> dict[str, Any]:
    rec = r.record()
    assert set(rec) == TUNE_KEYS
    json.dumps(rec)  # results.json takes it as it is
    for t in rec["tried"]:
        assert ("videos_per_s" in t) != ("kind" in t)
        assert t["batches"] >= 0 and t["seconds"] >= 0 and t["stage"]
    if rec["confirmed"]:
        assert rec["best"] is not None and not r.failure()
    else:
        assert r.failure().startswith(f"batch size {r.batch_size}: ")
    return rec


def space() -> Space:
    return Space(batch_size=8, workers=(1, 2, 3, 4), prefetch=(2, 4), base=LoaderConfig(shuffle=True, drop_last=True))


def test_every_confirmation_degraded_names_the_verdict_for_each_candidate():
    clock = FakeClock()
    st = FakeStress(clock, lambda c, n, ph: slowing(c, n) if ph.startswith("confirm") else steady(c, n))
    m = RunMeasure(st)  # type: ignore[arg-type]
    r = tune(space(), m, budget_s=300, clock=clock, confirm=RunConfirm(st, m))  # type: ignore[arg-type]
    rec = assert_valid(r)
    assert not r.confirmed and rec["best"] is not None
    assert "degradation" in r.failure()
    conf = [t for t in rec["tried"] if t["stage"] == "confirm"]
    assert conf and all(t["kind"] == "degradation" for t in conf)
    assert len(st.recorded) == len(conf)  # each sustained run is kept for results.json


def test_budget_gone_after_the_first_probe_still_confirms_or_says_why():
    clock = FakeClock()

    def crawl(c: LoaderConfig, n: int, ph: str) -> list[float]:
        return [200.0] + steady(c, n)[1:]  # start-up alone eats the budget: a machine under heavy load

    st = FakeStress(clock, crawl)
    m = RunMeasure(st)  # type: ignore[arg-type]
    r = tune(space(), m, budget_s=60, clock=clock, confirm=RunConfirm(st, m))  # type: ignore[arg-type]
    rec = assert_valid(r)
    # the forced first probe; its pick has no time left for a sustained run in the budget: none starts
    assert [t["stage"] for t in rec["tried"]] == ["workers"] and len(st.runs) == 1
    assert "ran out" in r.limited_by and "no time left to confirm" in r.failure()
    assert not r.confirmed and r.best is not None and r.best.config.num_workers == 1


@settings(max_examples=30, deadline=None)
@given(
    budget=st.floats(min_value=20, max_value=900),
    step=st.sampled_from([0.0, 0.05, 0.3]),
    start=st.floats(min_value=0.5, max_value=40),
    per_worker=st.floats(min_value=2.0, max_value=200.0),
    sizes=st.sampled_from([(8,), (4, 16)]),
)
def test_the_adapter_and_the_search_keep_the_bound_together(budget, step, start, per_worker, sizes):
    """RunMeasure and RunConfirm over runs on the fake clock (start-up, warm-up batch, steady batches,
    --step-time, rates far below the decode-limit guess): the whole tune, every batch size and
    confirmation included, ends within bound_s — past it only by what a batch size's forced first probe
    (at least MIN_BATCHES batches, sized from a guess) itself ran past its share of the budget."""
    clock = FakeClock()

    def waits(c: LoaderConfig, n: int, ph: str) -> list[float]:
        return [start] + [c.batch_size / (per_worker * c.num_workers)] * (n - 1)

    st_ = FakeStress(clock, waits)
    st_.settings.step_time = step
    m = RunMeasure(st_)  # type: ignore[arg-type]
    spaces = [
        Space(batch_size=b, workers=(1, 2, 3, 4), prefetch=(2, 4), base=LoaderConfig(shuffle=True)) for b in sizes
    ]
    t0 = clock.t
    rs = tune_batch_sizes(spaces, m, budget_s=budget, clock=clock, confirm=RunConfirm(st_, m))  # type: ignore[arg-type]
    firsts = [
        st_.walls[i] for i, (c, _, _) in enumerate(st_.runs) if i == 0 or c.batch_size != st_.runs[i - 1][0].batch_size
    ]
    forced = sum(max(0.0, w - budget / len(sizes)) for w in firsts)
    assert clock.t - t0 <= bound_s(budget) + forced
    for r in rs:
        assert_valid(r)


def test_failing_probes_are_rejected_and_the_rest_still_pick():
    clock = FakeClock()
    st = FakeStress(
        clock, lambda c, n, ph: "shm_exhausted" if c.num_workers * c.effective_prefetch >= 8 else steady(c, n)
    )
    m = RunMeasure(st)  # type: ignore[arg-type]
    r = tune(
        space(),
        m,
        budget_s=300,
        clock=clock,
        confirm=RunConfirm(st, m),  # type: ignore[arg-type]
        predict_fits=lambda c: c.num_workers < 4,
    )
    rec = assert_valid(r)
    kinds = {t.get("kind") for t in rec["tried"]}
    assert "shm_exhausted" in kinds and PREDICTED_UNFIT in kinds
    assert r.confirmed and r.best is not None and r.best.config.num_workers * r.best.config.effective_prefetch < 8
    assert all(c.num_workers < 4 for c, _, _ in st.runs)  # predicted unfit: never run


def test_probe_line_and_toml_name_the_config():
    clock = FakeClock()
    st = FakeStress(clock, lambda c, n, ph: steady(c, n))
    m = RunMeasure(st)  # type: ignore[arg-type]
    r = tune(space(), m, budget_s=200, clock=clock, confirm=RunConfirm(st, m))  # type: ignore[arg-type]
    lines = [probe_line(8, t) for t in r.tried]
    assert all(t.config.label in line for t, line in zip(r.tried, lines))
    assert any("videos/s" in line for line in lines)
    assert r.best is not None and f"num_workers = {r.best.config.num_workers}" in tuned_toml(r)


def test_unknown_cuda_is_asked_of_a_child_before_the_space_is_built(monkeypatch):
    from ssv2_fixtures.stress import probe, tune_run

    settings = SimpleNamespace(sources={}, workers=(4,), max_workers=2, prefetch=(2,), batch_sizes=(8,))
    stress = SimpleNamespace(settings=settings, session=SimpleNamespace(machine={"cuda": None}))
    monkeypatch.setattr(probe, "cuda_in_child", lambda: True)  # a machine whose torch sees a GPU
    (space,) = tune_run.spaces_for(stress)  # type: ignore[arg-type]
    assert space.pin_memory == (False, True) and stress.session.machine["cuda"] is True
    stress.session.machine["cuda"] = False
    (space,) = tune_run.spaces_for(stress)  # type: ignore[arg-type]
    assert space.pin_memory == (False,)


def test_cuda_in_child_answers_from_a_real_interpreter():
    import torch

    from ssv2_fixtures.stress.probe import cuda_in_child

    assert cuda_in_child() is torch.cuda.is_available()
