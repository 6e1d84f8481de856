"""Resource sampling of one child's process tree, its /dev/shm and its TMPDIR (psutil).

The shm directory is read through ``/proc/<child>/root/dev/shm``: that is the host's /dev/shm for a
plain child and the private tmpfs for a child in its own mount namespace (emulated shm), with no
special case. Shared memory is counted two ways: the filesystem's used bytes minus the baseline at
start (this catches the ``file_descriptor`` strategy, whose files are unlinked at once), and the
``torch_<pid>_*`` files named after the tree's pids (``file_system`` strategy, and leftovers).

TMPDIR is counted without multiprocessing's own ``pymp-*`` folders (see :func:`tmp_usage`). An emulated
TMPDIR is a tmpfs inside the child's mount namespace: it is read through ``/proc/<pid>/root`` of any
live process of the tree, and a sample taken when none is left has no TMPDIR reading (``tmp_seen``).

NOTE [sampling cost]
    The monitor runs in the parent, on the cores the workers need. RSS, fds and threads are read every
    sample (``memory_info``: one /proc/<pid>/statm read). PSS and USS need ``memory_full_info``, for which
    the kernel walks every mapping of the process (smaps): that is read at most every
    :data:`FULL_EVERY_S`, and at once whenever the tree's RSS rises past its peak by
    :data:`FULL_ON_RSS_RISE`, so the reported PSS/USS peaks are those of the samples where memory peaked.
    A sample in between holds the last PSS/USS reading (``Sample.full`` is False). The sample list is
    bounded (:data:`MAX_SAMPLES`): past it the older samples are halved, each pair keeping the one with
    the larger RSS (the tree's peaks are kept apart, exactly, in :class:`Peaks`; a decimated sample keeps
    its per-process RSS, which per-rank peaks are summed from). The newest sample is always last.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

_TORCH_SHM = re.compile(r"^torch_(\d+)_")

FULL_EVERY_S = 1.0
"""Most seconds between two PSS/USS readings (NOTE [sampling cost])."""
FULL_ON_RSS_RISE = 1.02
"""A PSS/USS reading is taken at once when the tree's RSS exceeds its peak so far by this factor."""
MAX_SAMPLES = 4000
"""Samples kept (about 17 min at 0.25 s before the first halving; NOTE [sampling cost])."""


@dataclass
class Peaks:
    rss_bytes: int = 0
    pss_bytes: int = 0
    uss_bytes: int = 0
    shm_used_bytes: int = 0  # statvfs used minus the baseline at start
    shm_files: int = 0
    fds: int = 0
    threads: int = 0
    procs: int = 0
    tmp_bytes: int = 0


@dataclass
class Sample:
    t: float
    rss: int
    pss: int
    uss: int
    shm_used: int
    shm_files: int
    fds: int
    threads: int
    procs: int
    tmp_files: int
    tmp_bytes: int
    per_process: list[tuple[int, str, int]] = field(default_factory=list)  # (pid, name, rss)
    tmp_mp_dirs: int = 0  # multiprocessing's pymp-* folders in TMPDIR (not in tmp_files/bytes)
    tmp_seen: bool = True  # False: TMPDIR could not be read (an emulated one whose tree is gone)
    full: bool = True  # PSS/USS read at this sample; False: the last reading held (NOTE [sampling cost])


def shm_torch_files(shm_dir: str | os.PathLike[str], pids: AbstractSet[int] | None = None) -> list[Path]:
    """``torch_<pid>_*`` files in ``shm_dir``, only those of ``pids`` when given (never anyone else's)."""
    out: list[Path] = []
    try:
        with os.scandir(shm_dir) as it:
            for e in it:
                m = _TORCH_SHM.match(e.name)
                if m and (pids is None or int(m.group(1)) in pids):
                    out.append(Path(e.path))
    except OSError:
        pass
    return out


