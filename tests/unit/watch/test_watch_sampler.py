"""The sampler's TMPDIR schedule: walks every TMP_EVERY readings, put off when a walk is slow."""

from __future__ import annotations

import mmap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from ssv2_fixtures.watch import sampler as smp


def test_next_walk_keeps_slow_walks_within_the_duty() -> None:
    assert smp.next_walk_at(100.0, smp.TMP_WALK_FREE_S / 2) == 0.0  # a cheap walk: never put off
    slow = 0.5
    at = smp.next_walk_at(100.0, slow)
    assert slow / (at - 100.0) == pytest.approx(smp.TMP_DUTY)


@pytest.mark.parametrize("walk_s, walks", [(0.0, 3), (0.03, 1)])
def test_sampler_walks_tmpdir_by_the_schedule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, walk_s: float, walks: int
) -> None:
    calls: list[str] = []
    clock = [1000.0]  # the sampler's monotonic clock, advanced only by the walk (no real time)

    def walk(path: Any, **_bounds: Any) -> smp.TmpWalk:
        calls.append(str(path))
        clock[0] += walk_s  # a TMPDIR that takes this long to walk
        return smp.TmpWalk(len(calls), 0, 0, len(calls), walk_s, None, "test")

    monkeypatch.setattr(smp, "walk_tmp", walk)
    monkeypatch.setattr(smp, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    s = smp.Sampler(shm_dir="/dev/shm", tmpdir=str(tmp_path), worker_pids=lambda: [])
    got = [s.sample()["tmp_files"] for _ in range(2 * smp.TMP_EVERY)]
    # the first walk is the base; a cheap TMPDIR is walked again at readings 5 and 10, a slow one
    # not for walk_s / TMP_DUTY seconds, its last count standing in meanwhile
    assert len(calls) == walks and calls[0] == str(tmp_path)
    assert got[-1] == walks - 1


def test_rss_every_reading_pss_on_its_schedule(tmp_path: Path) -> None:
    s = smp.Sampler(shm_dir="/dev/shm", tmpdir=str(tmp_path), worker_pids=lambda: [])
    first = s.sample()
    assert first["main_rss"] > 0 and first["main_pss"] > 0  # the first reading has both
    # fresh anonymous pages, every one written: resident at once (a bytearray may reuse heap memory that
    # an earlier test left resident, and then RSS does not move)
    ballast = mmap.mmap(-1, 64 * 2**20)
    ballast.write(b"\x01" * len(ballast))
    later = [s.sample() for _ in range(smp.PSS_EVERY - 1)]
    assert later[-1]["main_rss"] >= first["main_rss"] + len(ballast) // 2  # statm sees it now
    assert all(r["main_pss"] == first["main_pss"] for r in later)  # PSS not read again yet
    s._pss_next = 0.0  # its duty wait is over (it depends on how long the first read took)
    again = s.sample()  # the next scheduled read
    assert again["main_pss"] >= first["main_pss"] + len(ballast) // 2  # PSS read again: it moved
    ballast.close()


def test_a_dead_worker_counts_only_while_its_iterator_is_live(tmp_path: Path) -> None:
    import subprocess
    import sys

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # exited and reaped: its pid is no live process
    live = [False]
    s = smp.Sampler(shm_dir="/dev/shm", tmpdir=str(tmp_path), worker_pids=lambda: [gone.pid], iter_live=lambda: live[0])
    assert s.sample()["worker_restarts"] == 0  # the iteration ended / is shutting down
    live[0] = True
    assert s.sample()["worker_restarts"] == 1  # died while the iterator ran


def test_new_epochs_workers_are_not_restarts(tmp_path: Path) -> None:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from ssv2_fixtures.watch import watch

    dl = DataLoader(TensorDataset(torch.zeros(16, 2)), batch_size=4, num_workers=2, persistent_workers=False)
    w = watch(dl, tmpdir=tmp_path, background=False)
    for _epoch in range(3):  # three iterators, three pairs of worker pids
        for _batch in w:
            w.poll()
    s = w.summary()
    assert s["steps"] == 12 and s["workers_peak"] == 2 and s["worker_restarts"] == 0
