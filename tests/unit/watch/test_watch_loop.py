"""watch(loader) over loops: each finding on the case it names.

Assertions are on findings and log events, never on wall-clock figures or on how many readings a
thread happened to take: the wait/step timings come from an injected clock (``clock=``), and the
resource readings are taken at fixed steps (``background=False`` + ``poll()``), from real DataLoader
workers where the finding is about them, from a scripted sampler where it is about the rule.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from ssv2_fixtures.run.growth import LEAK_MIN_BYTES
from ssv2_fixtures.run.sandbox import Sandbox, unavailable
from ssv2_fixtures.watch import read_log, watch
from ssv2_fixtures.watch.core import SAMPLES_KEPT
from ssv2_fixtures.watch.findings import DATA_BOUND_FRACTION, SERIES_POINTS

INTERVAL = 0.05
POLL_EVERY = 5  # steps between readings where the test takes them itself


class Clock:
    """The watch's step clock, advanced by the test: waits and steps take exactly what it says."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Timed:
    """A loader of ``n`` batches of ``batch_size`` whose next() takes ``wait_s`` on ``clock``."""

    def __init__(self, clock: Clock, n: int, wait_s: float, batch_size: int = 4, num_workers: int = 2) -> None:
        self.clock, self.n, self.wait_s = clock, n, wait_s
        self.batch_size, self.num_workers = batch_size, num_workers

    def __iter__(self) -> Any:
        for i in range(self.n):
            self.clock.t += self.wait_s
            yield torch.full((self.batch_size, 2), float(i))


class Scripted:
    """A sampler whose readings the test writes: ``values(reading index) -> fields``."""

    def __init__(self, values: Any) -> None:
        self.values, self.i = values, 0
        self.workers_peak = 0

    baseline = None  # no TMPDIR walk: the scripted readings say everything

    def sample(self, light: bool = False) -> dict[str, Any]:
        self.i += 1
        base = {
            "rss": 0,
            "pss": 0,
            "main_rss": 0,
            "main_pss": 0,
            "workers_rss": 0,
            "workers_pss": 0,
            "fds": 10,
            "fds_max": 10,
            "threads": 1,
            "workers": 2,
            "worker_restarts": 0,
            "shm_used": 0,
            "shm_free": 2**40,
            "shm_total": 2**40,
            "tmp_files": 0,
            "tmp_bytes": 0,
            "tmp_free": 2**40,
        }
        return {**base, **self.values(self.i)}

    def forget(self) -> None:
        pass


class Tiny(Dataset[Any]):
    def __init__(self, n: int = 400, sleep_s: float = 0.0) -> None:
        self.n, self.sleep_s = n, sleep_s

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        if self.sleep_s:
            time.sleep(self.sleep_s)
        return torch.full((4,), float(i)), i


_LEAK: list[Any] = []  # a worker's own copy (fork): grows in the worker only


class Leaky(Tiny):
    def __getitem__(self, i: int) -> Any:
        _LEAK.append(b"\x01" * (4 * 2**20))  # touched pages: resident, not just reserved
        time.sleep(0.002)
        return super().__getitem__(i)


class TempWriter(Tiny):
    def __init__(self, tmpdir: str, n: int = 400) -> None:
        super().__init__(n)
        self.tmpdir = tmpdir

    def __getitem__(self, i: int) -> Any:
        fd, _ = tempfile.mkstemp(dir=self.tmpdir, prefix="item-")
        os.write(fd, b"x" * 4096)
        os.close(fd)
        time.sleep(0.002)
        return super().__getitem__(i)


class FdLeaker(Tiny):
    def __getitem__(self, i: int) -> Any:
        _LEAK.append(open(os.devnull, "rb"))  # never closed
        time.sleep(0.002)
        return super().__getitem__(i)


def kinds(w: Any) -> list[str]:
    return [f["kind"] for f in w.findings]


def test_yields_exactly_the_loaders_batches(tmp_path: Path) -> None:
    dl = DataLoader(Tiny(40), batch_size=4, num_workers=2)
    plain = [b for b in dl]
    w = watch(dl, log=tmp_path / "w.jsonl", interval_s=INTERVAL, tmpdir=tmp_path)
    got = [b for b in w]
    assert len(got) == len(plain) == 10
    for a, b in zip(got, plain):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    s = w.summary()
    assert s["steps"] == 10 and s["videos"] == 40


