"""The autotune search as a pure function over a fake measure and a fake clock, plus one real tune.

The fake measure is deterministic: a config's rate comes from a table-free model (rises with workers up
to a knee, then flat), its interval is ± a stated half-width that shrinks with the probe's length, and
the fake clock advances by the probe's seconds plus a start-up overhead.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from unit_helpers import FakeClock as BaseClock

from ssv2_fixtures.data.loader import LoaderConfig
from ssv2_fixtures.stress.tune import bound_s, tune, tune_batch_sizes
from ssv2_fixtures.stress.tune_model import (
    MAX_FINALISTS,
    PREDICTED_UNFIT,
    RAN_OUT,
    TUNE_KEYS,
    ConfirmResult,
    Probe,
    Space,
)


@dataclass
class FakeClock(BaseClock):
    t: float = 1000.0


@dataclass
class FakeMeasure:
    clock: FakeClock
    rate: Callable[[LoaderConfig], float]
    half_width: float = 1.0  # relative ±, at a 4 s probe; shrinks as 1/sqrt(seconds)
    fail: Callable[[LoaderConfig], str | None] = lambda c: None
    overhead: float = 5.0
    shrink: bool = True  # False: noise that longer probes do not average out
    jitter: float = 0.0  # start-ups vary by up to this fraction above ``overhead``
    calls: list[tuple[LoaderConfig, float]] = field(default_factory=list)

    def start_up(self) -> float:
        # deterministic, uneven: the search's mean start-up under- and overestimates the next one
        return self.overhead * (1.0 + self.jitter * ((len(self.calls) * 0.618) % 1.0))

    def __call__(self, config: LoaderConfig, seconds: float) -> Probe:
        self.calls.append((config, seconds))
        took = seconds + self.start_up()
        self.clock.t += took
        kind = self.fail(config)
        if kind:
            return Probe(kind=kind, batches=3, seconds=took)
        r = self.rate(config)
        h = r * self.half_width / 100 * (math.sqrt(4.0 / max(seconds, 0.1)) if self.shrink else 1.0)
        return Probe(
            videos_per_s=r, interval=(r - h, r + h), batches=int(seconds * r / config.batch_size) + 1, seconds=took
        )


@dataclass
class FakeConfirm:
    """A sustained run on the fake clock, as :class:`~ssv2_fixtures.stress.tune_run.RunConfirm` plans it:
    it runs nothing and answers RAN_OUT when its shortest judged run (``least_s``) does not fit the
    measuring time it is given, else it uses all of it (up to ``full_s``) after its start-up."""

    measure: FakeMeasure
    least_s: float = 5.0
    full_s: float = math.inf
    ok: Callable[[LoaderConfig], bool] = lambda c: True
    calls: list[tuple[LoaderConfig, float]] = field(default_factory=list)

    def __call__(self, config: LoaderConfig, seconds: float) -> ConfirmResult:
        if seconds < self.least_s:
            return ConfirmResult(ok=False, kind=RAN_OUT)
        self.calls.append((config, seconds))
        took = self.measure.start_up() + min(seconds, self.full_s)
        self.measure.clock.t += took
        good = self.ok(config)
        return ConfirmResult(
            ok=good, kind=None if good else "leak", videos_per_s=50.0 if good else None, batches=100, seconds=took
        )


def knee(
    best_w: int,
    *,
    pf_gain: float = 0.0,
    fs_gain: float = 0.0,
    pw_gain: float = 0.0,
) -> Callable[[LoaderConfig], float]:
    """Rises 20 videos/s per worker up to ``best_w``, then loses 15 per extra worker (more than the tie
    rule's margin); prefetch 4 adds ``pf_gain``, file_system ``fs_gain``, persistent workers ``pw_gain``."""

    def rate(c: LoaderConfig) -> float:
        w = c.num_workers
        base = max(1.0, 20.0 * min(w, best_w) - 15.0 * max(0, w - best_w))
        return (
            base
            + (pf_gain if c.effective_prefetch == 4 else 0.0)
            + (fs_gain if c.sharing_strategy == "file_system" else 0.0)
            + (pw_gain if c.persistent_workers else 0.0)
        )

    return rate


def space(workers=range(1, 9), **kw) -> Space:
    return Space(batch_size=8, workers=tuple(workers), **kw)


def always_ok(c: LoaderConfig, seconds: float) -> bool:
    return True


def test_finds_the_best_worker_count_and_knob():
    clock = FakeClock()
    m = FakeMeasure(clock, knee(5, pf_gain=30.0, fs_gain=-30.0, pw_gain=-30.0), half_width=0.5)
    r = tune(space(), m, budget_s=600, clock=clock, confirm=always_ok)
    assert r.best is not None and r.confirmed
    assert (r.best.config.num_workers, r.best.config.effective_prefetch) == (5, 4)
    assert r.ties == []
    assert r.ok


def test_respects_the_budget_including_confirmation():
    clock = FakeClock()
    m = FakeMeasure(clock, knee(6), overhead=10.0)

    def confirm(c: LoaderConfig, seconds: float) -> ConfirmResult:
        clock.t += seconds  # a sustained run uses all it is given
        return ConfirmResult(ok=True, videos_per_s=100.0, batches=100, seconds=seconds)

    t0 = clock.t
    r = tune(space(range(1, 33)), m, budget_s=120, clock=clock, confirm=confirm)
    assert clock.t - t0 <= 120 + 1e-6
    assert r.spent_s == pytest.approx(clock.t - t0)
    assert r.best is not None and r.confirmed


@settings(max_examples=60, deadline=None)
@given(
    budget=st.floats(min_value=10, max_value=900),
    overhead=st.floats(min_value=0.5, max_value=20),
    best_w=st.integers(min_value=1, max_value=16),
    hw=st.floats(min_value=0.1, max_value=30),
    jitter=st.sampled_from([0.0, 0.5]),
    least=st.floats(min_value=0.5, max_value=60),
    leaky=st.integers(min_value=0, max_value=3),
)
def test_never_overruns_the_budget(budget, overhead, best_w, hw, jitter, least, leaky):
    """The whole tune, confirmations included, ends within bound_s(budget) (1.25 × budget + 30 s). With
    start-ups as the search estimates them it ends within the budget itself, once the forced first
    probe fits in it; start-ups that come out longer overrun by at most one start-up's excess."""
    clock = FakeClock()
    m = FakeMeasure(clock, knee(best_w), half_width=hw, overhead=overhead, jitter=jitter)
    conf = FakeConfirm(m, least_s=least, ok=lambda c: c.num_workers % 4 >= leaky)  # some candidates fail
    t0 = clock.t
    r = tune(space(range(1, 17)), m, budget_s=budget, clock=clock, confirm=conf)
    took = clock.t - t0
    first = m.calls[0][1] + overhead * (1 + jitter)
    assert took <= bound_s(budget)
    assert took <= max(budget, first) + overhead * jitter + 1e-6
    assert r.spent_s == pytest.approx(took)
    assert len(r.tried) >= len(m.calls) + len(conf.calls)  # every measurement is in the record
    assert [c for c, _ in r.confirmations] == [c for c, _ in conf.calls]  # RAN_OUT answers start nothing
    if not conf.calls:  # not even the pick's sustained run fitted: the result says the budget ran out
        assert not r.confirmed and "ran out" in r.limited_by and "no time left to confirm" in r.failure()


def test_ties_go_to_the_cheaper_config_and_are_named():
    clock = FakeClock()
    # 4 and 5 workers measure 80 and 82 with ±10 % however long: overlapping, so 4 (fewer workers) wins; the
    # interleaved rounds see the same ±10 % from window to window, so they cannot tell them apart either
    rates = {1: 20.0, 2: 40.0, 3: 60.0, 4: 80.0, 5: 82.0, 6: 60.0, 7: 50.0, 8: 40.0}
    wobble = [1.08, 0.93, 1.02, 0.96, 1.05, 0.97, 0.91, 1.09]
    m = FakeMeasure(
        clock, lambda c: rates[c.num_workers] * wobble[len(m.calls) % len(wobble)], half_width=10.0, shrink=False
    )
    r = tune(space(), m, budget_s=600, clock=clock, confirm=always_ok)
    assert r.best is not None and r.best.config.num_workers == 4
    assert 5 in [t.config.num_workers for t in r.ties]
    assert r.record()["ties"] and all(set(t) == {"config", "videos_per_s", "interval"} for t in r.record()["ties"])


def test_longer_probes_separate_what_short_ones_could_not():
    clock = FakeClock()
    # 80 and 100 ± 11 % overlap at the 7 s probes; at 14 s (± 8 %) they are clear, and 80 is below 90 %
    # of the faster's lower bound (the tie rule's margin)
    rates = {1: 20.0, 2: 40.0, 3: 60.0, 4: 80.0, 5: 100.0, 6: 60.0, 7: 50.0, 8: 40.0}
    m = FakeMeasure(clock, lambda c: rates[c.num_workers], half_width=15.0)
    r = tune(space(), m, budget_s=600, clock=clock, confirm=always_ok)
    assert r.best is not None and r.best.config.num_workers == 5
    assert any(t.stage == "halving" for t in r.tried)


def test_clear_leader_is_not_a_tie():
    clock = FakeClock()
    m = FakeMeasure(clock, knee(4, fs_gain=30.0, pw_gain=-30.0), half_width=0.1)
    r = tune(space(), m, budget_s=600, clock=clock, confirm=always_ok)
    assert r.best is not None and r.ties == []
    assert (r.best.config.num_workers, r.best.config.sharing_strategy, r.best.config.persistent_workers) == (
        4,
        "file_system",
        False,
    )


def test_knobs_that_change_nothing_tie_and_the_plainer_setting_wins():
    clock = FakeClock()
    m = FakeMeasure(clock, knee(4), half_width=0.1)  # strategy and persistence do not change the rate
    r = tune(space(), m, budget_s=600, clock=clock, confirm=always_ok)
    assert r.best is not None and r.best.config.sharing_strategy == "file_descriptor"
    assert not r.best.config.persistent_workers
    assert r.ties and all(t.config.num_workers == 4 for t in r.ties)


def test_ties_pruned_in_the_knob_stage_are_named():
    """Prefetch, strategy and persistence change nothing: every knob value the knob stage kept out as a
    tie of the plainest setting is named as a tie of the pick — more than the finalists can hold."""
    clock = FakeClock()
    m = FakeMeasure(clock, knee(4), half_width=0.1)
    r = tune(space(), m, budget_s=600, clock=clock, confirm=always_ok)
    assert r.best is not None and r.confirmed
    knob_ties = {
        t.config
        for t in r.tried
        if t.stage == "knobs" and t.probe.passed and t.config.num_workers == r.best.config.num_workers
    } - {r.best.config}
    assert len(knob_ties) >= MAX_FINALISTS
    assert knob_ties <= {t.config for t in r.ties}
    assert {LoaderConfig.from_dict(t["config"]) for t in r.record()["ties"]} == {t.config for t in r.ties}
    assert r.best.config not in {t.config for t in r.ties}


def test_a_knob_tie_whose_winner_later_lost_clearly_is_not_named():
    """Prefetch 2 and 4 tie (4 is dropped), then file_system is clearly faster: prefetch 4 tied a config
    that lost, not the pick, so it is no tie of the pick."""
    clock = FakeClock()
    m = FakeMeasure(clock, knee(4, pf_gain=2.0, fs_gain=30.0), half_width=5.0, shrink=False)
    r = tune(space(prefetch=(2, 4)), m, budget_s=600, clock=clock, confirm=always_ok)
    assert r.best is not None and r.best.config.sharing_strategy == "file_system"
    dropped = [
        t.config
        for t in r.tried
        if t.stage == "knobs" and t.config.effective_prefetch == 4 and t.config.sharing_strategy == "file_descriptor"
    ]
    assert dropped and not set(dropped) & {t.config for t in r.ties}


def test_skips_configs_predicted_not_to_fit():
    clock = FakeClock()
    m = FakeMeasure(clock, knee(8))
    fits = lambda c: c.num_workers * c.effective_prefetch <= 8  # noqa: E731
    r = tune(space(), m, budget_s=600, clock=clock, confirm=always_ok, predict_fits=fits)
    assert all(fits(c) for c, _ in m.calls)
    skipped = [t for t in r.tried if t.probe.kind == PREDICTED_UNFIT]
    assert skipped and all(not fits(t.config) for t in skipped)
    assert r.best is not None and fits(r.best.config)


def test_runs_unfit_configs_when_nothing_fits():
    clock = FakeClock()
    m = FakeMeasure(clock, knee(3))
    r = tune(space(range(1, 5)), m, budget_s=300, clock=clock, confirm=always_ok, predict_fits=lambda c: False)
    assert m.calls and r.best is not None
    assert "no config was predicted to fit" in r.limited_by


def test_failed_configs_are_rejected_with_their_kind():
    clock = FakeClock()
    m = FakeMeasure(clock, knee(8), fail=lambda c: "shm_exhausted" if c.num_workers >= 6 else None)
    r = tune(space(), m, budget_s=600, clock=clock, confirm=always_ok)
    assert r.best is not None and r.best.config.num_workers < 6
    kinds = {t.probe.kind for t in r.tried if t.config.num_workers >= 6}
    assert kinds == {"shm_exhausted"}
    assert all(t["kind"] == "shm_exhausted" for t in r.record()["tried"] if t["config"]["num_workers"] >= 6)
    assert "shm_exhausted" in r.limited_by


def test_falls_back_when_the_confirmation_fails():
    clock = FakeClock()
    m = FakeMeasure(clock, knee(5, pf_gain=30.0), half_width=0.2)
    seen: list[LoaderConfig] = []

    def confirm(c: LoaderConfig, seconds: float) -> ConfirmResult:
        seen.append(c)
        clock.t += min(seconds, 30)
        if c == seen[0]:  # the pick leaks in its sustained run
            return ConfirmResult(ok=False, kind="leak", detail="RSS grew", batches=100, seconds=30)
        return ConfirmResult(ok=True, videos_per_s=80.0, batches=100, seconds=30)

    r = tune(space(), m, budget_s=600, clock=clock, confirm=confirm)
    assert (seen[0].num_workers, seen[0].effective_prefetch) == (5, 4)
    assert len(seen) == 2 and (seen[1].num_workers, seen[1].effective_prefetch) != (5, 4)  # another shape next
    assert r.confirmed and r.best is not None and r.best.config == seen[1]
    conf = [t for t in r.record()["tried"] if t.get("stage") == "confirm"]
    assert conf[0]["kind"] == "leak" and "videos_per_s" in conf[1]


def test_no_confirmed_pick_is_a_failure():
    clock = FakeClock()
    m = FakeMeasure(clock, knee(3))
    r = tune(
        space(range(1, 5)),
        m,
        budget_s=200,
        clock=clock,
        confirm=lambda c, s: ConfirmResult(ok=False, kind="degradation", detail="ratio 0.5"),
    )
    assert not r.confirmed and not r.ok
    assert "degradation" in r.failure()


def test_target_mode_picks_the_cheapest_sufficient_config():
    clock = FakeClock()
    m = FakeMeasure(clock, knee(8), half_width=1.0)  # 20 videos/s per worker
    r = tune(space(), m, budget_s=600, clock=clock, confirm=always_ok, target=75.0)
    assert r.met_target and r.best is not None
    assert r.best.config.num_workers == 4 and r.best.lo >= 75.0  # 3 workers reach 60 only
    assert r.record()["target_videos_per_s"] == 75.0


def test_target_mode_failure_names_the_best_rate_and_the_limit():
    clock = FakeClock()
    m = FakeMeasure(clock, knee(3), half_width=1.0)
    r = tune(space(), m, budget_s=600, clock=clock, confirm=always_ok, target=500.0)
    assert r.met_target is False and not r.ok
    msg = r.failure()
    assert "500" in msg and r.best is not None and r.best.config.label in msg
    assert "stopped growing past 3 workers" in msg


def test_record_has_exactly_the_issue_keys():
    clock = FakeClock()
    m = FakeMeasure(clock, knee(2))
    r = tune(space(range(1, 4)), m, budget_s=100, clock=clock, confirm=always_ok)
    rec = r.record()
    assert (
        set(rec)
        == TUNE_KEYS
        == {
            "batch_size",
            "best",
            "confirmed",
            "ties",
            "tried",
            "budget_s",
            "spent_s",
            "target_videos_per_s",
            "interleaved",
        }
    )
    assert rec["best"] is not None and set(rec["best"]) == {"config", "videos_per_s", "interval"}
    assert LoaderConfig.from_dict(rec["best"]["config"]).batch_size == 8
    assert len(rec["tried"]) == len(m.calls) + 1  # + the confirmation


def test_batch_sizes_are_tuned_on_their_own_within_one_budget():
    clock = FakeClock()
    m = FakeMeasure(clock, knee(3))
    t0 = clock.t
    rs = tune_batch_sizes(
        [Space(batch_size=b, workers=(1, 2, 3, 4)) for b in (4, 8)], m, budget_s=200, clock=clock, confirm=always_ok
    )
    assert [r.batch_size for r in rs] == [4, 8]
    assert all({t.config.batch_size for t in r.tried} == {r.batch_size} for r in rs)
    assert clock.t - t0 <= 200 + 1e-6


def test_a_control_runs_between_batch_sizes_on_the_budget():
    clock = FakeClock()
    m = FakeMeasure(clock, knee(3))
    seen: list[int] = []

    def control() -> None:
        seen.append(len(m.calls))
        clock.t += 5.0  # a control's own seconds come out of the budget

    t0 = clock.t
    spaces = [Space(batch_size=b, workers=(1, 2, 3, 4)) for b in (4, 8, 16)]
    rs = tune_batch_sizes(spaces, m, budget_s=300, clock=clock, confirm=always_ok, between=control)
    assert len(seen) == 2 and 0 < seen[0] < seen[1] < len(m.calls)  # after bs4's probes, after bs8's, not first
    assert [r.batch_size for r in rs] == [4, 8, 16] and clock.t - t0 <= 300 + 1e-6


def test_bad_space_or_budget_names_the_option():
    with pytest.raises(ValueError, match="--workers"):
        Space(batch_size=8, workers=(0, 2))
    for bad in (0.0, -5.0, math.nan):
        with pytest.raises(ValueError, match="--tune-budget"):
            tune(space(), FakeMeasure(FakeClock(), knee(2)), budget_s=bad, clock=FakeClock())
        with pytest.raises(ValueError, match="--tune-budget"):  # refused, not turned into a second per size
            tune_batch_sizes([space()], FakeMeasure(FakeClock(), knee(2)), budget_s=bad, clock=FakeClock())


def test_a_batch_size_left_without_budget_is_reported_not_tuned():
    """The first batch size's forced first probe outlasts the whole budget (a start-up of 200 s): the
    second gets no share rather than a made-up one, and says why."""
    clock = FakeClock()
    m = FakeMeasure(clock, knee(2), overhead=200.0)
    first, second = tune_batch_sizes(
        [space(range(1, 3)), Space(batch_size=16, workers=(1, 2))], m, budget_s=60, clock=clock, confirm=FakeConfirm(m)
    )
    assert [c.batch_size for c, _ in m.calls] == [8]
    assert "ran out" in first.limited_by
    assert second.tried == [] and second.best is None and not second.ok
    assert "ran out before this batch size" in second.failure()
    assert set(second.record()) == TUNE_KEYS


# --- real tunes on the built-in set (isolated runs; check the wiring and the record, never rates or times:
# CI is a shared, noisy machine, so a probe may fail, the budget may run out after the first probe, or the
# confirmation may be judged degraded — each of those must still give a valid record) ---------------------


def counting(stress) -> list[LoaderConfig]:
    """The configs of the isolated runs the tune starts (probes and confirmations), in order."""
    measured: list[LoaderConfig] = []
    orig = stress.run

    def run(config, batches, **kw):
        if kw.get("kind") == "tune":
            measured.append(config)
        return orig(config, batches, **kw)

    stress.run = run
    return measured


def assert_valid_record(r, measured: list[LoaderConfig], lines: list[str] | None = None) -> dict:
    import json

    rec = r.record()
    assert set(rec) == TUNE_KEYS
    json.dumps(rec)  # results.json takes it as it is
    ran = [t for t in rec["tried"] if t.get("kind") != PREDICTED_UNFIT]
    assert [LoaderConfig.from_dict(t["config"]) for t in ran] == measured  # every run is in the record
    for t in rec["tried"]:
        assert ("videos_per_s" in t) != ("kind" in t), t
        assert t["batches"] >= 0 and t["seconds"] >= 0 and t["stage"] in ("workers", "knobs", "halving", "confirm")
    if lines is not None:
        assert len(lines) == len(rec["tried"])  # one live line per probe
        assert all(LoaderConfig.from_dict(t["config"]).label in line for t, line in zip(rec["tried"], lines))
    conf = [t for t in rec["tried"] if t["stage"] == "confirm"]
    if rec["confirmed"]:  # the pick is the candidate whose sustained run passed: the last confirmation
        assert rec["best"] is not None and conf and conf[-1]["config"] == rec["best"]["config"]
        assert "kind" not in conf[-1] or conf[-1]["kind"] == "confirmed"
        assert set(rec["best"]) == {"config", "videos_per_s", "interval"} and not r.failure()
    else:  # named: what each confirmation failed with, or why nothing passed
        msg = r.failure()
        assert msg.startswith(f"batch size {r.batch_size}: ")
        assert all(t["kind"] in msg for t in conf)
        if rec["best"] is None:
            assert "no config passed" in msg
    return rec


def test_real_tune_on_the_built_in_set_records_every_probe(tmp_path):
    from ssv2_fixtures.stress.traincfg import load
    from ssv2_fixtures.stress.tune_run import api_stress, run_tune, write_tuned

    lines: list[str] = []
    # No breakdown probe (~7 s inside the first probe's time, tested in tests/unit/run). 40 s: two worker counts,
    # and a knob or the confirmation (which of them the budget leaves is this machine's business)
    stress = api_stress(
        tmp_path / "reports", lines.append, batch_sizes="8", workers="1,2", prefetch="2,4", no_breakdown="true"
    )
    measured = counting(stress)
    (r,) = run_tune(stress, budget_s=40.0)
    rec = assert_valid_record(r, measured, lines)
    assert rec["batch_size"] == 8 and rec["budget_s"] == 40.0 and rec["target_videos_per_s"] is None
    assert measured and rec["tried"][0]["stage"] == "workers"  # the first probe always runs
    assert {t.num_workers for t in measured} <= {1, 2}
    (path,) = write_tuned(tmp_path, [r])
    if rec["best"] is None:
        assert "has no pick" in path.read_text()
    else:
        keys = ("batch_size", "num_workers", "prefetch_factor", "persistent_workers", "pin_memory", "sharing_strategy")
        assert load(path).loader == LoaderConfig(**{k: rec["best"]["config"][k] for k in keys})


def test_real_tune_on_a_slow_machine_still_records_and_confirms_or_says_why(tmp_path):
    """A machine ten times slower, as the search sees it (its clock runs ten times fast): the budget is
    gone after the forced first probe; the confirmation still runs, and the record is complete."""
    import time

    from ssv2_fixtures.stress.tune_run import api_stress, run_tune

    stress = api_stress(tmp_path / "reports", None, batch_sizes="8", workers="1,2", prefetch="2", no_breakdown="true")
    measured = counting(stress)
    t0 = time.monotonic()
    (r,) = run_tune(stress, budget_s=20.0, clock=lambda: t0 + 10 * (time.monotonic() - t0))
    rec = assert_valid_record(r, measured)
    # how many probes fit is the machine's business; the forced first probe always runs, and a search
    # cut short says so (and, unconfirmed, why)
    assert measured and rec["tried"][0]["stage"] == "workers"
    assert "ran out" in r.limited_by


def test_real_tune_under_a_small_emulated_shm_picks_a_config_that_fits(tmp_path):
    """Under a private 40 MB /dev/shm with a 0.2 s training step (so the prefetch queue fills), 2 workers ×
    prefetch 2 of 4-clip batches (5 batches in flight, 46 MB) run out of shared memory for real.

    The prediction would skip that config (``predicted_unfit``), so this test lets everything through
    (``predict_fits``): the rejection must be a real ``shm_exhausted``. The space is two probes (1 and 2
    workers at prefetch 2) and a confirmation, so a generous budget is never what stops the search: on
    a loaded machine the second probe still starts, and an idle one does not spend the budget."""
    from ssv2_fixtures.run.outcome import KIND_NAMES
    from ssv2_fixtures.run.sandbox import Sandbox, unavailable
    from ssv2_fixtures.stress.tune_run import api_stress, run_tune

    shm = 40 * 2**20
    if (why := unavailable(Sandbox(shm_bytes=shm))) is not None:
        pytest.skip(f"a private /dev/shm needs root and unshare -m here: {why}")
    stress = api_stress(
        tmp_path / "reports", None, batch_sizes="4", emulate_shm="40M", step_time="0.2", no_breakdown="true"
    )
    measured = counting(stress)
    sp = Space(
        batch_size=4,
        workers=(1, 2),
        prefetch=(2,),
        strategies=("file_descriptor",),
        persistent=(False,),
        base=LoaderConfig(shuffle=True, drop_last=True),
    )
    assert stress.budget(sp.config(2, 2)).shm_bytes > shm >= stress.budget(sp.config(1, 2)).shm_bytes
    with pytest.warns(UserWarning, match="exceeds the 40 MiB available"):
        (r,) = run_tune(stress, budget_s=120.0, spaces=[sp], predict_fits=lambda c: True)
    rec = assert_valid_record(r, measured)
    assert [LoaderConfig.from_dict(t["config"]) for t in rec["tried"][:2]] == [sp.config(1), sp.config(2)]
    rejected = [t for t in rec["tried"] if t["stage"] != "confirm" and "kind" in t]
    assert {t["kind"] for t in rejected} == {"shm_exhausted"}
    assert all(stress.budget(LoaderConfig.from_dict(t["config"])).shm_bytes > shm for t in rejected)
    # Every sustained run there completed: no outcome kind, at most a verdict (leak, degradation), which
    # depends on this machine's timing and is not judged here.
    conf = [t for t in rec["tried"] if t["stage"] == "confirm"]
    assert conf and all(t.get("kind") in (None, "confirmed") or t["kind"] not in KIND_NAMES for t in conf), conf
    assert all(stress.budget(LoaderConfig.from_dict(t["config"])).shm_bytes <= shm for t in conf)
    assert r.best is not None and stress.budget(r.best.config).shm_bytes <= shm


def test_one_off_work_inside_measure_does_not_inflate_the_probe_cost():
    clock = FakeClock()
    m = FakeMeasure(clock, knee(3), overhead=2.0)
    first = [True]

    def measure(c: LoaderConfig, seconds: float) -> Probe:
        if first[0]:  # e.g. the session's decode-rate probe, run once before the first measurement
            clock.t += 30.0
            first[0] = False
        return m(c, seconds)

    r = tune(space(range(1, 5)), measure, budget_s=80, clock=clock, confirm=always_ok)
    assert len([t for t in r.tried if t.stage == "workers"]) >= 2


@pytest.mark.parametrize("budget", [30.0, 240.0, 600.0])
def test_tune_tests_get_a_pytest_timeout_past_the_bound_the_search_keeps(budget):
    """pytest-timeout (``plans.item_timeout``) fires only after a whole tune — two batch sizes, search and
    confirmations, start-ups that come out longer than the search estimated — has ended, with room left
    for one probe stalling at the very end to be stopped by its own watchdog (a hang, not a kill)."""
    from dataclasses import replace as dc_replace

    import ssv2_fixtures.stress.plans as plans
    from ssv2_fixtures.options import Settings
    from ssv2_fixtures.run.watchdog import Watchdog

    class Item:  # what item_timeout reads of a pytest item: its markers, no parametrization
        def __init__(self, *marks: str) -> None:
            self.marks = marks

        def get_closest_marker(self, name: str):
            return name if name in self.marks else None

    clock = FakeClock()
    m = FakeMeasure(clock, knee(3), overhead=20.0, jitter=0.5)
    big = Space(batch_size=16, workers=tuple(range(1, 9)))
    t0 = clock.t
    rs = tune_batch_sizes([space(), big], m, budget_s=budget, clock=clock, confirm=FakeConfirm(m))
    took = clock.t - t0
    assert len(rs) == 2 and took <= bound_s(budget)
    timeout = plans.item_timeout(Item("tune"), dc_replace(Settings(), tune_budget=budget))
    assert timeout is not None
    assert timeout >= took + Watchdog().resolve(big.config(8), 1)["stall_s"]
