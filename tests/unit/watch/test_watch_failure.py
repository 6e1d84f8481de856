"""Failure handling on its own: a loader error classified and logged once after a final sample, and
the SIGCHLD handler chained and restored (a real signal, sent to this process)."""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest

from ssv2_fixtures.watch.failure import FailureRecord
from ssv2_fixtures.watch.readings import Readings
from ssv2_fixtures.watch.steps import StepRecorder


class Quiet:
    """A sampler whose readings say nothing in particular (the failure is about the error)."""

    baseline = None
    workers_peak = 0

    def sample(self, light: bool = False) -> dict[str, Any]:
        return {"rss": 7, "shm_free": 2**30, "shm_total": 2**31, "tmp_free": 2**32}


def _record(tmp_path: Any) -> tuple[FailureRecord, list[tuple[str, dict[str, Any]]]]:
    events: list[tuple[str, dict[str, Any]]] = []

    def write(event: str, fields: dict[str, Any]) -> None:
        events.append((event, fields))

    steps = StepRecorder(4, lambda: 0.0)
    steps.starts.extend([0.0, 1.0])
    steps.ends.extend([0.5, 1.5])
    config = {"num_workers": 2, "prefetch_factor": 2, "batch_size": 4}
    readings = Readings(
        steps, config=config, shm_dir="/dev/shm", tmpdir=str(tmp_path), interval_s=1.0, nofile=1024, write=write
    )
    readings.sampler = Quiet()  # type: ignore[assignment]
    readings.iterating = True
    return FailureRecord(steps, readings, write=write), events


def test_an_error_is_classified_once_after_a_final_sample(tmp_path: Any) -> None:
    record, events = _record(tmp_path)
    error = OSError(24, "Too many open files")
    record.record(error)
    record.record(error)  # the same object again (seen in the handler, then through next()): once
    assert [e for e, _ in events] == ["sample", "finding"]
    sample, finding = events[0][1], events[1][1]
    assert sample["final"] is True and sample["step"] == 2
    assert finding["kind"] == "fd_exhausted" and finding["failure"] is True and finding["step"] == 2
    assert record.exc is error and record.finding is not None and not record.readings.iterating


def test_a_pending_handler_error_is_recorded_as_the_loop_ends(tmp_path: Any) -> None:
    record, events = _record(tmp_path)
    record.record_pending()
    assert events == []  # nothing pending: nothing recorded
    record.pending = RuntimeError("DataLoader worker (pid 1) is killed by signal: Killed.")
    record.record_pending()
    assert record.finding is not None and record.finding["kind"] == "worker_killed"


def test_sigchld_handler_is_chained_and_restored(tmp_path: Any) -> None:
    record, _ = _record(tmp_path)

    class WorkerDied(RuntimeError):
        pass

    def torch_like(signum: int, frame: Any) -> None:
        raise WorkerDied("DataLoader worker exited unexpectedly")

    before = signal.signal(signal.SIGCHLD, torch_like)
    try:
        record.chain_sigchld()
        assert signal.getsignal(signal.SIGCHLD) is not torch_like
        with pytest.raises(WorkerDied) as info:
            os.kill(os.getpid(), signal.SIGCHLD)
            signal.sigtimedwait([], 0)  # a point for the interpreter to run the handler
        assert record.pending is info.value  # what torch's handler raised, passed on unchanged
        record.unchain_sigchld()
        assert signal.getsignal(signal.SIGCHLD) is torch_like
    finally:
        signal.signal(signal.SIGCHLD, before)
