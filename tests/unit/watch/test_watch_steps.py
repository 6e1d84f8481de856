"""The step recorder on its own: what it records per batch and the figures derived from it, on a
clock the test advances (no watch, no threads)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch

from ssv2_fixtures.watch.steps import StepRecorder, batch_items


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class Calls:
    """The recorder's callbacks, recorded in order."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.iterator: Any = None
        self.failures: list[Exception] = []

    def begin(self) -> None:
        self.events.append("begin")

    def started(self, iterator: Iterator[Any]) -> None:
        self.events.append("started")
        self.iterator = iterator

    def failed(self, exc: Exception) -> None:
        self.events.append("failed")
        self.failures.append(exc)

    def end(self) -> None:
        self.events.append("end")


def _loop(recorder: StepRecorder, loader: Any, calls: Calls) -> Any:
    return recorder.batches(loader, begin=calls.begin, started=calls.started, failed=calls.failed, end=calls.end)


def _timed(clock: Clock, sizes: list[int], wait_s: float) -> Iterator[torch.Tensor]:
    for n in sizes:
        clock.t += wait_s
        yield torch.zeros(n, 3)


def test_batch_items_reads_the_leading_size_of_the_first_tensor() -> None:
    assert batch_items(torch.zeros(5, 2)) == 5
    assert batch_items((torch.zeros(3, 1), [0, 1, 2])) == 3
    assert batch_items({"video": torch.zeros(2, 4), "label": torch.zeros(2)}) == 2
    assert batch_items([]) == 0 and batch_items({}) == 0
    assert batch_items("a clip") == 1  # no shape: one item


def test_records_each_wait_and_step_and_derives_the_summary_fields() -> None:
    clock, calls = Clock(), Calls()
    recorder = StepRecorder(4, clock)
    loop = _loop(recorder, _timed(clock, [4, 4, 4, 2], 0.1), calls)
    got = []
    for batch in loop:
        got.append(batch.shape[0])
        clock.t += 0.4  # the training step
    assert got == [4, 4, 4, 2] and calls.events == ["begin", "started", "end"]
    assert len(recorder.starts) == len(recorder.ends) == 4  # the next() that ended the loop is dropped
    assert recorder.partial == {3: 2}  # the short last batch, counted once the epoch ended
    timings = recorder.timings(round_size=0)
    assert timings["steps"] == 4 and timings["videos"] == 14
    assert timings["wait_ms_p50"] == pytest.approx(100.0) and timings["step_ms_p50"] == pytest.approx(400.0)
    assert timings["loop_s"] == pytest.approx(0.1 * 4 + 0.4 * 3)
    assert timings["videos_per_s"] == pytest.approx(
        10 / 1.5, abs=1e-3
    )  # (rounded) after the first batch: 3 batches of 0.5 s
    totals = recorder.loop_totals(4)
    assert totals["videos"] == 14 and totals["steady_videos"] == 10
    assert totals["steady_wait_s"] == pytest.approx(0.3) and totals["steady_s"] == pytest.approx(1.5)


def test_without_a_batch_size_every_batch_is_counted() -> None:
    clock, calls = Clock(), Calls()
    recorder = StepRecorder(None, clock)
    assert list(_loop(recorder, _timed(clock, [3, 5, 1], 0.1), calls))
    assert recorder.videos == [3, 5, 1] and recorder.timings(round_size=0)["videos"] == 9
    assert recorder.video_list(1, 3) == [5, 1] and recorder.videos_in(0, 2) == 8


def test_loop_totals_add_up_incrementally_to_the_whole_sum() -> None:
    clock, calls = Clock(), Calls()
    recorder = StepRecorder(None, clock)
    loop = _loop(recorder, _timed(clock, [2] * 10, 0.05), calls)
    for step, _batch in enumerate(loop):
        clock.t += 0.1
        if step in (2, 6):
            recorder.loop_totals(recorder.count())  # readings part-way: the sums carry on from here
    whole = recorder.loop_totals(10)
    assert whole["wait_s"] == pytest.approx(0.5) and whole["videos"] == 20


def test_a_loader_error_goes_to_failed_and_passes_on_unchanged() -> None:
    clock, calls = Clock(), Calls()
    recorder = StepRecorder(2, clock)
    error = OSError(24, "Too many open files")

    def failing() -> Iterator[torch.Tensor]:
        yield torch.zeros(2, 1)
        raise error

    with pytest.raises(OSError) as info:
        for _batch in _loop(recorder, failing(), calls):
            pass
    assert info.value is error and calls.failures == [error]
    assert calls.events == ["begin", "started", "failed", "end"]
    assert len(recorder.starts) == len(recorder.ends) == 1


def test_an_older_iteration_closed_late_does_not_end_the_newer_one() -> None:
    clock, calls = Clock(), Calls()
    recorder = StepRecorder(2, clock)
    first = _loop(recorder, _timed(clock, [2] * 5, 0.1), calls)
    next(first)
    second = _loop(recorder, _timed(clock, [2] * 5, 0.1), calls)
    next(second)
    first.close()  # the watch ended it as the second began; closing it now ends nothing
    assert calls.events == ["begin", "started", "begin", "started"]
    second.close()
    assert calls.events[-1] == "end"


def test_a_failing_begin_ends_the_iteration_and_drops_its_start() -> None:
    clock, calls = Clock(), Calls()
    recorder = StepRecorder(2, clock)

    def begin() -> None:
        raise ValueError("cannot open the log")

    loop = recorder.batches([torch.zeros(2)], begin=begin, started=calls.started, failed=calls.failed, end=calls.end)
    with pytest.raises(ValueError):
        next(loop)
    assert calls.events == ["end"] and recorder.starts == [] and recorder.ends == []
