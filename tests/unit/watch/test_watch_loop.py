"""watch(loader) over real loops with real DataLoader workers: each finding on the case it names.

Assertions are on findings and log events, never on wall-clock figures; sleeps only make one side of
the loop slower than the other by a wide margin.
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

from ssv2_fixtures.run.sandbox import Sandbox, unavailable
from ssv2_fixtures.watch import read_log, watch
from ssv2_fixtures.watch.findings import DATA_BOUND_FRACTION

INTERVAL = 0.05


class Tiny(Dataset[Any]):
    def __init__(self, n: int = 400, sleep_s: float = 0.0) -> None:
        self.n, self.sleep_s = n, sleep_s

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        if self.sleep_s:
            time.sleep(self.sleep_s)
        return torch.full((4,), float(i)), i


_LEAK: list[Any] = []   # a worker's own copy (fork): grows in the worker only


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


def test_slow_step_is_not_data_bound(tmp_path: Path) -> None:
    dl = DataLoader(Tiny(400), batch_size=4, num_workers=2)
    w = watch(dl, log=tmp_path / "w.jsonl", interval_s=0.2, tmpdir=tmp_path)
    for step, _batch in enumerate(w):
        # the training step: far slower than the loader's trivial items, with room for a loaded
        # machine's scheduling delays (tens of ms on 2 shared cores)
        time.sleep(0.12)
        if step == 30:
            break
    s = w.summary()
    assert s["wait_fraction"] is not None and s["wait_fraction"] < DATA_BOUND_FRACTION
    assert "data_bound" not in kinds(w)


def test_no_step_with_one_slow_worker_is_data_bound(tmp_path: Path) -> None:
    dl = DataLoader(Tiny(400, sleep_s=0.01), batch_size=2, num_workers=1)
    w = watch(dl, log=tmp_path / "w.jsonl", interval_s=INTERVAL, tmpdir=tmp_path)
    for step, _batch in enumerate(w):
        if step == 40:
            break
    s = w.summary()
    assert s["wait_fraction"] is not None and s["wait_fraction"] > 0.5
    f = next(f for f in w.findings if f["kind"] == "data_bound")
    assert "num_workers" in f["remedy"] and "pytest -m tune" in f["remedy"]
    logged = [e for e in read_log(tmp_path / "w.jsonl") if e["ev"] == "finding"]
    assert [e["kind"] for e in logged].count("data_bound") == 1


def _loop_until(w: Any, kind: str, steps: int, sleep_s: float = 0.01) -> int:
    for step, _batch in enumerate(w):
        time.sleep(sleep_s)
        if kind in kinds(w) or step >= steps:
            return step
    return -1


def _finding(tmp_path: Path, ds: Any, kind: str, steps: int, *, batch_size: int = 2,
             workers: int = 2) -> dict[str, Any]:
    """Train-loop over a watched loader of ``ds`` until ``kind`` is found (or ``steps`` pass); that finding."""
    dl = DataLoader(ds, batch_size=batch_size, num_workers=workers)
    w = watch(dl, log=tmp_path / "w.jsonl", interval_s=INTERVAL, tmpdir=tmp_path)
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
    assert w._failed_exc is info.value          # the very exception the loader raised
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
    w = watch(DataLoader(Tiny(40), batch_size=4, num_workers=1), log=log, interval_s=INTERVAL,
              tmpdir=tmp_path, name="schema")
    for _b in w:
        time.sleep(0.01)
    events = read_log(tmp_path / "w-3.jsonl")
    assert all(e["rank"] == 3 and isinstance(e["t"], float) for e in events)
    assert events[0]["ev"] == "start" and events[0]["name"] == "schema" and events[0]["schema"] == 1
    assert events[0]["config"]["num_workers"] == 1 and events[0]["config"]["batch_size"] == 4
    samples = [e for e in events if e["ev"] == "sample"]
    assert samples
    for key in ("step", "loop_s", "wait_s", "videos", "rss", "pss", "workers_rss", "fds", "fds_max",
                "threads", "workers", "worker_restarts", "shm_used", "shm_free", "tmp_files", "tmp_bytes",
                "batch_bytes", "wait_fraction"):
        assert key in samples[-1], key
    last = events[-1]
    assert last["ev"] == "summary"
    for key in ("steps", "videos_per_s", "wait_fraction", "rss_peak_bytes", "shm_peak_bytes", "fds_peak",
                "findings"):
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

w = watch(DataLoader(Growing(), batch_size=1, num_workers=1, prefetch_factor=2), log=sys.argv[1],
          interval_s=0.02, tmpdir=sys.argv[2])
err = None
try:
    for b in w:
        time.sleep(0.1)
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
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", body, "watch-shm",
                        sys.executable, str(script), str(log), str(tmp_path)],
                       capture_output=True, text=True, timeout=240, cwd=Path(__file__).parents[3])
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
