"""The watch never blocks the training thread: the TMPDIR baseline is the sampling thread's, bounded and
recorded; the first batch's wait is what the loop saw; an unfinished loop ends quietly at exit.

Assertions are on events (which thread walked, whether the first batch had returned, the recorded
baseline), never on wall-clock figures: ``benchmarks/watch_overhead.py --crowded-tmp`` times them.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from ssv2_fixtures.watch import read_log, watch
from ssv2_fixtures.watch import sampler as smp

CROWDED_FILES = 20_000  # where and when the walk runs is what is asserted, at any size; benchmarks/watch_overhead.py
# --crowded-tmp times 200,000 files
WAIT_S = 60.0  # a hook's wait for an event that a correct watch delivers at once; a wrong one fails at it


@pytest.fixture(scope="module")
def crowded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TMPDIR crowded with real (empty) files, as a shared /tmp can be."""
    d = tmp_path_factory.mktemp("crowded")
    fd = os.open(d, os.O_RDONLY)
    try:
        for i in range(CROWDED_FILES):
            os.mknod(f"f{i}", 0o600 | stat.S_IFREG, dir_fd=fd)
    finally:
        os.close(fd)
    return d


def _loader(n: int = 64) -> DataLoader[Any]:
    return DataLoader(TensorDataset(torch.zeros(n, 2)), batch_size=4)


class Walks:
    """``sampler.walk_tmp`` wrapped: each walk records its thread and waits for ``release`` first (a
    walk in the training thread inside next() would wait out WAIT_S and record that it timed out)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.real = smp.walk_tmp
        self.release = threading.Event()
        self.done = threading.Event()
        self.threads: list[str] = []
        self.released: list[bool] = []
        self.results: list[smp.TmpWalk] = []
        monkeypatch.setattr(smp, "walk_tmp", self)

    def __call__(self, path: str, **kw: Any) -> smp.TmpWalk:
        self.threads.append(threading.current_thread().name)
        self.released.append(self.release.wait(WAIT_S))
        r = self.real(path, **kw)
        self.results.append(r)
        self.done.set()
        return r


@pytest.mark.parametrize("where", ["crowded", "empty"])
def test_first_next_leaves_the_tmpdir_baseline_to_the_sampling_thread(
    where: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tmpdir = request.getfixturevalue("crowded") if where == "crowded" else tmp_path / "empty"
    tmpdir.mkdir(exist_ok=True)
    monkeypatch.setattr(smp, "TMP_WALK_MAX_S", 3600.0)  # where the walk runs is tested here, not its bound
    walks = Walks(monkeypatch)
    log = tmp_path / "w.jsonl"
    w = watch(_loader(), log=log, tmpdir=tmpdir, interval_s=0.05)
    it = iter(w)
    next(it)  # the first step: returns without any walk having run in this thread
    walks.release.set()
    assert walks.done.wait(WAIT_S)  # the training step lasts until the baseline is whole
    for _batch in it:
        pass
    s = w.summary()
    # one walk, by the sampling thread, begun after the first batch had returned
    assert walks.threads == ["ssv2-watch"] and walks.released == [True]
    files = CROWDED_FILES if where == "crowded" else 0
    assert walks.results[0].files == files and walks.results[0].cut is None
    assert s["tmp_baseline_entries"] == files and s["tmp_baseline_cut"] is None
    assert s["tmp_baseline_thread"] == "ssv2-watch" and s["tmp_baseline_s"] is not None
    logged = [e for e in read_log(log) if e["ev"] == "sample" and "tmp_baseline_entries" in e]
    assert len(logged) == 1 and logged[0]["tmp_baseline_entries"] == files
    assert s["first_batch_s"] is not None and s["watch_start_s"] is not None
    assert 0 <= s["watch_start_s"] <= s["first_batch_s"]


def test_a_walk_past_its_entry_bound_is_cut_and_tmp_growth_is_not_measured(
    crowded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(smp, "TMP_WALK_MAX_ENTRIES", 1000)
    w = watch(_loader(), log=tmp_path / "w.jsonl", tmpdir=crowded, background=False)
    for _batch in w:
        w.poll()
    s = w.summary()
    assert s["tmp_baseline_cut"] == "entries" and s["tmp_baseline_entries"] == 1001
    samples = [e for e in read_log(tmp_path / "w.jsonl") if e["ev"] == "sample"]
    assert samples and all(e["tmp_files"] is None and e["tmp_bytes"] is None for e in samples)
    assert s["tmp_files_peak"] == 0 and "tmp_growth" not in [f["kind"] for f in w.findings]


def test_a_walk_past_its_time_bound_is_cut(crowded: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(smp, "TMP_WALK_MAX_S", 0.0)  # past it at the first look at the clock
    r = smp.walk_tmp(str(crowded))
    assert r.cut == "time" and r.entries < CROWDED_FILES


def test_a_loop_that_ends_during_the_baseline_stops_the_walk(
    crowded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(smp, "TMP_WALK_MAX_S", 3600.0)
    real = smp.walk_tmp
    begun = threading.Event()

    def held(path: str, *, stop: threading.Event | None = None, **kw: Any) -> smp.TmpWalk:
        begun.set()
        assert stop is not None
        stop.wait(WAIT_S)  # the walk is under way when the loop ends
        return real(path, stop=stop, **kw)

    monkeypatch.setattr(smp, "walk_tmp", held)
    w = watch(_loader(16), tmpdir=crowded, interval_s=0.05)
    for i, _batch in enumerate(w):
        if i == 0:
            assert begun.wait(WAIT_S)
    s = w.summary()
    # the end of the loop stopped the walk: the baseline says so, and no TMPDIR count stands in for it
    assert s["tmp_baseline_cut"] == "stopped" and s["tmp_baseline_entries"] < CROWDED_FILES
    assert w.samples[-1]["tmp_files"] is None


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class SlowStart:
    """A loader whose iter() (its workers starting) takes 0.5 s and each batch 0.1 s, on ``clock``."""

    batch_size, num_workers = 4, 2

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def __iter__(self) -> Any:
        self.clock.t += 0.5
        return self._batches()

    def _batches(self) -> Any:
        for _ in range(5):
            self.clock.t += 0.1
            yield torch.zeros(4, 2)


def test_first_batch_s_is_the_wait_the_loop_saw(tmp_path: Path) -> None:
    clock = Clock()
    w = watch(SlowStart(clock), tmpdir=tmp_path, clock=clock, background=False)
    for _batch in w:
        clock.t += 1.0  # the training step
    s = w.summary()
    assert s["first_batch_s"] == pytest.approx(0.6)  # iter() and the first batch: the start-up counts
    # the loop: from that first next() to the last batch (0.5 + 5 batches of 0.1 + 4 steps of 1.0)
    assert s["wait_ms_p50"] == pytest.approx(100.0) and s["loop_s"] == pytest.approx(5.0)


EXIT_SCRIPT = r"""
import sys, time, torch
from torch.utils.data import DataLoader, TensorDataset
from ssv2_fixtures.watch import watch

