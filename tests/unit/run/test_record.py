"""The one record builder, without a process: batch events in, metrics out; the writer's JSON types."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssv2_fixtures.data.loader import LoaderConfig
from ssv2_fixtures.run.loop import MeasureSpec, Window
from ssv2_fixtures.run.monitor import Peaks
from ssv2_fixtures.run.record import (
    RunFacts,
    batch_metrics,
    batch_walls,
    json_safe,
    single_process_rate,
    single_record,
    write_atomic,
)
from ssv2_fixtures.run.stats import MIN_BATCHES, no_interval_reason, percentile, rate_interval


def _batches(
    waits: list[float], videos: int = 4, rank: int | None = None, t0: float = 100.0, step: float = 0.0, **extra: Any
) -> list[dict[str, Any]]:
    """Batch events of a loop that waits ``waits[i]`` for batch i (``t``: its receipt), then holds ``step``."""
    out, t = [], t0
    for i, w in enumerate(waits):
        t += (step if i else 0.0) + w
        ev = {"ev": "batch", "i": i, "t": t, "wait_s": w, "videos": videos, **extra}
        if rank is not None:
            ev["rank"] = rank
        out.append(ev)
    return out


def test_rates_count_the_batches_after_the_first() -> None:
    batch_events = _batches([5.0] + [0.5] * 11)
    m = batch_metrics(batch_events, started={"t": 90.0}, finished={"loop_s": 11.5}, num_frames=16)
    assert m["batches"] == 12 and m["videos"] == 48
    assert m["first_batch_s"] == 5.0 and m["startup_s"] == pytest.approx(15.0)
    assert m["videos_per_s"] == pytest.approx(44 / 5.5) and m["frames_per_s"] == pytest.approx(16 * 44 / 5.5)
    assert m["wait_fraction"] == pytest.approx(1.0) and m["bound"] == "data"  # no step: the loop only waits
    assert m["wait_ms_p50"] == pytest.approx(500.0) and m["loop_s"] == 11.5
    iv = rate_interval([4] * 11, [0.5] * 11)
    assert iv is not None and m["videos_per_s_interval"] == iv.as_list()
    assert m["interval_batches"] == 11 and m["interval_method"] == iv.method


def test_too_few_batches_give_no_interval() -> None:
    m = batch_metrics(_batches([1.0, 0.5, 0.5]))
    assert "videos_per_s_interval" not in m and "interval_batches" not in m and m["videos_per_s"] == 8.0


def test_no_batch_gives_counts_only() -> None:
    m = batch_metrics([], ready={"dataset_len": 12})
    assert m == {"batches": 0, "videos": 0, "split_size": 12}


def test_batch_contents_split_size_and_distinct_videos() -> None:
    batch_events = _batches([0.2] * 6, clips=8, bytes=1000, shape=[8, 16, 224, 224, 3], dtype="torch.uint8")
    batch_events[-1].update(clips=3, bytes=10, shape=[3, 16, 224, 224, 3])  # a short last batch does not decide
    m = batch_metrics(
        batch_events, ready={"dataset_len": 12}, finished={"loop_s": 1.2, "split_size": 12, "distinct_videos": 9}
    )
    assert m["bytes_per_batch"] == 1000 and m["clips_per_batch"] == 8
    assert m["batch_shape"] == [8, 16, 224, 224, 3] and m["batch_dtype"] == "torch.uint8"
    assert m["split_size"] == 12 and m["distinct_videos"] == 9


def test_events_without_contents_leave_them_out() -> None:
    m = batch_metrics(_batches([0.2] * 3))
    assert not {"bytes_per_batch", "clips_per_batch", "batch_shape", "batch_dtype"} & set(m)


def test_ranks_each_have_their_first_batch() -> None:
    """Merged events of two ranks: each rank's first batch is start-up, not steady state."""
    batch_events = sorted(_batches([3.0, 1.0, 1.0], rank=0) + _batches([4.0, 1.0, 1.0], rank=1), key=lambda e: e["t"])
    m = batch_metrics(batch_events)
    assert m["videos_per_s"] == pytest.approx(16 / 4.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=1e-3, max_value=5.0), min_size=2, max_size=40))
def test_wait_percentiles_are_the_stats_rule(waits: list[float]) -> None:
    m = batch_metrics(_batches(waits))
    steady = [w * 1000 for w in waits[1:]]
    assert m["wait_ms_p95"] == pytest.approx(percentile(steady, 95))
    assert m["wait_ms_p50"] <= m["wait_ms_p95"] <= m["wait_ms_p99"] <= max(steady) + 1e-9