def test_short_last_batch_is_counted(tmp_path: Path) -> None:
    w = watch(DataLoader(Tiny(10), batch_size=4), interval_s=INTERVAL, tmpdir=tmp_path)
    assert len(list(w)) == 3
    assert w.summary()["videos"] == 10


def _timed_loop(tmp_path: Path, wait_s: float, step_s: float, steps: int = 40) -> Any:
    clock = Clock()
    w = watch(Timed(clock, steps, wait_s), log=tmp_path / "w.jsonl", tmpdir=tmp_path, clock=clock, background=False)
    for step, _batch in enumerate(w):
        clock.t += step_s  # the training step
        if step % POLL_EVERY == 0:
            w.poll()
    return w


def test_slow_step_is_not_data_bound(tmp_path: Path) -> None:
    w = _timed_loop(tmp_path, wait_s=0.01, step_s=0.12)
    s = w.summary()
    assert s["wait_fraction"] == pytest.approx(0.01 / 0.13, abs=1e-4)  # rounded to 4 places
    assert s["wait_fraction"] < DATA_BOUND_FRACTION and "data_bound" not in kinds(w)


def test_no_step_loop_waiting_on_the_loader_is_data_bound(tmp_path: Path) -> None:
    w = _timed_loop(tmp_path, wait_s=0.05, step_s=0.0)
    s = w.summary()
    assert s["wait_fraction"] == pytest.approx(1.0)
    f = next(f for f in w.findings if f["kind"] == "data_bound")
    assert "num_workers" in f["remedy"] and "pytest -m tune" in f["remedy"]
    logged = [e for e in read_log(tmp_path / "w.jsonl") if e["ev"] == "finding"]
    assert [e["kind"] for e in logged].count("data_bound") == 1


def test_summary_rate_carries_the_suites_interval(tmp_path: Path) -> None:
    # steps of uneven length: the rate is known exactly, its groups differ (a spread that is not zero)
    clock = Clock()
    steps = [0.1 + 0.01 * (i % 7) for i in range(41)]
    w = watch(Timed(clock, 41, 0.0, batch_size=4, num_workers=2), tmpdir=tmp_path, clock=clock, background=False)
    for step, _batch in enumerate(w):
        clock.t += steps[step]
    s = w.summary()
    assert s["videos_per_s"] == pytest.approx(40 * 4 / sum(steps[:40]), rel=1e-3)
    iv, vps = s["videos_per_s_interval"], s["videos_per_s"]
    assert iv is not None and vps is not None and iv[0] <= vps <= iv[1] and iv[0] < iv[1]


def test_killed_runs_rate_follows_the_summarys_rule(tmp_path: Path) -> None:
    from ssv2_fixtures.report.watch import _summary

    clock = Clock()
    log = tmp_path / "w.jsonl"
    w = watch(Timed(clock, 30, 0.02), log=log, tmpdir=tmp_path, clock=clock, background=False)
    for step, _batch in enumerate(w):
        clock.t += 0.5 if step == 0 else 0.08  # a slow first step: start-up must not count
        w.poll()
    events = [e for e in read_log(log) if e["ev"] != "summary"]  # as a killed run leaves it
    cut = _summary(log, events)
    assert cut["partial"] and cut["videos_per_s"] == pytest.approx(w.summary()["videos_per_s"], rel=1e-3)


def test_sampling_state_is_bounded_over_a_long_run(tmp_path: Path) -> None:
    clock = Clock()
    polls = 2 * SAMPLES_KEPT
    w = watch(Timed(clock, polls, 0.001), tmpdir=tmp_path, clock=clock, background=False)
    w._sampler = Scripted(lambda i: {"fds": 10 + i % 7, "shm_free": 2**30 - i})  # type: ignore[assignment]
    for _batch in w:
        clock.t += 0.01
        w.poll()
    s = w.summary()
    assert len(w.samples) == SAMPLES_KEPT and s["samples"] == polls + 1  # + the one as the loop ends
    assert all(len(ser.steps) <= SERIES_POINTS for ser in w._series.values())
    assert s["fds_peak"] == 16 and s["shm_free_min_bytes"] == 2**30 - (polls + 1)  # peaks over every reading


