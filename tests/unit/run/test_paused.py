"""run/paused.py: real isolated children paused between windows (SIGSTOP/SIGCONT of their process groups).

Asserts on what the children report (batch receipts, process states, the runs' records), never on rates."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from ssv2_fixtures.data.loader import LoaderConfig
from ssv2_fixtures.run.paused import PausedRuns
from ssv2_fixtures.run.request import RunRequest


def request(root: Path, tmp_path: Path, workers: int, name: str) -> RunRequest:
    return RunRequest(
        str(root),
        LoaderConfig(batch_size=2, num_workers=workers, prefetch_factor=2 if workers else None),
        1_000_000,
        run_dir=tmp_path,
        name=name,
        measure={
            "warmup_batches": 1,
            "min_batches": 1,
            "max_batches": 1_000_000,
            "max_s": 300.0,
            "target_rel": 1e-9,
            "min_s": 300.0,
        },
        hold=False,
    )


def tree_states(pgid: int) -> set[str]:
    procs = [p for p in psutil.process_iter(["pid"]) if _pgid(p.pid) == pgid]
    return {p.status() for p in procs}


def until(condition: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    """Whether ``condition`` holds within ``timeout_s`` (polled: a signal's effect is not instantaneous)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def test_windows_alternate_with_the_others_stopped_and_the_end_ends_every_child(
    synth_root: Path, tmp_path: Path
) -> None:
    reqs = {"w0": request(synth_root, tmp_path, 0, "w0"), "w2": request(synth_root, tmp_path, 2, "w2")}
    with PausedRuns(reqs) as runs:
        assert runs.started == ["w0", "w2"]
        children = runs._children
        pgids = {n: children[n].pgid for n in reqs}
        assert all(isinstance(p, int) for p in pgids.values())
        # both trees (each child and its workers) are stopped between windows: nothing loads, no batch arrives
        assert all(
            p is not None and until(lambda p=p: tree_states(p) == {psutil.STATUS_STOPPED}) for p in pgids.values()
        )
        before = {n: len(children[n].receipts) for n in reqs}
        time.sleep(1.0)
        assert {n: len(children[n].receipts) for n in reqs} == before
        for name in ["w0", "w2", "w2", "w0"]:
            n0 = {n: len(children[n].receipts) for n in reqs}
            rate = runs.window(name, 0.5)
            assert rate is not None and rate > 0
            other = "w2" if name == "w0" else "w0"
            assert len(children[other].receipts) == n0[other]  # the other one stayed stopped
        assert pgids["w2"] is not None and until(lambda: tree_states(pgids["w2"]) == {psutil.STATUS_STOPPED})
    # leaving ended both runs; their records exist and no process of either group is left
    assert set(runs.results) == {"w0", "w2"} and all(r is not None for r in runs.results.values())
    for p in pgids.values():  # an orphaned worker's exit may await pid 1's reaping: a zombie is gone
        assert p is not None and until(lambda p=p: not tree_states(p) - {psutil.STATUS_ZOMBIE})


def test_a_child_that_never_starts_is_not_in_started(synth_root: Path, tmp_path: Path) -> None:
    bad = request(tmp_path / "no-such-root", tmp_path, 0, "bad")
    with PausedRuns({"bad": bad}, startup_timeout_s=60.0) as runs:
        assert runs.started == []
        assert runs.window("bad", 0.5) is None
    assert runs.results["bad"] is not None and not runs.results["bad"].passed