def test_numpy_values_are_plain_json_never_strings(tmp_path: Path) -> None:
    data = {
        "ok": np.bool_(False),
        "n": np.int64(3),
        "x": np.float32(0.5),
        "arr": np.arange(3),
        "t": (1, 2),
        "p": tmp_path,
        "nested": [{"ok": np.bool_(True)}],
    }
    safe = json_safe(data)
    assert safe == {
        "ok": False,
        "n": 3,
        "x": 0.5,
        "arr": [0, 1, 2],
        "t": [1, 2],
        "p": str(tmp_path),
        "nested": [{"ok": True}],
    }
    assert type(safe["ok"]) is bool and type(safe["n"]) is int
    write_atomic(tmp_path / "r.json", data)
    back = json.loads((tmp_path / "r.json").read_text())
    assert back["ok"] is False and back["nested"][0]["ok"] is True and back["n"] == 3
    assert json_safe(math.inf) == math.inf


def test_a_measured_window_gives_the_rate_and_interval_of_its_own_batches():
    # start-up, 3 slow warm-up batches, then a steady 20-batch window: the window's rate, not a blend
    batch_events = _batches([5.0] + [2.0] * 3 + [0.5] * 20)
    whole, window = batch_metrics(batch_events), batch_metrics(batch_events, window=20)
    assert window["videos_per_s"] == pytest.approx(8.0) and whole["videos_per_s"] < 7.0
    assert window["interval_batches"] == 20 and window["videos_per_s_interval"] == pytest.approx([8.0, 8.0])


def test_a_window_without_warm_up_is_the_childs_own_batches_first_one_included() -> None:
    # warmup_batches=0 (``--quick-batches 1``): the child's window holds every batch, the start-up one too;
    # the record's window must be those same batches, so its rate is the window's
    waits = [3.0] + [0.5] * 11
    spec = MeasureSpec(warmup_batches=0, min_batches=100, max_batches=len(waits), max_s=1e9, target_rel=1e-9, min_s=0.0)
    w = Window(spec, opened=0.0)
    batch_events = _batches(waits, step=0.2)
    stopped = [w.add(4, e["wait_s"], now=e["t"]) for e in batch_events]  # the child's clock: receipts
    assert stopped[-1] == "batches" and len(w.videos) == len(waits)
    m = batch_metrics(batch_events, window=len(w.videos))
    assert w.seconds == pytest.approx([3.0] + [0.7] * 11)  # the first batch: its wait, nothing before it
    assert m["videos_per_s"] == pytest.approx(sum(w.videos) / sum(w.seconds))
    iv = rate_interval(w.videos, w.seconds)
    assert iv is not None and m["videos_per_s_interval"] == pytest.approx(iv.as_list())


def test_no_interval_says_why() -> None:
    few = batch_metrics(_batches([1.0, 0.5, 0.5]))
    assert few["interval_note"] == f"too few batches (2 < {MIN_BATCHES})"
    # a batch-means group whose waits sum to 0 (batches that were all waiting already): hi is infinite
    idle = batch_metrics(_batches([1.0] + [0.0] * 3 + [0.5] * 9))
    assert "videos_per_s_interval" not in idle and idle["interval_note"] == "a group took no time"
    ok = batch_metrics(_batches([1.0] + [0.5] * 12))
    assert "interval_note" not in ok and "videos_per_s_interval" in ok
    assert no_interval_reason([0.0] * 12, 1, None) == "the batches took no time"
    # whole rounds only, as the rate: the one batch with time is the oldest, left out of a 4-worker round
    assert no_interval_reason([1.0] + [0.0] * 12, 4, None) == "the batches took no time"


class _Monitor:
    peaks = Peaks()
    samples: list[Any] = []
    seen: dict[int, float] = {}
    shm_baseline = 0

    def series(self) -> dict[str, list[Any]]:
        return {}


def test_the_windows_verdict_is_in_the_metrics(tmp_path: Path) -> None:
    waits = [2.0] + [0.5] * 9
    events = [
        {"ev": "started", "t": 99.0},
        *_batches(waits),
        {"ev": "measured", "batches": 8, "videos": 32, "seconds": 4.0, "stopped": "time", "t": 106.0},
        {"ev": "finished", "loop_s": 6.5, "t": 106.1},
    ]
    run = RunFacts(
        config=LoaderConfig(batch_size=4, num_workers=0),
        dataset={"num_frames": 4},
        batches=50,
        fault=None,
        sandbox=None,
        mem_mode=None,
        limits={},
        events=events,
        fired=None,
        stuck=None,
        returncode=0,
        monitor=_Monitor(),
        work=tmp_path,
        leaked={},
        facts={},  # type: ignore[arg-type]
        started_at="2026-01-01T00:00:00+00:00",
        wall_s=8.0,
        name="t",
        t_exit=107.0,
    )
    rec = single_record(run)
    assert rec["status"] == "passed"  # the window, not the 50 batches asked for, is what was wanted
    m = rec["metrics"]
    assert m["window_stopped"] == "time" and m["interval_batches"] == 8
    assert m["videos_per_s"] == pytest.approx(4 / 0.5)
    assert rec["stacks"] == ""  # no stacks.txt: nothing dumped