def test_scripted_rss_growth_is_found_by_the_leak_rule(tmp_path: Path) -> None:
    clock = Clock()
    w = watch(Timed(clock, 200, 0.001), tmpdir=tmp_path, clock=clock, background=False)
    grow = LEAK_MIN_BYTES // 5  # per reading: past the stress leak floor within a few readings
    w._sampler = Scripted(lambda i: {"workers_rss": 512 * 2**20 + i * grow})  # type: ignore[assignment]
    found_at = None
    for step, _batch in enumerate(w):
        clock.t += 0.01
        if step % POLL_EVERY == 0:
            w.poll()
        if "rss_growth" in kinds(w):
            found_at = step
            break
    # the floor is passed after 5 readings of this growth; the trend needs a few more, not the whole run
    assert found_at is not None and found_at <= 10 * POLL_EVERY, found_at
    f = next(f for f in w.findings if f["kind"] == "rss_growth")
    assert "worker tree" in f["detail"] and "numpy" in f["remedy"]


def _loop_until(w: Any, kind: str, steps: int) -> int:
    for step, _batch in enumerate(w):
        if step % POLL_EVERY == 0:
            w.poll()  # a reading at fixed steps: how many there are does not depend on the load
        if kind in kinds(w) or step >= steps:
            return step
    return -1


def _finding(
    tmp_path: Path, ds: Any, kind: str, steps: int, *, batch_size: int = 2, workers: int = 2
) -> dict[str, Any]:
    """Train-loop over a watched loader of ``ds`` until ``kind`` is found (or ``steps`` pass); that finding."""
    dl = DataLoader(ds, batch_size=batch_size, num_workers=workers)
    w = watch(dl, log=tmp_path / "w.jsonl", tmpdir=tmp_path, background=False)
    _loop_until(w, kind, steps)
    f = next((f for f in w.findings if f["kind"] == kind), None)
    assert f is not None, w.summary()
    return dict(f)


def test_leaking_workers_give_rss_growth_within_100_steps(tmp_path: Path) -> None:
    f = _finding(tmp_path, Leaky(400), "rss_growth", 100, batch_size=4)
    assert f["step"] <= 100 and "worker tree" in f["detail"] and "numpy" in f["remedy"]


def test_temp_files_per_item_give_tmp_growth(tmp_path: Path) -> None:
    f = _finding(tmp_path, TempWriter(str(tmp_path), 400), "tmp_growth", 150)
    assert str(tmp_path) in f["detail"] and "TMPDIR" in f["remedy"]


def test_leaking_fds_give_fd_growth(tmp_path: Path) -> None:
    f = _finding(tmp_path, FdLeaker(400), "fd_growth", 150, workers=1)
    assert "EMFILE" in f["detail"] and "ulimit -n" in f["remedy"]


def _as_lists(batch: list[Any]) -> list[Any]:
    return [(t.tolist(), i) for t, i in batch]


def test_killed_worker_reraises_the_original_and_logs_the_kind(tmp_path: Path) -> None:
    log = tmp_path / "w.jsonl"
    # plain lists through the queue: a tensor batch shared by file descriptor races the kill (the
    # dead worker's fd server resets the connection: ConnectionResetError, which also passes through)
    dl = DataLoader(Tiny(400, sleep_s=0.002), batch_size=2, num_workers=2, collate_fn=_as_lists)
    w = watch(dl, log=log, interval_s=INTERVAL, tmpdir=tmp_path)
    with pytest.raises(RuntimeError) as info:
        for step, _batch in enumerate(w):
            time.sleep(0.01)
            if step == 5:
                pids = w.worker_pids()
                assert pids
                os.kill(pids[0], signal.SIGKILL)  # as the OOM killer would
            assert step < 300, "the loader never noticed the killed worker"
    # torch's SIGCHLD handler names the signal; through next() it arrives chained under "exited unexpectedly"
    assert "is killed by signal: Killed" in "".join(traceback.format_exception(info.value))
    assert w._failed_exc is info.value  # the very exception the loader raised
    events = read_log(log)
    fail = [e for e in events if e["ev"] == "finding" and e.get("failure")]
    assert [e["kind"] for e in fail] == ["worker_killed"]
    assert "dmesg" in fail[0]["remedy"]
    i = events.index(fail[0])
    assert events[i - 1]["ev"] == "sample" and events[i - 1].get("final") is True  # the last sample first
    assert events[-1]["ev"] == "summary" and events[-1]["failed"] == "worker_killed"