def dir_usage(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(files, allocated bytes) under ``path``; (0, 0) if it is gone."""
    files = size = 0
    for dirpath, _dirs, names in os.walk(path):
        for n in names:
            try:
                st = os.lstat(os.path.join(dirpath, n))
            except OSError:
                continue
            files += 1
            size += st.st_blocks * 512
    return files, size


MP_TMP_PREFIX = "pymp-"


def tmp_usage(path: str | os.PathLike[str]) -> tuple[int, int, int]:
    """(files, allocated bytes, pymp folders) under ``path``, multiprocessing's folders left out.

    Every process that passes a file descriptor (the ``file_descriptor`` strategy, in each DataLoader
    worker) makes a ``pymp-XXXX`` folder holding one AF_UNIX listener socket (0 bytes); its exit
    finalizer removes it, so a process ended by a signal leaves it behind. Counted apart: it says how
    processes ended, not that the pipeline writes temp files.
    """
    files = size = mp = 0
    try:
        entries = list(os.scandir(path))
    except OSError:
        return 0, 0, 0
    for e in entries:
        try:
            if e.name.startswith(MP_TMP_PREFIX) and e.is_dir(follow_symlinks=False):
                mp += 1
            elif e.is_dir(follow_symlinks=False):
                f, b = dir_usage(e.path)
                files, size = files + f, size + b
            else:
                files += 1
                size += e.stat(follow_symlinks=False).st_blocks * 512
        except OSError:
            continue
    return files, size, mp


def fs_used_free(path: str | os.PathLike[str]) -> tuple[int, int, int]:
    """(total, used, free) bytes of the filesystem holding ``path`` (free: what a non-root writer may use)."""
    du = psutil.disk_usage(os.fspath(path))
    return du.total, du.used, du.free


def decimate(samples: list[Sample]) -> list[Sample]:
    """Every other sample: of each consecutive pair, the one with the larger RSS (an odd last one stays)."""
    out = [a if a.rss >= b.rss else b for a, b in zip(samples[0::2], samples[1::2])]
    if len(samples) % 2:
        out.append(samples[-1])
    return out


class TreeMonitor:
    """Samples a process tree every ``interval`` seconds in a daemon thread until :meth:`stop`."""

    def __init__(
        self,
        pid: int,
        tmpdir: str | os.PathLike[str],
        interval: float = 0.25,
        shm_dir: str | None = None,
        private_tmp: bool = False,
    ) -> None:
        self.pid, self.tmpdir, self.interval = pid, str(tmpdir), interval
        self.private_tmp = private_tmp
        self.shm_dir = shm_dir or f"/proc/{pid}/root/dev/shm"
        self.samples: list[Sample] = []
        self.peaks = Peaks()
        self.seen: dict[int, float] = {}  # pid → create_time: the tree as observed, for cleanup
        self.names: dict[int, str] = {}
        self.parents: dict[int, int] = {}  # pid → parent pid when first seen (per-rank subtrees)
        self._full_t = -float("inf")  # when PSS/USS were last read
        self._pss = self._uss = 0  # that reading, held by the samples in between
        self.shm_total = self.shm_baseline = 0
        self.shm_free_min: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ssv2-monitor", daemon=True)
        self.rebase()

    def rebase(self) -> None:
        """Read /dev/shm's size and baseline again: call once the child has set up its own mounts (a
        sandboxed child mounts its private /dev/shm after the spawn, before it reports ``started``)."""
        try:
            self.shm_total, self.shm_baseline, _ = fs_used_free(self.shm_dir)
        except OSError:
            pass
        self.shm_free_min = None

    def start(self) -> TreeMonitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def tree(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sample()
            except Exception:  # sampling must never take the run down
                pass
            self._stop.wait(self.interval)

    def sample(self) -> Sample | None:
        procs = self.tree()
        if not procs:
            return None
        now = time.monotonic()
        full = now - self._full_t >= FULL_EVERY_S
        rss = fds = threads = 0
        per: list[tuple[int, str, int]] = []
        live: list[psutil.Process] = []
        for p in procs:
            try:
                with p.oneshot():
                    if p.pid not in self.seen:
                        self.seen[p.pid] = p.create_time()
                        self.names[p.pid] = p.name()
                        self.parents[p.pid] = p.ppid()
                    r = p.memory_info().rss
                    fds += p.num_fds()
                    threads += p.num_threads()
            except psutil.Error:
                continue
            rss += r
            per.append((p.pid, self.names[p.pid], r))
            live.append(p)
        if not full and rss > self.peaks.rss_bytes * FULL_ON_RSS_RISE:
            full = True  # a new memory peak: read PSS/USS now, so their peaks are not missed
        if full:
            pss = uss = 0
            for p in live:
                try:
                    mi = p.memory_full_info()
                except psutil.Error:
                    continue
                pss += getattr(mi, "pss", 0)
                uss += mi.uss
            self._full_t, self._pss, self._uss = now, pss, uss
        pss, uss = self._pss, self._uss
        try:
            _, used, free_now = fs_used_free(self.shm_dir)
            free: int | None = free_now
        except OSError:  # the child is gone (a zombie's /proc/<pid>/root cannot be read): no reading
            used, free = self.shm_baseline, None
        shm_used = max(0, used - self.shm_baseline)
        shm_files = len(shm_torch_files(self.shm_dir, self.seen.keys()))
        view = self._tmp_view(procs)
        tmp_files, tmp_bytes, tmp_mp = tmp_usage(view) if view else (0, 0, 0)
        s = Sample(
            time.time(),
            rss,
            pss,
            uss,
            shm_used,
            shm_files,
            fds,
            threads,
            len(per),
            tmp_files,
            tmp_bytes,
            per,
            tmp_mp,
            view is not None,
            full,
        )
        self._keep(s)
        pk = self.peaks
        pk.rss_bytes, pk.pss_bytes = max(pk.rss_bytes, rss), max(pk.pss_bytes, pss)
        pk.uss_bytes, pk.shm_used_bytes = max(pk.uss_bytes, uss), max(pk.shm_used_bytes, shm_used)
        pk.shm_files, pk.fds = max(pk.shm_files, shm_files), max(pk.fds, fds)
        pk.threads, pk.procs = max(pk.threads, threads), max(pk.procs, len(per))
        pk.tmp_bytes = max(pk.tmp_bytes, tmp_bytes)
        if free is not None:
            self.shm_free_min = free if self.shm_free_min is None else min(self.shm_free_min, free)
        return s

    def _keep(self, s: Sample) -> None:
        """Append ``s``; past :data:`MAX_SAMPLES`, halve the older samples (NOTE [sampling cost])."""
        self.samples.append(s)
        if len(self.samples) > MAX_SAMPLES:
            self.samples = [*decimate(self.samples[:-1]), self.samples[-1]]

    def _tmp_view(self, procs: list[psutil.Process]) -> str | None:
        """Where to read TMPDIR. An emulated TMPDIR is a tmpfs mounted inside the child's namespace: look
        through the root of a live process of the tree (the child main may already be a zombie, whose
        root cannot be read; the host's view of that path is only the empty mount point)."""
        if not self.private_tmp:
            return self.tmpdir
        for p in procs:
            view = f"/proc/{p.pid}/root{self.tmpdir}"
            if os.path.isdir(view):
                return view
        return None

    def last_tmp_reading(self) -> Sample | None:
        """The last sample that could read TMPDIR."""
        for s in reversed(self.samples):
            if s.tmp_seen:
                return s
        return None

    def alive_tree(self) -> list[psutil.Process]:
        """Processes observed in the tree that still exist and are the same processes (create_time)."""
        out = []
        for pid, ctime in self.seen.items():
            try:
                p = psutil.Process(pid)
                if abs(p.create_time() - ctime) < 0.01 and p.status() != psutil.STATUS_ZOMBIE:
                    out.append(p)
            except psutil.Error:
                continue
        return out

    def series(self) -> dict[str, list[Any]]:
        t0 = self.samples[0].t if self.samples else 0.0
        return {
            "t": [round(s.t - t0, 3) for s in self.samples],
            "rss": [s.rss for s in self.samples],
            "pss": [s.pss for s in self.samples],
            "shm_used": [s.shm_used for s in self.samples],
            "shm_files": [s.shm_files for s in self.samples],
            "fds": [s.fds for s in self.samples],
            "threads": [s.threads for s in self.samples],
            "procs": [s.procs for s in self.samples],
            "tmp_bytes": [s.tmp_bytes for s in self.samples],
        }
