"""The watchdog's decisions, without a process: events and clock values in, findings out.

The same decisions on real children (a real hang, a real torchrun rank failure) are in test_runner.py
and test_launch.py; here each branch is reached on purpose, including the ones live runs rarely hit.
"""

from __future__ import annotations

from typing import Any

import pytest

from ssv2_fixtures.data.loader import LoaderConfig
from ssv2_fixtures.run.hold import HOLD_MAX_S
from ssv2_fixtures.run.launch import Launch
from ssv2_fixtures.run.strategy import SingleProcess, Torchrun
from ssv2_fixtures.run.watchdog import (
    Culprit,
    Progress,
    Watchdog,
    decide,
    failing_rank,
    rank_state,
    run_passed,
    split_exit,
    watch_ranks,
    watch_single,
)

LIMITS = {"startup_s": 10.0, "stall_s": 3.0, "total_s": 100.0, "exit_s": 5.0}


def _progress(*events: tuple[float, dict[str, Any]], t_spawn: float = 0.0) -> Progress:
    p = Progress(t_spawn)
    for now, ev in events:
        p.observe(ev, now)
    return p


def test_limits_are_derived_from_the_config_and_given_ones_win() -> None:
    cfg = LoaderConfig(batch_size=8, num_workers=2)
    one = Watchdog().resolve(cfg, 10)
    two = Watchdog().resolve(cfg, 10, ranks=2)
    assert two["startup_s"] > one["startup_s"] and two["stall_s"] > one["stall_s"] and two["total_s"] > one["total_s"]
    assert one["exit_s"] == 15.0 + 5.0 * 2  # torch joins each worker for up to 5 s
    assert Watchdog(startup_s=1, stall_s=2, total_s=3, exit_s=4).resolve(cfg, 10) == {
        "startup_s": 1,
        "stall_s": 2,
        "total_s": 3,
        "exit_s": 4,
    }


def test_a_time_window_bounds_the_total_by_its_seconds_not_its_batch_cap() -> None:
    cfg = LoaderConfig(batch_size=16, num_workers=4)
    measure = {"warmup_batches": 3, "min_batches": 12, "max_batches": 1000, "max_s": 10.0, "target_rel": 0.05}
    capped = Watchdog().resolve(cfg, 1000)
    windowed = Watchdog().resolve(cfg, 1000, measure=measure)
    per_batch = 2.0 + 0.25 * 16
    # warm-up rounded to one 4-batch round, the 10 s window, then the round in flight when it closes, and
    # the full-queue hold after the loop (run/hold.py)
    assert windowed["total_s"] == windowed["startup_s"] + (4 + 4) * per_batch + 10.0 + HOLD_MAX_S + 60.0
    assert capped["total_s"] == capped["startup_s"] + 1000 * per_batch + HOLD_MAX_S + 60.0
    assert windowed["stall_s"] == capped["stall_s"] and windowed["startup_s"] == capped["startup_s"]
    # a cap below the window's own batches still bounds it
    few = Watchdog().resolve(cfg, 5, measure=measure)
    assert few["total_s"] == few["startup_s"] + 5 * per_batch + HOLD_MAX_S + 60.0


def test_single_process_startup_then_stall() -> None:
    p = _progress((1.0, {"ev": "started"}))
    assert watch_single(p, 9.0, LIMITS) is None
    f = watch_single(p, 10.5, LIMITS)
    assert f is not None and f["phase"] == "startup" and f["elapsed_s"] == 10.5
    p.observe({"ev": "batch"}, 4.0)
    assert watch_single(p, 6.9, LIMITS) is None  # the start-up limit no longer applies once a batch came
    f = watch_single(p, 7.5, LIMITS)
    assert f is not None and f["phase"] == "stall" and f["elapsed_s"] == pytest.approx(3.5)


def test_decide_counts_the_batches_and_applies_the_total_limit_first() -> None:
    p = _progress((1.0, {"ev": "batch"}), (2.0, {"ev": "batch"}))
    d = decide(p, 6.0, LIMITS, SingleProcess().watch)
    assert d.stop and d.stuck is None and d.fired is not None
    assert d.fired["phase"] == "stall" and d.fired["batches_done"] == 2
    total = decide(_progress((99.0, {"ev": "batch"})), 101.0, LIMITS, SingleProcess().watch)
    assert total.fired is not None and total.fired["phase"] == "total"
    assert not decide(p, 3.0, LIMITS, SingleProcess().watch).stop


