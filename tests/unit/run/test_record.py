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

from ssv2_fixtures.run.record import batch_metrics, json_safe, peak_metrics, write_atomic
from ssv2_fixtures.run.monitor import Peaks
from ssv2_fixtures.run.stats import percentile, rate_interval
from ssv2_fixtures.run.units import fmt_bytes


def _batches(waits: list[float], videos: int = 4, rank: int | None = None, t0: float = 100.0,
             **extra: Any) -> list[dict[str, Any]]:
    out, t = [], t0
    for i, w in enumerate(waits):
        t += w
        ev = {"ev": "batch", "i": i, "t": t, "wait_s": w, "videos": videos, **extra}
        if rank is not None:
            ev["rank"] = rank
        out.append(ev)
    return out


def test_rates_count_the_batches_after_the_first() -> None:
    bev = _batches([5.0] + [0.5] * 11)
    m = batch_metrics(bev, started={"t": 90.0}, finished={"loop_s": 11.5}, num_frames=16)
    assert m["batches"] == 12 and m["videos"] == 48
    assert m["first_batch_s"] == 5.0 and m["startup_s"] == pytest.approx(15.0)
    assert m["videos_per_s"] == pytest.approx(44 / 5.5) and m["frames_per_s"] == pytest.approx(16 * 44 / 5.5)
    assert m["loop_videos_per_s"] == pytest.approx(44 / 5.5)  # the span from the first batch to the last
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
    bev = _batches([0.2] * 6, clips=8, bytes=1000, shape=[8, 16, 224, 224, 3], dtype="torch.uint8")
    bev[-1].update(clips=3, bytes=10, shape=[3, 16, 224, 224, 3])  # a short last batch does not decide
    m = batch_metrics(bev, ready={"dataset_len": 12}, finished={"loop_s": 1.2, "split_size": 12,
                                                                "distinct_videos": 9})
    assert m["bytes_per_batch"] == 1000 and m["clips_per_batch"] == 8
    assert m["batch_shape"] == [8, 16, 224, 224, 3] and m["batch_dtype"] == "torch.uint8"
    assert m["split_size"] == 12 and m["distinct_videos"] == 9


def test_events_without_contents_leave_them_out() -> None:
    m = batch_metrics(_batches([0.2] * 3))
    assert not {"bytes_per_batch", "clips_per_batch", "batch_shape", "batch_dtype"} & set(m)


def test_ranks_each_have_their_first_batch() -> None:
    """Merged events of two ranks: each rank's first batch is start-up, not steady state."""
    bev = sorted(_batches([3.0, 1.0, 1.0], rank=0) + _batches([4.0, 1.0, 1.0], rank=1), key=lambda e: e["t"])
    m = batch_metrics(bev)
    assert m["videos_per_s"] == pytest.approx(16 / 4.0)
    assert m["loop_videos_per_s"] == pytest.approx(16 / (106.0 - 103.0))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=1e-3, max_value=5.0), min_size=2, max_size=40))
def test_wait_percentiles_are_the_stats_rule(waits: list[float]) -> None:
    m = batch_metrics(_batches(waits))
    steady = [w * 1000 for w in waits[1:]]
    assert m["wait_ms_p95"] == pytest.approx(percentile(steady, 95))
    assert m["wait_ms_p50"] <= m["wait_ms_p95"] <= m["wait_ms_p99"] <= max(steady) + 1e-9


def test_peaks_and_leaks() -> None:
    m = peak_metrics(Peaks(rss_bytes=5, procs=3), {"leaked_shm_files": 1})
    assert m["rss_peak_bytes"] == 5 and m["procs_peak"] == 3 and m["leaked_shm_files"] == 1


def test_numpy_values_are_plain_json_never_strings(tmp_path: Path) -> None:
    data = {"ok": np.bool_(False), "n": np.int64(3), "x": np.float32(0.5), "arr": np.arange(3),
            "t": (1, 2), "p": tmp_path, "nested": [{"ok": np.bool_(True)}]}
    safe = json_safe(data)
    assert safe == {"ok": False, "n": 3, "x": 0.5, "arr": [0, 1, 2], "t": [1, 2], "p": str(tmp_path),
                    "nested": [{"ok": True}]}
    assert type(safe["ok"]) is bool and type(safe["n"]) is int
    write_atomic(tmp_path / "r.json", data)
    back = json.loads((tmp_path / "r.json").read_text())
    assert back["ok"] is False and back["nested"][0]["ok"] is True and back["n"] == 3
    assert json_safe(math.inf) == math.inf


@pytest.mark.parametrize("n, text", [(None, "?"), (100, "100 B"), (12 * 1024, "12 KB"), (385 * 2**20, "385 MB"),
                                     (1.5 * 2**30, "1.5 GB")])
def test_fmt_bytes(n: float | None, text: str) -> None:
    assert fmt_bytes(n) == text


def test_a_measured_window_gives_the_rate_and_interval_of_its_own_batches():
    # start-up, 3 slow warm-up batches, then a steady 20-batch window: the window's rate, not a blend
    bev = _batches([5.0] + [2.0] * 3 + [0.5] * 20)
    whole, window = batch_metrics(bev), batch_metrics(bev, window=20)
    assert window["videos_per_s"] == pytest.approx(8.0) and whole["videos_per_s"] < 7.0
    assert window["interval_batches"] == 20 and window["videos_per_s_interval"] == pytest.approx([8.0, 8.0])
