"""The watch's decision rules on plain series, without processes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ssv2_fixtures.run.growth import LEAK_MIN_BYTES
from ssv2_fixtures.run.outcome import Evidence, kind
from ssv2_fixtures.watch import findings as f

MB = 2**20


def test_trend_needs_a_steady_rise() -> None:
    steps = list(range(0, 100, 5))
    assert f.trend(steps, [100.0] * len(steps)) is None  # flat
    assert f.trend(steps, [float(s % 20) for s in steps]) is None  # sawtooth (epoch restarts)
    assert f.trend(steps[:4], [1.0, 2.0, 3.0, 4.0]) is None  # too few samples
    tr = f.trend(steps, [10.0 + 2 * s for s in steps])
    assert tr is not None and abs(tr.slope - 2.0) < 1e-9 and tr.end_step == 95


@settings(max_examples=60, deadline=None)
@given(st.floats(0.5, 50.0), st.lists(st.floats(-0.4, 0.4), min_size=20, max_size=20))
def test_trend_slope_of_a_noisy_line(slope: float, noise: list[float]) -> None:
    steps = list(range(0, 200, 10))
    tr = f.trend(steps, [1000 + slope * s + n * slope * 10 for s, n in zip(steps, noise)])
    assert tr is not None and abs(tr.slope - slope) < slope * 0.5


def test_window_wait_fraction_leaves_out_the_first_batch() -> None:
    # batch 0 waits 10 s (worker start-up), then 20 steps of 1 s each with 0.5 s of waiting
    starts, ends = [0.0], [10.0]
    for _ in range(20):
        starts.append(ends[-1] + 0.5)
        ends.append(starts[-1] + 0.5)
    w = f.window_wait_fraction(starts, ends)
    assert w is not None and abs(w[0] - 0.5) < 1e-9 and w[1] == 20
    assert f.window_wait_fraction(starts[:5], ends[:5]) is None  # too few steps


def test_data_bound_threshold_and_remedy() -> None:
    def loop(wait: float, step: float, n: int = 30) -> tuple[list[float], list[float]]:
        s, e, t = [], [], 0.0
        for _ in range(n):
            s.append(t)
            t += wait
            e.append(t)
            t += step
        return s, e

    assert f.data_bound(*loop(0.01, 0.09), num_workers=2, cores=8) is None  # waits 10 %
    found = f.data_bound(*loop(0.05, 0.05), num_workers=2, cores=8)  # waits 50 %
    assert found is not None and found["kind"] == "data_bound"
    assert "toward the 8 cores" in found["remedy"]
    at_cores = f.data_bound(*loop(0.05, 0.05), num_workers=8, cores=8)
    assert at_cores is not None and "will not help" in at_cores["remedy"]


def test_rss_growth_uses_the_stress_leak_floor() -> None:
    steps = list(range(0, 100, 5))
    small = [1000 * MB + s * (LEAK_MIN_BYTES / 200) for s in steps]  # grows half the floor
    assert f.rss_growth(steps, small, available_bytes=8 * 2**30) is None
    big = [500 * MB + s * 4 * MB for s in steps]
    found = f.rss_growth(steps, big, available_bytes=8 * 2**30, step_s=0.5)
    assert found is not None and "run out in" in found["detail"] and "pytorch#13246" in found["remedy"]


def test_shm_headroom_uses_the_stress_shm_remedy() -> None:
    cfg = dict(num_workers=2, prefetch_factor=2, batch_size=8)
    assert f.shm_headroom(100 * MB, 10 * MB, step=3, **cfg) is None
    assert f.shm_headroom(10 * MB, 10 * MB, step=3, num_workers=0, prefetch_factor=None, batch_size=8) is None
    found = f.shm_headroom(20 * MB, 10 * MB, step=3, **cfg)
    assert found is not None and found["step"] == 3
    expected = kind("shm_exhausted").remedy(
        Evidence(
            facts={"shm_need_bytes": 50 * MB, "shm_free_bytes": 20 * MB, "ranks": 1},
            config={"num_workers": 2, "prefetch_factor": 2, "batch_size": 8},
        )
    )
    assert found["remedy"] == expected  # the one remedy text, not a copy; its sizes in IEC names
    assert "MiB" in found["remedy"] and " MB" not in found["remedy"] + found["detail"]


def test_fd_growth_projects_emfile() -> None:
    steps = list(range(0, 100, 5))
    assert f.fd_growth(steps, [40.0 + (s % 3) for s in steps], nofile=1024) is None
    found = f.fd_growth(steps, [40.0 + s for s in steps], nofile=1024)  # 40 + step reaches 1024 at 984
    assert found is not None and "EMFILE (ulimit -n 1024) at step ~984" in found["detail"]


def test_tmp_growth_by_files_or_bytes() -> None:
    steps = list(range(0, 100, 5))
    zero = [0.0] * len(steps)
    assert f.tmp_growth(steps, [float(s // 50) for s in steps], zero, tmpdir="/t", free_bytes=None) is None
    by_files = f.tmp_growth(
        steps, [float(s) for s in steps], zero, tmpdir="/t", free_bytes=None, strategy="file_system"
    )
    assert by_files is not None and "set_sharing_strategy('file_descriptor')" in by_files["remedy"]
    by_bytes = f.tmp_growth(steps, zero, [s * 2.0 * MB for s in steps], tmpdir="/t", free_bytes=2**30)
    assert by_bytes is not None and "fill in" in by_bytes["detail"]


def test_failure_is_classified_by_the_outcome_rules() -> None:
    err: dict[str, object] = {
        "type": "RuntimeError",
        "message": "DataLoader worker (pid 12) is killed by signal: Killed.",
        "traceback": "",
        "errno": None,
    }
    found = f.failure(err, step=7, config={}, facts={})
    assert found["kind"] == "worker_killed" and found["step"] == 7 and found["failure"] is True
    err = {"type": "OSError", "message": "[Errno 24] Too many open files", "traceback": "", "errno": 24}
    assert f.failure(err, step=1, config={}, facts={"nofile": 256})["kind"] == "fd_exhausted"


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5000), st.integers(4, 64))
def test_series_stays_bounded_and_evenly_spaced(n: int, limit: int) -> None:
    ser = f.Series(limit=limit)
    for i in range(n):
        ser.add(i * 3, float(i))
    assert 1 <= len(ser.steps) <= limit and ser.steps[0] == 0
    gaps = {b - a for a, b in zip(ser.steps, ser.steps[1:])}
    assert len(gaps) <= 1  # one spacing over the whole run: a trend still sees all of it
    assert (n - 1) * 3 - ser.steps[-1] < 3 * ser.stride  # the newest kept point is recent


def test_trend_over_a_decimated_series_keeps_its_slope() -> None:
    ser = f.Series(limit=50)
    for i in range(2000):
        ser.add(i, 100.0 + 2.0 * i)
    tr = f.trend(ser.steps, ser.values)
    assert tr is not None and abs(tr.slope - 2.0) < 1e-9 and len(ser.steps) <= 50
