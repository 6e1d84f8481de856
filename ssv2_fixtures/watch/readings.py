"""The watch's background side: the sampling thread, the ``sample`` lines it keeps and what they allow.

Each reading is one :class:`.sampler.Sampler` reading (psutil, /dev/shm, TMPDIR) plus the step totals
(:class:`.steps.StepRecorder`); the latest SAMPLES_KEPT lines are kept, with peaks over every reading and
the bounded trend series, and each reading is judged for findings (each kind once). The sampling thread
takes one every ``interval_s``; the training thread only a light one, as a loop ends or the loader fails.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import psutil

from ..data.batch import describe
from . import findings
from .log import ReadingPeaks, TmpBaseline
from .sampler import Sampler
from .steps import StepRecorder

SAMPLES_KEPT = 1000  # sample lines kept in memory (all of them are in the log); peaks are kept apart
# the series the trend findings read, each kept incrementally and bounded (findings.Series)
SERIES_KEYS = ("workers_rss", "main_rss", "fds_max", "tmp_files", "tmp_bytes")
PEAK_KEYS = (
    "rss",
    "pss",
    "workers_rss",
    "shm_used",
    "fds",
    "fds_max",
    "threads",
    "worker_restarts",
    "tmp_bytes",
    "tmp_files",
)
FIRST_BATCH_POLL_S = 0.005  # how often the sampling thread looks whether the first batch has arrived


def local_ranks() -> int:
    """Ranks on this node sharing its /dev/shm (torchrun's LOCAL_WORLD_SIZE; 1 without it)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)


class Readings:
    """The watch's readings, off the step path: one :class:`Sampler` reading plus the step totals makes a
    ``sample`` line; lines are kept (the latest SAMPLES_KEPT), with peaks over all of them and the
    trend series, and each reading is judged for findings (each kind once). The sampling thread takes
    one every ``interval_s``; the training thread takes a light one as a loop ends or fails."""

    def __init__(
        self,
        steps: StepRecorder,
        *,
        config: Mapping[str, Any],
        shm_dir: str,
        tmpdir: str,
        interval_s: float,
        nofile: int | None,
        write: Callable[[str, dict[str, Any]], None],
    ) -> None:
        self.steps, self.config = steps, config
        self.shm_dir, self.tmpdir, self.interval_s, self.nofile = shm_dir, tmpdir, interval_s, nofile
        self.write = write
        self.sampler: Sampler | None = None  # made as the first iteration begins (tests script one)
        self.iterator: Any = None  # the live loader iterator (its workers)
        self.iterating = False  # it runs: a worker found dead then is lost (not an epoch's shut-down one)
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()
        # the latest ``sample`` lines (SampleLine), bounded: a long run's whole history is in the log,
        # and what the findings and the summary need is kept incrementally below
        self.samples: deque[dict[str, Any]] = deque(maxlen=SAMPLES_KEPT)
        self.count = 0
        self.peaks: dict[str, int] = {}
        self.shm_free_min: int | None = None
        self.series: dict[str, findings.Series] = {key: findings.Series() for key in SERIES_KEYS}
        self.found: dict[str, findings.Finding] = {}  # by kind, in the order they were found
        self.batch_bytes = 0
        self._baseline_logged = False

    @property
    def num_workers(self) -> int:
        return int(self.config.get("num_workers") or 0)

    # ------------------------------------------------------------------ lifecycle
    def prepare(self) -> None:
        """As an iteration begins: a stop event of its own (a thread of an earlier iteration never sees
        it cleared) and the sampler, made once (its shm baseline before the workers start)."""
        self.stop = threading.Event()
        if self.sampler is None:
            self.sampler = Sampler(
                shm_dir=self.shm_dir,
                tmpdir=self.tmpdir,
                worker_pids=self.worker_pids,
                iter_live=self.iter_live,
                stop=self.stop,
            )
        else:
            self.sampler.stop = self.stop
            self.sampler.forget()  # a new iterator has new workers: drop the handles of the last one's

    def start_thread(self) -> None:
        self.thread = threading.Thread(
            target=self._loop, args=(self.stop, len(self.steps.ends)), name="ssv2-watch", daemon=True
        )
        self.thread.start()

    def join_thread(self) -> None:
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout=10)
        self.thread = None

    def worker_pids(self) -> list[int] | None:
        """Pids of the live DataLoader iterator's workers ([] with none; None if it does not say)."""
        if self.num_workers == 0:
            return []
        it = self.iterator
        workers = getattr(it, "_workers", None)
        if workers is None:
            return None if it is not None else []
        return [int(w.pid) for w in list(workers) if w.pid is not None]

    def iter_live(self) -> bool:
        """The iterator runs and has not begun shutting its workers down (torch sets ``_shutdown``)."""
        return self.iterating and not getattr(self.iterator, "_shutdown", False)

    # ------------------------------------------------------------------ the sampling thread
    def _loop(self, stop: threading.Event, batches_before: int) -> None:
        # The first reading (with the TMPDIR baseline) waits for this iteration's first batch, or
        # interval_s: that batch's wait never shares the GIL or the kernel's locks with the walk.
        deadline = time.monotonic() + self.interval_s
        while len(self.steps.ends) <= batches_before and time.monotonic() < deadline:
            if stop.wait(FIRST_BATCH_POLL_S):
                return
        try:
            self.take()
        except Exception:  # sampling must never take the training run down
            pass
        while not stop.wait(self.interval_s):
            try:
                self.poll()
            except Exception:
                pass

    def poll(self) -> None:
        """One reading and the findings it allows."""
        self.take()
        self.judge()

    def take(self, final: bool = False, light: bool = False) -> dict[str, Any] | None:
        """One ``sample`` line, kept and logged (None before the first iteration has a sampler)."""
        sampler = self.sampler
        if sampler is None:
            return None
        reading = sampler.sample(light=light)
        batch = self.steps.latest[0]
        if batch is not None:
            try:
                self.batch_bytes = max(self.batch_bytes, describe(batch, 0)["bytes"])
            except Exception:
                pass
        steps = self.steps
        n = steps.count()
        line: dict[str, Any] = {"step": n, **steps.loop_totals(n), **reading, "batch_bytes": self.batch_bytes}
        window = findings.window_wait_fraction(steps.starts, steps.ends, n=n)
        line["wait_fraction"] = round(window[0], 4) if window else None
        if final:
            line["final"] = True
        if sampler.baseline is not None and not self._baseline_logged:
            self._baseline_logged = True
            line.update(self.baseline_fields())
        with self.lock:
            self.samples.append(line)
            self.count += 1
            for key in PEAK_KEYS:
                value = line.get(key)
                if isinstance(value, (int, float)) and value > self.peaks.get(key, 0):
                    self.peaks[key] = int(value)
            free = line.get("shm_free")
            if free is not None and (self.shm_free_min is None or free < self.shm_free_min):
                self.shm_free_min = int(free)
            if n >= 1:
                for key, series in self.series.items():
                    if line.get(key) is not None:
                        series.add(n, float(line[key]))
        self.write("sample", line)
        return line

    def _trend_series(self, key: str) -> tuple[list[int], list[float]]:
        with self.lock:
            series = self.series[key]
            return list(series.steps), list(series.values)

    def judge(self) -> None:
        """The findings the readings so far allow, each kind found once (and logged then)."""
        workers = self.num_workers
        steps = self.steps
        candidates: list[findings.Finding | None] = []
        if "data_bound" not in self.found:
            candidates.append(findings.data_bound(steps.starts, steps.ends, n=steps.paired(), num_workers=workers))
        step_s = steps.step_s()
        if "rss_growth" not in self.found:
            at, values = self._trend_series("workers_rss" if workers > 0 else "main_rss")
            candidates.append(
                findings.rss_growth(
                    at,
                    values,
                    available_bytes=psutil.virtual_memory().available,
                    step_s=step_s,
                    what="worker tree" if workers > 0 else "main process",
                )
            )
        if "shm_headroom" not in self.found and self.samples:
            last = self.samples[-1]
            candidates.append(
                findings.shm_headroom(
                    last.get("shm_free"),
                    self.batch_bytes,
                    step=int(last["step"]),
                    num_workers=workers,
                    prefetch_factor=self.config.get("prefetch_factor"),
                    batch_size=self.config.get("batch_size"),
                    ranks=local_ranks(),
                )
            )
        if "fd_growth" not in self.found:
            at, values = self._trend_series("fds_max")
            candidates.append(findings.fd_growth(at, values, nofile=self.nofile, step_s=step_s))
        if "tmp_growth" not in self.found:
            at, files = self._trend_series("tmp_files")
            _, nbytes = self._trend_series("tmp_bytes")
            free = self.samples[-1].get("tmp_free") if self.samples else None
            candidates.append(
                findings.tmp_growth(
                    at,
                    files,
                    nbytes,
                    tmpdir=self.tmpdir,
                    free_bytes=free,
                    step_s=step_s,
                    strategy=self.config.get("sharing_strategy"),
                )
            )
        for found in candidates:
            if found is not None:
                with self.lock:
                    self.found[found["kind"]] = found
                self.write("finding", dict(found))

    # ------------------------------------------------------------------ results
    def peak(self, key: str) -> int:
        return self.peaks.get(key, 0)

    def found_so_far(self) -> list[findings.Finding]:
        """The findings in the order they were found."""
        with self.lock:
            return list(self.found.values())

    def baseline_fields(self) -> TmpBaseline:
        baseline = self.sampler.baseline if self.sampler is not None else None
        if baseline is None:  # no full reading yet (a loop that ended before the thread's first)
            return TmpBaseline(tmp_baseline_s=None, tmp_baseline_entries=None, tmp_baseline_cut=None)
        return TmpBaseline(
            tmp_baseline_s=round(baseline.seconds, 4),
            tmp_baseline_entries=baseline.entries,
            tmp_baseline_cut=baseline.cut,
            tmp_baseline_thread=baseline.thread,
        )

    def peak_fields(self) -> ReadingPeaks:
        """The summary's resource fields: peaks over every reading (not only the kept lines)."""
        peak = self.peak
        return ReadingPeaks(
            rss_peak_bytes=peak("rss"),
            pss_peak_bytes=peak("pss"),
            workers_rss_peak_bytes=peak("workers_rss"),
            shm_peak_bytes=peak("shm_used"),
            shm_free_min_bytes=self.shm_free_min,
            fds_peak=peak("fds"),
            fds_max_peak=peak("fds_max"),
            threads_peak=peak("threads"),
            workers_peak=self.sampler.workers_peak if self.sampler else 0,
            worker_restarts=peak("worker_restarts"),
            tmp_peak_bytes=peak("tmp_bytes"),
            tmp_files_peak=peak("tmp_files"),
            batch_bytes=self.batch_bytes,
            samples=self.count,
        )