log, tmpdir, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])

def loader():
    return DataLoader(TensorDataset(torch.zeros(256, 2)), batch_size=4, num_workers=workers)

# 1. left with break, the iterator kept at module level
held = iter(watch(loader(), log=log, tmpdir=tmpdir, interval_s=0.001, name="held"))
for i, b in enumerate(held):
    if i == 2:
        break

# 2. an iterator in a reference cycle: only the garbage collector frees it, at exit
class Trainer:
    def __init__(self):
        self.me = self
        self.it = iter(watch(loader(), log=log, tmpdir=tmpdir, interval_s=0.001, name="cycle"))
        next(self.it)
Trainer()

# 3. the training step raised; its traceback keeps the suspended loop alive
def train():
    for i, b in enumerate(watch(loader(), log=log, tmpdir=tmpdir, interval_s=0.001, name="raised")):
        if i == 2:
            raise RuntimeError("step failed")
try:
    train()
except RuntimeError as exc:
    kept = exc
time.sleep(0.05)  # the sampling threads are reading (and holding the log's lock) as the process exits
print("exiting")
"""


@pytest.mark.parametrize("workers", [0, 2])
def test_an_unfinished_loop_ends_quietly_at_exit(workers: int, tmp_path: Path) -> None:
    script = tmp_path / "unfinished.py"
    script.write_text(EXIT_SCRIPT)
    log = tmp_path / "w.jsonl"
    r = subprocess.run(
        [sys.executable, str(script), str(log), str(tmp_path), str(workers)],
        capture_output=True,
        text=True,
        timeout=120,  # a hang at exit (a frozen daemon thread holding a lock) fails here
    )
    assert r.returncode == 0 and "exiting" in r.stdout, r.stderr[-3000:]
    assert "Exception ignored" not in r.stderr and "Traceback" not in r.stderr, r.stderr[-3000:]
    summaries = [e for e in read_log(log) if e["ev"] == "summary"]
    # every loop wrote its summary once: with break at once, the others as the process exited
    assert sorted(e["name"] for e in summaries) == ["cycle", "held", "raised"], json.dumps(summaries)[:2000]
