"""monitor.py: the pure readers on files made here (exact), and TreeMonitor sampling a real small process
tree (a python process and the ``sleep`` it started) — asserting on fields and their consistency, never on
counts that depend on when a sample was taken."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ssv2_fixtures.run import monitor as monitor_mod
from ssv2_fixtures.run.monitor import (
    Sample,
    TreeMonitor,
    decimate,
    dir_usage,
    fs_used_free,
    shm_torch_files,
    tmp_usage,
)

_TREE = "import subprocess, time; p = subprocess.Popen(['sleep', '60']); print(p.pid, flush=True); time.sleep(60)"


@pytest.fixture
def tree() -> Iterator[tuple[int, int]]:
    """(root pid, pid of the sleep it started); both ended afterwards."""
    root = subprocess.Popen([sys.executable, "-c", _TREE], stdout=subprocess.PIPE, text=True)
    assert root.stdout is not None
    child = int(root.stdout.readline())
    try:
        yield root.pid, child
    finally:
        for pid in (child, root.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        root.wait()


def test_tmp_usage_leaves_multiprocessings_folders_out(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"x" * 5000)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.bin").write_bytes(b"y" * 10)
    (tmp_path / "pymp-abc123").mkdir()
    (tmp_path / "pymp-abc123" / "listener").write_bytes(b"")
    files, size, mp = tmp_usage(tmp_path)
    assert (files, mp) == (2, 1)
    assert size == dir_usage(tmp_path / "sub")[1] + (tmp_path / "a.bin").stat().st_blocks * 512
    assert tmp_usage(tmp_path / "gone") == (0, 0, 0) and dir_usage(tmp_path / "gone") == (0, 0)


def test_shm_torch_files_are_only_those_of_the_given_pids(tmp_path: Path) -> None:
    for name in ("torch_100_1", "torch_100_2", "torch_200_1", "other_100_1"):
        (tmp_path / name).write_bytes(b"")
    assert sorted(p.name for p in shm_torch_files(tmp_path, {100})) == ["torch_100_1", "torch_100_2"]
    assert len(shm_torch_files(tmp_path)) == 3
    assert shm_torch_files(tmp_path / "gone") == []


def test_fs_used_free_is_consistent(tmp_path: Path) -> None:
    total, used, free = fs_used_free(tmp_path)
    assert total > 0 and 0 <= used <= total and 0 <= free <= total
    assert total == psutil.disk_usage(str(tmp_path)).total  # the same filesystem psutil reads


def _sample(t: float, rss: int) -> Sample:
    return Sample(t, rss, 0, 0, 0, 0, 0, 0, 1, 0, 0, [(1, "p", rss)])


@given(st.lists(st.integers(0, 10**9), min_size=0, max_size=60))
def test_decimate_halves_and_keeps_the_larger_rss_of_each_pair(rss: list[int]) -> None:
    samples = [_sample(float(i), r) for i, r in enumerate(rss)]
    out = decimate(samples)
    assert len(out) == (len(samples) + 1) // 2
    assert [s.t for s in out] == sorted(s.t for s in out)  # order kept
    if samples:
        assert max(s.rss for s in out) == max(rss)  # the peak survives
    for k, s in enumerate(out):
        pair = samples[2 * k : 2 * k + 2]
        assert s.rss == max(x.rss for x in pair) and s in pair


def test_the_sample_list_is_bounded_and_ends_with_the_newest(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(monitor_mod, "MAX_SAMPLES", 16)
    mon = TreeMonitor(os.getpid(), tmp_path, shm_dir=str(tmp_path))
    for i in range(200):
        mon._keep(_sample(float(i), 1000 + (i * 37) % 101))
        assert len(mon.samples) <= 16 and mon.samples[-1].t == float(i)
    assert max(s.rss for s in mon.samples) == max(1000 + (i * 37) % 101 for i in range(200))


def test_samples_of_a_live_tree_are_consistent(tree: tuple[int, int], tmp_path: Path) -> None:
    root, child = tree
    shm = tmp_path / "shm"
    shm.mkdir()
    (shm / f"torch_{root}_0").write_bytes(b"")
    (shm / "torch_1_0").write_bytes(b"")  # someone else's: never counted
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    (tmp / "clip.bin").write_bytes(b"z" * 8192)
    mon = TreeMonitor(root, tmp, interval=0.05, shm_dir=str(shm))
    samples = [mon.sample() for _ in range(3)]
    assert all(s is not None for s in samples)
    assert mon.samples[0].full  # the first sample reads PSS/USS
    for s in mon.samples:
        assert s.procs == len(s.per_process) and s.procs >= 1
        assert s.rss == sum(rss for _, _, rss in s.per_process) and s.rss > 0
        if s.full:
            assert 0 < s.uss <= s.rss
        assert {pid for pid, _, _ in s.per_process} <= set(mon.seen)
        assert s.shm_files == 1 and s.tmp_files == 1 and s.tmp_bytes >= 8192 and s.tmp_seen
    # the two processes the test made are in the tree as observed, with their parent chain
    assert root in mon.seen and child in mon.seen and mon.parents[child] == root
    assert mon.names[child] == "sleep"
    pk = mon.peaks
    assert pk.rss_bytes == max(s.rss for s in mon.samples) and pk.procs == max(s.procs for s in mon.samples)
    assert pk.fds >= max(s.fds for s in mon.samples) > 0 and pk.threads >= 1
    series = mon.series()
    assert {len(v) for v in series.values()} == {3} and series["t"][0] == 0.0
    assert series["t"] == sorted(series["t"])
    assert mon.last_tmp_reading() is mon.samples[-1]
    assert {p.pid for p in mon.alive_tree()} == {root, child}


def test_pss_is_read_only_every_full_interval_and_held_between(
    tree: tuple[int, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = tree
    monkeypatch.setattr(monitor_mod, "FULL_EVERY_S", 3600.0)
    monkeypatch.setattr(monitor_mod, "FULL_ON_RSS_RISE", float("inf"))  # only the interval decides here
    mon = TreeMonitor(root, tmp_path, shm_dir=str(tmp_path))
    first, second = mon.sample(), mon.sample()
    assert first is not None and second is not None
    assert first.full and not second.full
    assert (second.pss, second.uss) == (first.pss, first.uss) and first.uss > 0
    assert (mon.peaks.pss_bytes, mon.peaks.uss_bytes) == (first.pss, first.uss)
    monkeypatch.setattr(monitor_mod, "FULL_EVERY_S", 0.0)
    third = mon.sample()
    assert third is not None and third.full


def test_a_new_rss_peak_reads_pss_at_once(
    tree: tuple[int, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = tree
    monkeypatch.setattr(monitor_mod, "FULL_EVERY_S", 3600.0)
    mon = TreeMonitor(root, tmp_path, shm_dir=str(tmp_path))
    assert mon.sample() is not None
    mon.peaks.rss_bytes = 1  # as if the tree had used 1 byte so far: the next sample is a new peak
    s = mon.sample()
    assert s is not None and s.full


def test_the_monitor_thread_samples_until_stopped(tree: tuple[int, int], tmp_path: Path) -> None:
    root, _ = tree
    mon = TreeMonitor(root, tmp_path, interval=0.02, shm_dir=str(tmp_path)).start()
    try:
        for _ in range(500):  # waits for the thread's first sample (no timing is asserted)
            if mon.samples:
                break
            time.sleep(0.01)
    finally:
        mon.stop()
    n = len(mon.samples)
    assert n >= 1 and not mon._thread.is_alive()
    time.sleep(0.1)
    assert len(mon.samples) == n  # stopped means stopped


def test_a_gone_tree_gives_no_sample_and_no_alive_processes(tree: tuple[int, int], tmp_path: Path) -> None:
    root, child = tree
    mon = TreeMonitor(root, tmp_path, shm_dir=str(tmp_path), private_tmp=True)
    assert mon.sample() is not None  # an emulated TMPDIR is read through /proc/<pid>/root of the tree
    assert mon.samples[-1].tmp_seen
    for pid in (child, root):
        os.kill(pid, signal.SIGKILL)
    os.waitpid(root, 0)
    for _ in range(500):  # SIGKILL is delivered asynchronously; a killed, unreaped sleep is a zombie
        if not mon.alive_tree():
            break
        time.sleep(0.01)
    assert mon.alive_tree() == []
    assert mon.sample() is None