def test_log_schema_and_rank_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "3")
    log = tmp_path / "w-{rank}.jsonl"
    w = watch(
        DataLoader(Tiny(40), batch_size=4, num_workers=1), log=log, interval_s=INTERVAL, tmpdir=tmp_path, name="schema"
    )
    for _b in w:
        time.sleep(0.01)
    events = read_log(tmp_path / "w-3.jsonl")
    assert all(e["rank"] == 3 and isinstance(e["t"], float) for e in events)
    assert events[0]["ev"] == "start" and events[0]["name"] == "schema" and events[0]["schema"] == 1
    assert events[0]["config"]["num_workers"] == 1 and events[0]["config"]["batch_size"] == 4
    samples = [e for e in events if e["ev"] == "sample"]
    assert samples
    for key in (
        "step",
        "loop_s",
        "wait_s",
        "videos",
        "steady_s",
        "steady_wait_s",
        "steady_videos",
        "rss",
        "pss",
        "workers_rss",
        "fds",
        "fds_max",
        "threads",
        "workers",
        "worker_restarts",
        "shm_used",
        "shm_free",
        "tmp_files",
        "tmp_bytes",
        "batch_bytes",
        "wait_fraction",
    ):
        assert key in samples[-1], key
    last = events[-1]
    assert last["ev"] == "summary"
    for key in (
        "steps",
        "videos_per_s",
        "videos_per_s_interval",
        "wait_fraction",
        "rss_peak_bytes",
        "shm_peak_bytes",
        "fds_peak",
        "findings",
    ):
        assert key in last, key
    assert last["steps"] == w.summary()["steps"] == 10


def test_bad_arguments_say_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="interval_s"):
        watch([1, 2], interval_s=0)
    with pytest.raises(ValueError, match="shm_dir"):
        watch([1, 2], shm_dir=str(tmp_path / "missing"))


SHM_SCRIPT = r"""
import json, sys, time, torch
from torch.utils.data import DataLoader, Dataset
from ssv2_fixtures.watch import watch

class Growing(Dataset):
    # batch i holds (i + 1) × 128 KB: the headroom of a 12 MB /dev/shm shrinks step by step until a
    # batch no longer fits
    def __len__(self): return 200
    def __getitem__(self, i): return torch.ones((i + 1) * 32 * 1024, dtype=torch.float32)

# a reading before every step (no thread): the headroom is read between every two batches
w = watch(DataLoader(Growing(), batch_size=1, num_workers=1, prefetch_factor=2), log=sys.argv[1],
          tmpdir=sys.argv[2], background=False)
err = None
try:
    for b in w:
        w.poll()
except Exception as exc:
    err = type(exc).__name__
print(json.dumps({"error": err, "summary": w.summary()}))
"""


def test_small_private_shm_gives_headroom_before_the_failure(tmp_path: Path) -> None:
    reason = unavailable(Sandbox(shm_bytes=12 * 2**20))
    if reason:
        pytest.skip(f"a private /dev/shm is not permitted here: {reason}")
    log = tmp_path / "w.jsonl"
    script = tmp_path / "shm_case.py"
    script.write_text(SHM_SCRIPT)
    body = f'mount -t tmpfs -o size={12 * 2**20},mode=1777 watch-shm /dev/shm; exec "$@"'
    r = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            body,
            "watch-shm",
            sys.executable,
            str(script),
            str(log),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=Path(__file__).parents[3],
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    found = out["summary"]["findings"]
    head = [f for f in found if f["kind"] == "shm_headroom"]
    assert head, out
    assert "--shm-size=" in head[0]["remedy"]
    # the batch that did not fit: found ahead of it, and classified as the stress suite would
    fail = [f for f in found if f.get("failure")]
    assert out["error"] == "RuntimeError" and [f["kind"] for f in fail] == ["shm_exhausted"]
    assert head[0]["step"] < fail[0]["step"]