def test_after_an_error_only_the_exit_limit_applies_and_it_is_not_a_hang() -> None:
    p = _progress((1.0, {"ev": "batch"}), (2.0, {"ev": "error", "type": "RuntimeError"}))
    assert not decide(p, 6.9, LIMITS, SingleProcess().watch).stop  # past stall_s, but an error came
    d = decide(p, 7.5, LIMITS, SingleProcess().watch)
    assert d.fired is None and d.stuck is not None and d.stuck["phase"] == "exit"
    # a second error does not restart the clock
    p.observe({"ev": "error"}, 7.0)
    assert p.error_at == 2.0


def test_rank_watch_startup_names_the_rank_without_a_batch() -> None:
    p = _progress(
        (1.0, {"ev": "started", "rank": 0}), (1.0, {"ev": "started", "rank": 1}), (2.0, {"ev": "batch", "rank": 0})
    )
    assert watch_ranks(p, 9.0, LIMITS, 2) is None
    f = watch_ranks(p, 11.0, LIMITS, 2)
    assert f is not None and f["phase"] == "startup" and f["rank"] == 1
    assert f["ranks_without_batch"] == [1] and f["ranks_started"] == 2


def test_rank_watch_stall_of_one_rank_while_the_other_finished() -> None:
    p = _progress(
        (1.0, {"ev": "batch", "rank": 0}),
        (1.0, {"ev": "batch", "rank": 1}),
        (2.0, {"ev": "batch", "rank": 0}),
        (2.5, {"ev": "finished", "rank": 0}),
    )
    f = watch_ranks(p, 4.5, LIMITS, 2)
    assert f is not None and f["phase"] == "stall" and f["rank"] == 1 and f["ranks_finished"] == [0]
    d = decide(p, 4.5, LIMITS, Torchrun(Launch(nproc_per_node=2)).watch)
    assert d.fired is not None and d.fired["batches_done"] == 1  # rank 1's own batches


def test_rank_watch_teardown_once_every_rank_finished() -> None:
    p = _progress(
        (1.0, {"ev": "batch", "rank": 0}),
        (1.0, {"ev": "batch", "rank": 1}),
        (2.0, {"ev": "finished", "rank": 0}),
        (3.0, {"ev": "finished", "rank": 1}),
    )
    assert watch_ranks(p, 5.9, LIMITS, 2) is None
    f = watch_ranks(p, 6.5, LIMITS, 2)
    assert f is not None and f["phase"] == "teardown" and "rank" not in f


FAIL = [
    {"rank": 1, "local_rank": 1, "host": "h", "exitcode": -9, "pid": 7, "root_cause": True},
    {"rank": 0, "local_rank": 0, "host": "h", "exitcode": 1, "pid": 6, "root_cause": False},
]


def test_failing_rank_precedence() -> None:
    batches = {0: 5, 1: 3}
    wd = failing_rank({"phase": "stall", "rank": 0, "batches_done": 4}, [], FAIL, batches, -15)
    assert wd == Culprit("watchdog", 0, None, 15, 4)
    err = failing_rank(None, [{"rank": 1, "batch": 2}, {"rank": 0, "batch": 4}], FAIL, batches, 1)
    assert err == Culprit("error", 1, None, 9, 2)  # the first error; its exit from torchrun's summary
    tr = failing_rank(None, [], FAIL, batches, 1)
    assert tr == Culprit("torchrun", 1, None, 9, 3)  # the root cause, killed by SIGKILL
    agent = failing_rank(None, [], [], batches, 2)
    assert agent == Culprit("agent", None, 2, None, 3)
    assert split_exit(-11) == (None, 11) and split_exit(0) == (0, None) and split_exit(None) == (None, None)


def test_rank_state() -> None:
    assert rank_state(0, True, [], 1, "worker_exception") == ("finished", None, None)
    assert rank_state(1, False, [{"type": "X"}], 1, "worker_exception") == ("failed", "worker_exception", None)
    state, kind, note = rank_state(0, False, [], 1, "worker_exception")
    assert (state, kind) == ("ended", None) and note == "ended by torchrun or the runner (after rank 1 failed)"
    state, _, note = rank_state(0, True, [{"type": "DistBackendError", "message": "peer gone\nmore"}], 1, "x")
    assert state == "ended" and note == "DistBackendError: peer gone (after rank 1 failed)"


@pytest.mark.parametrize(
    "kw, ok",
    [
        ({}, True),
        ({"fired": {"phase": "stall"}}, False),
        ({"returncode": 1}, False),
        ({"finished": False}, False),
        ({"errors": 1}, False),
        ({"batches": [10, 9]}, False),
        ({"batches": []}, False),
    ],
)
def test_run_passed(kw: dict[str, Any], ok: bool) -> None:
    args: dict[str, Any] = {
        "fired": None,
        "returncode": 0,
        "finished": True,
        "errors": 0,
        "batches": [10, 10],
        "wanted": 10,
    }
    args.update(kw)
    assert run_passed(**args) is ok
