"""One resource reading of the training process and its DataLoader workers (psutil), off the step path.

The worker tree is the live DataLoader iterator's own workers (``_workers``) and their descendants —
never the training process's other children (a compile pool, a logger) — or, for a loader whose
iterator does not expose them, every descendant of this process. /dev/shm is read as this process sees
it (its mount namespace); TMPDIR without multiprocessing's ``pymp-*`` folders, as the stress monitor
counts it (:func:`ssv2_fixtures.run.monitor.tmp_usage`), by a walk bounded in entries and time
(:func:`walk_tmp`). shm used and TMPDIR are relative to the first full reading (the baseline): only the
run's own growth counts. A Sampler reads nothing when it is made; its first full reading takes the
baseline, in whichever thread calls it (the watch's sampling thread).
"""

from __future__ import annotations

import os
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil

from ..run.monitor import MP_TMP_PREFIX, fs_used_free

TMP_EVERY = 5  # walk TMPDIR at most every 5th reading: a walk costs the GIL in proportion to its files
# ... and no more often than keeps the walks under 0.2 % of wall time: a shared /tmp of 100 k files
# takes seconds to walk (measured: 2.5 s), which every 5 s would slow the training loop by half.
TMP_DUTY = 0.002
TMP_WALK_FREE_S = 0.01  # a walk under 10 ms is never put off (every 5th reading at 1 s: <= 0.2 % already)


def next_walk_at(now: float, walk_s: float) -> float:
    """The earliest time of the next TMPDIR walk after one that took ``walk_s``: any time for a walk
    under TMP_WALK_FREE_S, else late enough that walks stay within TMP_DUTY of wall time."""
    return now + walk_s / TMP_DUTY if walk_s > TMP_WALK_FREE_S else 0.0


# A walk's bounds: a shared /tmp can hold millions of files, and the walk holds the GIL for a few
# microseconds per entry (measured: 200 k files in ~1 s on an idle core, 10 s on a busy machine). Past
# either bound the walk stops and its count is unknown; a cut baseline switches TMPDIR growth off for
# the run (the later walks would be cut as well), and says so in the summary.
TMP_WALK_MAX_ENTRIES = 1_000_000
TMP_WALK_MAX_S = 10.0
_CHECK_EVERY = 512  # entries between two looks at the clock and the stop event


@dataclass(frozen=True)
class TmpWalk:
    """One TMPDIR walk: what it counted and what it cost."""

    files: int  # entries that are not directories, multiprocessing's pymp-* folders left out
    nbytes: int  # their allocated bytes
    mp_dirs: int  # pymp-* folders at the top
    entries: int  # every entry looked at (directories included)
    seconds: float
    cut: str | None  # None: complete; "entries" / "time": a bound reached; "stopped": the watch ended
    thread: str  # the thread that walked


def walk_tmp(
    path: str,
    *,
    max_entries: int | None = None,
    max_s: float | None = None,
    stop: threading.Event | None = None,
) -> TmpWalk:
    """:func:`ssv2_fixtures.run.monitor.tmp_usage`, bounded: stops after ``max_entries`` entries or
    ``max_s`` seconds (default: the module's bounds), or once ``stop`` is set."""
    max_entries = TMP_WALK_MAX_ENTRIES if max_entries is None else max_entries
    max_s = TMP_WALK_MAX_S if max_s is None else max_s
    t0 = time.monotonic()
    files = nbytes = mp = entries = 0
    cut: str | None = None
    todo = [path]
    top = True
    while todo and cut is None:
        d = todo.pop()
        try:
            it = os.scandir(d)
        except OSError:  # gone, or not readable: nothing of it counts
            top = False
            continue
        with it:
            for e in it:
                entries += 1
                if entries % _CHECK_EVERY == 0:
                    if stop is not None and stop.is_set():
                        cut = "stopped"
                    elif time.monotonic() - t0 > max_s:
                        cut = "time"
                if entries > max_entries:
                    cut = "entries"
                if cut is not None:
                    break
                try:
                    if e.is_dir(follow_symlinks=False):
                        if top and e.name.startswith(MP_TMP_PREFIX):
                            mp += 1
                        else:
                            todo.append(e.path)
                    else:
                        files += 1
                        nbytes += e.stat(follow_symlinks=False).st_blocks * 512
                except OSError:  # removed meanwhile
                    continue
        top = False
    return TmpWalk(files, nbytes, mp, entries, time.monotonic() - t0, cut, threading.current_thread().name)


