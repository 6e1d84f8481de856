"""The step recorder: when the training loop asked for each batch, when it came, and the videos in it.

This is the only part of the watch on the training thread's step path (NOTE [step path]); everything
derived from the recorded times — loop totals, rates and their interval, percentiles — is computed on
demand, by the sampling thread or for the summary.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Any, TypedDict, TypeVar

from ..run.stats import percentile, rate_interval

T = TypeVar("T")


def batch_items(batch: Any) -> int:
    """Videos in a batch: the leading size of its first tensor (the DataLoader's batch dimension)."""
    inner = batch
    while True:
        if isinstance(inner, (tuple, list)):
            if not inner:
                return 0
            inner = inner[0]
        elif isinstance(inner, dict):
            if not inner:
                return 0
            inner = next(iter(inner.values()))
        else:
            break
    shape = getattr(inner, "shape", None)
    return int(shape[0]) if shape else 1


class LoopTotals(TypedDict):
    """A ``sample`` line's step fields: the loop so far, and after its first batch (NOTE [watch log])."""

    loop_s: float
    wait_s: float
    videos: int
    steady_s: float
    steady_wait_s: float
    steady_videos: int


class StepTimings(TypedDict):
    """The summary's step fields (:class:`.log.Summary`), in its order."""

    steps: int
    videos: int
    loop_s: float
    wait_s: float
    videos_per_s: float | None
    videos_per_s_interval: list[float] | None
    wait_fraction: float | None
    first_batch_s: float | None
    watch_start_s: float | None
    wait_ms_p50: float | None
    wait_ms_p95: float | None
    step_ms_p50: float | None


class StepRecorder:
    """Per batch: ``starts[i]`` (next() asked for) and ``ends[i]`` (it returned), on ``clock``; the videos
    per batch without a fixed batch size, and with one only the batches that differ from it."""

    def __init__(self, batch_size: object, clock: Callable[[], float]) -> None:
        self.clock = clock  # the step path's clock (tests drive a fake one)
        self.starts: list[float] = []  # clock when next() was called, per batch
        self.ends: list[float] = []  # ... and when it returned the batch
        fixed = batch_size if isinstance(batch_size, int) and not isinstance(batch_size, bool) else None
        self.fixed: int | None = fixed if fixed is not None and fixed > 0 else None
        self.videos: list[int] = []  # per batch, only without a fixed batch size
        self.partial: dict[int, int] = {}  # with one: batch index → videos, for short last batches
        self.latest: list[Any] = [None]  # the latest batch, for the sampling thread (batch bytes)
        self.start_s: float | None = None  # the watch's own start-up inside the first batch's wait
        self.epoch = 0  # iterations begun: a loop ends only its own
        # what the sampling thread has summed so far (loop_totals), so a reading never sums the whole run
        self._summed = 0
        self._wait_sum = 0.0
        self._videos_sum = 0

    # ------------------------------------------------------------------ the step path
    def batches(
        self,
        loader: Iterable[T],
        *,
        begin: Callable[[], None],
        started: Callable[[Iterator[T]], None],
        failed: Callable[[Exception], None],
        end: Callable[[], None],
    ) -> Generator[T, None, None]:
        """The loader's batches, each timed. ``begin`` runs as the first batch is asked for (the start
        line, the sampling thread), ``started`` once the loader's iterator exists, ``failed`` with an
        exception from the loader (which then passes on unchanged), ``end`` as this iteration ends."""
        pc = self.clock
        # the training loop asked for its first batch: that batch's wait runs from here, through the
        # watch's start-up and the loader's (its workers), as the loop saw it
        asked = pc()
        add_start, add_end = self.starts.append, self.ends.append
        add_start(asked)
        try:
            self.epoch += 1
            epoch = self.epoch
            begin()
            if self.start_s is None:
                self.start_s = pc() - asked
            it = iter(loader)
        except BaseException:
            self.drop_unanswered()
            end()
            raise
        started(it)
        last = self.latest
        batch: Any = None
        # NOTE [step path]: per batch, two clock reads (when next() is asked for, when it returns),
        # two list appends and one store of the batch for the sampling thread (its bytes): the step
        # is derived later, ``starts[i + 1] - ends[i]``. The C ``for`` calls the loader's next() and
        # ends on StopIteration itself; the one try around the whole loop costs nothing per step
        # (3.11's zero-cost try). With a fixed batch size (a DataLoader's own batching) every batch
        # holds batch_size videos but an epoch's last, counted once the epoch ends; only other
        # loaders pay for counting each batch (a tensor's .shape costs about half a microsecond).
        # ``benchmarks/watch_overhead.py --shapes`` times it against a generator calling a bound
        # __next__ (level), a C zip/map pipeline and a __next__ class (both dearer). Left unfinished
        # (a ``break``, a dropped iterator), the generator's close ends the iteration; one still
        # suspended at interpreter exit is closed by the atexit hook (see core._LIVE).
        try:
            if self.fixed is not None:
                for batch in it:
                    add_end(pc())
                    last[0] = batch
                    yield batch
                    add_start(pc())
            else:
                count = self.videos.append
                for batch in it:
                    add_end(pc())
                    count(batch_items(batch))
                    last[0] = batch
                    yield batch
                    add_start(pc())
            self._count_last(batch)
        except Exception as exc:
            failed(exc)
            raise
        finally:
            if epoch == self.epoch:  # (a later iteration of the same watch has not ended this one)
                self.drop_unanswered()
                end()

    def drop_unanswered(self) -> None:
        """Drop the start of the next() that ended the loop (StopIteration, a failure): it has no batch,
        and a next epoch's batches pair their own starts and ends."""
        del self.starts[len(self.ends) :]

    def _count_last(self, batch: Any) -> None:
        if self.fixed is not None and batch is not None and self.ends:
            n = batch_items(batch)
            if n != self.fixed:
                self.partial[len(self.ends) - 1] = n

    # ------------------------------------------------------------------ derived, off the step path
    def paired(self) -> int:
        """Batches with both a start and an end."""
        return min(len(self.starts), len(self.ends))

    def count(self) -> int:
        """Batches recorded whole: timed and, without a fixed batch size, counted."""
        n = self.paired()
        return n if self.fixed is not None else min(n, len(self.videos))

    def videos_in(self, lo: int, hi: int) -> int:
        """Videos in batches ``lo`` to ``hi - 1``."""
        if self.fixed is None:
            return sum(self.videos[lo:hi])
        return (hi - lo) * self.fixed + sum(v - self.fixed for i, v in self.partial.items() if lo <= i < hi)

    def video_list(self, lo: int, hi: int) -> list[int]:
        """Videos per batch, batches ``lo`` to ``hi - 1``."""
        if self.fixed is None:
            return list(self.videos[lo:hi])
        return [self.partial.get(i, self.fixed) for i in range(lo, hi)]

    def step_s(self) -> float | None:
        """Mean loop time per batch after the first (None: fewer than two batches)."""
        n = self.paired()
        return (self.ends[n - 1] - self.ends[0]) / (n - 1) if n > 1 else None

    def loop_totals(self, n: int) -> LoopTotals:
        """The first ``n`` batches' totals, for a ``sample`` line (called by one thread at a time)."""
        if n == 0:
            return LoopTotals(loop_s=0.0, wait_s=0.0, videos=0, steady_s=0.0, steady_wait_s=0.0, steady_videos=0)
        # incremental: the sum over all steps so far would cost the GIL in proportion to the run
        starts, ends = self.starts, self.ends
        # (a C-level map over slices: a Python loop here held the GIL ~1.5 ms a second at 20 k steps/s)
        self._wait_sum += sum(map(operator.sub, ends[self._summed : n], starts[self._summed : n]))
        if self.fixed is None:
            self._videos_sum += sum(self.videos[self._summed : n])
        self._summed = n
        wait = self._wait_sum
        videos = self._videos_sum if self.fixed is None else self.videos_in(0, n)
        first_wait = ends[0] - starts[0]
        first_videos = self.videos[0] if self.fixed is None else self.videos_in(0, 1)
        # the steady figures (after the first batch), as timings() computes them: a run killed before
        # its summary line is read from its last sample by the same rule
        return LoopTotals(
            loop_s=round(ends[n - 1] - starts[0], 4),
            wait_s=round(wait, 4),
            videos=videos,
            steady_s=round(ends[n - 1] - ends[0], 4),
            steady_wait_s=round(wait - first_wait, 4),
            steady_videos=videos - first_videos,
        )

    def rate_interval(self, n: int, round_size: int) -> list[float] | None:
        """The suite's interval rule (run.stats) over the batches after the first: videos per batch
        over the loop time each took (``ends[i] - ends[i - 1]``), rounds of ``round_size`` batches."""
        if n < 3:
            return None
        ends = self.ends
        seconds = list(map(operator.sub, ends[1:n], ends[0 : n - 1]))
        interval = rate_interval(self.video_list(1, n), seconds, round_size=round_size)
        if interval is None or not math.isfinite(interval.hi):
            return None
        return [round(interval.lo, 3), round(interval.hi, 3)]

    def timings(self, round_size: int) -> StepTimings:
        """The summary's step fields over every batch recorded whole."""
        n = self.count()
        starts, ends = self.starts[:n], self.ends[:n]
        waits = [e - s for s, e in zip(starts, ends)]
        steps_s = [starts[i + 1] - ends[i] for i in range(n - 1)]
        # steady state, as the stress runs report it: after the first batch (worker start-up)
        loop = ends[-1] - ends[0] if n > 1 else 0.0
        return StepTimings(
            steps=n,
            videos=self.videos_in(0, n),
            loop_s=round(ends[-1] - starts[0], 4) if n else 0.0,
            wait_s=round(sum(waits), 4),
            videos_per_s=round(self.videos_in(1, n) / loop, 3) if loop > 0 else None,
            videos_per_s_interval=self.rate_interval(n, round_size),
            wait_fraction=round(sum(waits[1:]) / loop, 4) if loop > 0 else None,
            first_batch_s=round(waits[0], 4) if n else None,
            watch_start_s=round(self.start_s, 4) if self.start_s is not None else None,
            wait_ms_p50=round(percentile(waits[1:], 50) * 1000, 3) if n > 1 else None,
            wait_ms_p95=round(percentile(waits[1:], 95) * 1000, 3) if n > 1 else None,
            step_ms_p50=round(percentile(steps_s, 50) * 1000, 3) if steps_s else None,
        )