def test_the_rate_is_the_intervals_own_point() -> None:
    # 2 workers: a round is one long wait and one short one; 13 steady batches hold 6 whole rounds and one
    # extra oldest batch, which the point (stats: over whole rounds) leaves out with the interval
    waits = [3.0] + [0.9] + [1.0, 0.0] * 6
    m = batch_metrics(_batches(waits), workers=2)
    iv = rate_interval([4] * 13, waits[1:], round_size=2)
    assert iv is not None and m["videos_per_s"] == iv.rate == pytest.approx(48 / 6.0)
    assert m["videos_per_s_interval"] == iv.as_list()


# --------------------------------------------------------------------------- one throughput: the loop's wall time


def test_with_a_step_the_rate_is_videos_over_the_loops_wall_time() -> None:
    # a loader that keeps up with a 50 ms step: the loop received 4 videos per (wait + step), whatever the waits
    waits = [2.0] + [0.002, 0.0, 0.004] * 8
    batch_events = _batches(waits, step=0.05)
    m = batch_metrics(batch_events)
    walls = [w + 0.05 for w in waits[1:]]
    assert batch_walls(batch_events)[1:] == pytest.approx(walls)
    assert m["videos_per_s"] == pytest.approx(4 * 24 / sum(walls))
    assert m["videos_per_s"] <= 4 / 0.05  # the step-bound rate: no loop with this step receives more
    assert m["videos_per_s"] < 4 * 24 / sum(waits[1:])  # what videos over summed waits would have claimed
    assert m["wait_fraction"] == pytest.approx(sum(waits[1:]) / sum(walls)) and m["bound"] == "step"
    iv = rate_interval([4] * 24, walls)
    assert iv is not None and m["videos_per_s_interval"] == pytest.approx(iv.as_list())
    # a W = 0 run's decode rate is still the waits': videos over the time spent decoding
    assert single_process_rate(m) == pytest.approx(4 * 24 / sum(waits[1:]))


def test_a_data_bound_loop_with_a_step_is_data_bound() -> None:
    waits = [2.0] + [0.4] * 12
    m = batch_metrics(_batches(waits, step=0.1))
    assert m["wait_fraction"] == pytest.approx(0.4 / 0.5) and m["bound"] == "data"
    assert m["videos_per_s"] == pytest.approx(4 / 0.5)


def test_a_windows_first_wall_is_from_the_batch_before_it() -> None:
    # 3 warm-up batches, then a 12-batch window: the window's first batch waited 0.1 s after the 0.3 s step
    # that followed the last warm-up batch; the record keeps that step in, as the child's window does
    waits = [5.0, 1.0, 1.0] + [0.1] * 12
    batch_events = _batches(waits, step=0.3)
    spec = MeasureSpec(warmup_batches=3, min_batches=100, max_batches=len(waits), max_s=1e9, target_rel=1e-9, min_s=0.0)
    w = Window(spec, opened=0.0)
    for e in batch_events:
        w.add(4, e["wait_s"], now=e["t"])
    m = batch_metrics(batch_events, window=12)
    assert w.seconds == pytest.approx([0.4] * 12)
    assert m["videos_per_s"] == pytest.approx(48 / 4.8) == pytest.approx(w.result("batches")["rate"])


@settings(max_examples=80, deadline=None)
@given(
    waits=st.lists(st.one_of(st.just(0.0), st.floats(min_value=1e-6, max_value=2.0)), min_size=7, max_size=40),
    step=st.floats(min_value=0.0, max_value=1.0),
    workers=st.integers(0, 4),
)
def test_the_rate_is_never_above_the_waits_rate_nor_the_step_bound(
    waits: list[float], step: float, workers: int
) -> None:
    batch_events = _batches([1.0, *waits], step=step)
    m = batch_metrics(batch_events, workers=workers)
    if "videos_per_s" not in m:
        return  # the batches took no time (no step, zero waits): no rate, and nothing to compare
    v = m["videos_per_s"]
    whole = len(waits) - len(waits) % max(1, workers)
    iv = rate_interval([4] * len(waits), batch_walls(batch_events)[1:], round_size=workers)
    used = waits[len(waits) - whole :] if iv else waits
    if sum(used) > 0:
        assert v <= 4 * len(used) / sum(used) * (1 + 1e-9)  # the loop's time per batch is at least its wait
    if step > 0:
        assert v <= 4 / step * (1 + 1e-9)  # ... and at least the step
    assert 0.0 <= m["wait_fraction"] <= 1.0 + 1e-9