PSS_EVERY = 5  # PSS (smaps_rollup) at most every 5th reading, under the same duty as the TMPDIR walk:
# the kernel walks every page table of the process for it (measured: 30 ms for a 300 MiB torch process
# on a loaded 2-core box), holding its mmap lock, which the training thread's own mmap/munmap wait on.
# RSS comes from /proc/<pid>/statm every reading (µs).
_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_of(pid: int) -> int:
    """Resident bytes from ``/proc/<pid>/statm`` (0 if the process is gone)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read(128).split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def rss_pss(pid: int) -> tuple[int, int]:
    """(RSS, PSS) bytes from ``/proc/<pid>/smaps_rollup``: two lines parsed, not the whole of
    psutil's ``memory_full_info`` (this runs beside the training thread, sharing its GIL)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            head = f.read(512)
    except OSError:
        return 0, 0
    rss = pss = 0
    for ln in head.split(b"\n")[1:3]:
        k, _, v = ln.partition(b":")
        n = int(v.split()[0]) * 1024 if v.strip() else 0
        if k == b"Rss":
            rss = n
        elif k == b"Pss":
            pss = n
    return rss, pss


def nofile_limit() -> int | None:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return None if soft == resource.RLIM_INFINITY else int(soft)


class Sampler:
    def __init__(
        self,
        *,
        shm_dir: str,
        tmpdir: str,
        worker_pids: Callable[[], list[int] | None],
        iter_live: Callable[[], bool] = lambda: True,
        stop: threading.Event | None = None,
    ) -> None:
        self.shm_dir, self.tmpdir = shm_dir, tmpdir
        self.worker_pids = worker_pids
        self.iter_live = iter_live  # the iterator has not begun shutting its workers down
        self.stop = stop  # set: the watch is ending, a walk in progress gives up
        self.main = psutil.Process(os.getpid())
        self._procs: dict[int, psutil.Process] = {}
        # A DataLoader never restarts a worker (a dead one fails the iterator), and a new iterator
        # (an epoch without persistent_workers) has new pids: count only workers of the live
        # iterator found dead while it was still running, never an epoch's shut-down ones.
        self.workers_lost: set[int] = set()
        self.workers_peak = 0
        self.shm_base = self.tmp_files_base = self.tmp_bytes_base = 0
        self.baseline: TmpWalk | None = None  # the first full reading's TMPDIR walk
        self._n = 0
        self._tmp: tuple[int, int] | None = None  # (files, bytes) of the last complete walk
        self._tmp_free: int | None = None
        self._tmp_next = 0.0  # time.monotonic() before which no TMPDIR walk starts
        self._pss: dict[int, int] = {}  # pid → its last PSS reading
        self._pss_next = 0.0
        # one statvfs (µs): before the workers start, so that all of their shared memory counts
        try:
            self.shm_base = fs_used_free(self.shm_dir)[1]
        except OSError:
            self.shm_base = 0

    @property
    def tmp_tracked(self) -> bool:
        """TMPDIR growth is measured: the baseline walk finished within its bounds."""
        return self.baseline is not None and self.baseline.cut is None

    def rebase(self) -> TmpWalk:
        """Take the TMPDIR baseline: a walk of up to seconds, never on the step path."""
        self.baseline = w = self._walk_tmp()
        self._tmp = None if w.cut else (w.files, w.nbytes)
        self.tmp_files_base, self.tmp_bytes_base = self._tmp or (0, 0)
        self._read_tmp_free()
        self._n = 1  # the walk just done is the first reading's
        return w

    def _read_tmp_free(self) -> None:
        try:
            self._tmp_free = fs_used_free(self.tmpdir)[2]
        except OSError:
            self._tmp_free = None

    def _walk_tmp(self) -> TmpWalk:
        w = walk_tmp(self.tmpdir, stop=self.stop)
        self._tmp_next = next_walk_at(time.monotonic(), w.seconds)
        return w

    def _proc(self, pid: int) -> psutil.Process | None:
        p = self._procs.get(pid)
        if p is None:
            try:
                p = self._procs[pid] = psutil.Process(pid)
            except psutil.Error:
                return None
        return p

    def workers(self) -> list[psutil.Process]:
        pids = self.worker_pids()
        if pids is None:  # no worker list: every descendant of this process
            try:
                return list(self.main.children(recursive=True))
            except psutil.Error:
                return []
        out: list[psutil.Process] = []
        for pid in pids:
            p = self._proc(pid)
            if p is None:
                continue
            out.append(p)
            try:
                out.extend(p.children(recursive=True))
            except psutil.Error:
                pass
        return out

    def sample(self, light: bool = False) -> dict[str, Any]:
        """The resource fields of a ``sample`` line (NOTE [watch log]); the caller adds the step fields.
        A worker found dead counts as lost only while ``iter_live()`` (not as the iteration ends).

        The first full reading takes the baseline (:meth:`rebase`). ``light=True`` (a reading in the
        training thread: as a loop ends, or the loader raised) reads no PSS and walks no TMPDIR,
        the two parts that cost milliseconds to seconds; their last values stand in."""
        if not light and (self.baseline is None or self.baseline.cut == "stopped"):
            self.rebase()  # (again, when the last iteration ended before its baseline was whole)
        t0 = time.monotonic()
        # the first full reading has one (a light reading that came first leaves _n at 0)
        pss_due = not light and self._n % PSS_EVERY == 1 and t0 >= self._pss_next

        def memory(pid: int) -> tuple[int, int]:
            if light and pid not in self._pss:  # no smaps_rollup in a light reading: PSS unknown, 0
                return rss_of(pid), 0
            if pss_due or pid not in self._pss:
                r, self._pss[pid] = rss_pss(pid)
                return r, self._pss[pid]
            return rss_of(pid), self._pss[pid]

        main_rss, main_pss = memory(self.main.pid)
        fds = fds_max = threads = 0
        try:
            with self.main.oneshot():
                fds = fds_max = self.main.num_fds()
                threads = self.main.num_threads()
        except psutil.Error:
            pass
        w_rss = w_pss = live = 0
        pids = self.worker_pids() or []
        alive: set[int] = set()
        for p in self.workers():
            try:
                with p.oneshot():
                    if p.status() == psutil.STATUS_ZOMBIE:
                        continue
                    n = p.num_fds()
                    threads += p.num_threads()
            except psutil.Error:
                continue
            r, q = memory(p.pid)
            w_rss += r
            w_pss += q
            fds += n
            fds_max = max(fds_max, n)
            if p.pid in pids or not pids:
                live += 1
                alive.add(p.pid)
        self.workers_peak = max(self.workers_peak, live)
        dead = [pid for pid in pids if pid not in alive]
        # read after the statuses: still live now means the workers died before any shutdown began
        if dead and self.iter_live():
            self.workers_lost.update(dead)
        if pss_due:
            t1 = time.monotonic()
            self._pss_next = next_walk_at(t1, t1 - t0)
        try:
            total, used, free = fs_used_free(self.shm_dir)
            shm_free: int | None = free
        except OSError:
            total, used, shm_free = 0, self.shm_base, None
        if not light and self.tmp_tracked and self._n % TMP_EVERY == 0 and time.monotonic() >= self._tmp_next:
            w = self._walk_tmp()
            # a cut walk counted part of the tree: the last whole count stands in
            if w.cut is None:
                self._tmp = (w.files, w.nbytes)
            self._read_tmp_free()
        if not light:
            self._n += 1
        tmp = self._tmp
        tmp_free = self._tmp_free
        return {
            "rss": main_rss + w_rss,
            "pss": main_pss + w_pss,
            "main_rss": main_rss,
            "main_pss": main_pss,
            "workers_rss": w_rss,
            "workers_pss": w_pss,
            "fds": fds,
            "fds_max": fds_max,
            "threads": threads,
            "workers": live,
            "worker_restarts": len(self.workers_lost),
            "shm_used": max(0, used - self.shm_base),
            "shm_free": shm_free,
            "shm_total": total,
            # None: not measured (no baseline yet, or the baseline walk was cut off)
            "tmp_files": max(0, tmp[0] - self.tmp_files_base) if tmp is not None else None,
            "tmp_bytes": max(0, tmp[1] - self.tmp_bytes_base) if tmp is not None else None,
            "tmp_free": tmp_free,
        }

    def forget(self) -> None:
        """Drop cached process handles of workers that are gone (a new epoch's workers are new pids):
        called when an iteration begins, so the caches hold one iterator's workers, not every epoch's."""
        for pid in [pid for pid, p in self._procs.items() if not p.is_running()]:
            del self._procs[pid]
        for pid in [pid for pid in self._pss if pid not in self._procs and pid != self.main.pid]:
            del self._pss[pid]
