"""The watch log: JSON lines, one per event, each with ``ev``, ``t`` (``time.time()``) and ``rank``.

NOTE [watch log]
    ``start``    {schema, name, pid, config, interval_s, shm_dir, tmpdir, nofile, mem_available_bytes,
                  cores, world_size}                      once per iteration of the watch (an epoch)
    ``sample``   {step, loop_s, wait_s, videos, steady_s, steady_wait_s, steady_videos, wait_fraction, rss,
                  pss, main_rss, main_pss, workers_rss, workers_pss, fds, fds_max, threads, workers,
                  worker_restarts, shm_used, shm_free, shm_total, tmp_files, tmp_bytes, tmp_free,
                  batch_bytes}
                                                          every interval_s, from the sampling thread;
                                                          shm_used is relative to the start, tmp_files
                                                          and tmp_bytes to the TMPDIR baseline (None:
                                                          not measured); the line that took the
                                                          baseline adds tmp_baseline_{s, entries, cut,
                                                          thread};
                                                          steady_*: after the first batch, as the
                                                          summary's rate (a killed run's figures);
                                                          worker_restarts: workers of a live iterator
                                                          found dead (torch never restarts one)
    ``finding``  {kind, step, detail, remedy, failure?}  the first time each kind is found; a loader
                                                          failure is one with ``failure: true``
    ``summary``  {... :class:`Summary`}                   when the iteration ends (exhausted, left with
                                                          ``break``, or the loader raised)
    Several ranks may append to one file: each line is one ``os.write`` on an ``O_APPEND`` descriptor.
    ``{rank}`` in the path gives each rank its own file.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, TypedDict

SCHEMA = 1
EVENTS = ("start", "sample", "finding", "summary")


class TmpBaseline(TypedDict, total=False):
    """The TMPDIR baseline walk (the sampling thread's first reading): its cost and whether it is whole."""

    tmp_baseline_s: float | None
    tmp_baseline_entries: int | None  # entries looked at (directories included)
    tmp_baseline_cut: str | None  # None: whole; "entries" / "time": past a bound (TMPDIR growth then
    # not measured); "stopped": the iteration ended first
    tmp_baseline_thread: str  # the thread that walked (the sampling thread's name: "ssv2-watch")


class SampleLine(TmpBaseline, total=False):
    ev: str
    t: float
    rank: int
    step: int
    loop_s: float
    wait_s: float
    videos: int
    steady_s: float  # loop time after the first batch (ends[n-1] - ends[0])
    steady_wait_s: float  # time in next() after the first batch
    steady_videos: int  # videos after the first batch
    wait_fraction: float | None  # over the last DATA_BOUND_WINDOW steps
    rss: int  # main + worker tree
    pss: int
    main_rss: int
    main_pss: int
    workers_rss: int
    workers_pss: int
    fds: int  # whole tree
    fds_max: int  # the most open in one process (EMFILE is per process)
    threads: int
    workers: int
    worker_restarts: int  # workers of the live iterator found dead (not an epoch's shut-down ones)
    shm_used: int
    shm_free: int | None
    shm_total: int
    tmp_files: int | None  # None: no whole TMPDIR baseline
    tmp_bytes: int | None
    tmp_free: int | None
    batch_bytes: int


class ReadingPeaks(TypedDict):
    """The summary's resource fields: what the sampling thread saw (:mod:`.readings` fills them)."""

    rss_peak_bytes: int
    pss_peak_bytes: int
    workers_rss_peak_bytes: int
    shm_peak_bytes: int
    shm_free_min_bytes: int | None
    fds_peak: int
    fds_max_peak: int
    threads_peak: int
    workers_peak: int
    worker_restarts: int
    tmp_peak_bytes: int
    tmp_files_peak: int
    batch_bytes: int
    samples: int


class Summary(TmpBaseline, ReadingPeaks, total=False):
    ev: str
    t: float
    rank: int
    name: str
    steps: int
    videos: int
    loop_s: float
    wait_s: float
    videos_per_s: float | None  # after the first batch: videos / loop time
    videos_per_s_interval: list[float] | None  # its 95 % interval (run.stats.rate_interval), None: too few
    wait_fraction: float | None  # after the first batch: time in next() / loop time
    first_batch_s: float | None  # from the loop's first next() to its batch: the watch's start-up,
    # the loader's (its workers) and the batch, as the training loop waited for them
    watch_start_s: float | None  # the watch's own part of it (log, start line, thread)
    wait_ms_p50: float | None
    wait_ms_p95: float | None
    step_ms_p50: float | None
    config: dict[str, Any]
    failed: str | None  # the outcome kind when the loader raised
    findings: list[dict[str, Any]]


class LogError(ValueError):
    """A watch log that cannot be read: names the file, the line and the fix."""


class LogWriter:
    """Appends one JSON line per event; safe from the training and the sampling thread at once."""

    def __init__(self, path: str | os.PathLike[str] | None, rank: int) -> None:
        self.rank = rank
        self.path = Path(str(path).replace("{rank}", str(rank))) if path is not None else None
        self._fd: int | None = None
        self._lock = threading.Lock()
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(self, ev: str, fields: dict[str, Any], t: float) -> None:
        if self._fd is None:
            return
        line = json.dumps({"ev": ev, "t": round(t, 4), "rank": self.rank, **fields}, default=str) + "\n"
        with self._lock:
            os.write(self._fd, line.encode())

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def read_log(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every event of a watch log, in order. A torn last line (a killed run) is dropped; any other bad
    line is an error naming the file and the line."""
    p = Path(path)
    try:
        lines = p.read_text().splitlines()
    except OSError as exc:
        raise LogError(f"{p}: cannot read the watch log ({exc.strerror or exc})") from None
    out: list[dict[str, Any]] = []
    for i, ln in enumerate(lines, 1):
        if not ln.strip():
            continue
        try:
            rec = json.loads(ln)
        except json.JSONDecodeError as exc:
            if i == len(lines):  # the process died mid-write: the lines before are whole
                break
            raise LogError(
                f"{p}:{i}: not a JSON line ({exc.msg}); a watch log holds one JSON object per line, "
                "written by ssv2_fixtures.watch"
            ) from None
        if not isinstance(rec, dict) or rec.get("ev") not in EVENTS or "rank" not in rec:
            raise LogError(
                f"{p}:{i}: not a watch event (needs 'ev' in {list(EVENTS)} and 'rank'); is this a "
                "watch log written by ssv2_fixtures.watch?"
            )
        out.append(rec)
    if not out:
        raise LogError(f"{p}: empty watch log: the watched loop wrote nothing (was it iterated?)")
    return out
