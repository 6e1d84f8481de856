"""Resource sampling of one child's process tree, its /dev/shm and its TMPDIR (psutil).

The shm directory is read through ``/proc/<child>/root/dev/shm``: that is the host's /dev/shm for a
plain child and the private tmpfs for a child in its own mount namespace (emulated shm), with no
special case. Shared memory is counted two ways: the filesystem's used bytes minus the baseline at
start (this catches the ``file_descriptor`` strategy, whose files are unlinked at once), and the
``torch_<pid>_*`` files named after the tree's pids (``file_system`` strategy, and leftovers).

TMPDIR is counted without multiprocessing's own ``pymp-*`` folders (see :func:`tmp_usage`). An emulated
TMPDIR is a tmpfs inside the child's mount namespace: it is read through ``/proc/<pid>/root`` of any
live process of the tree, and a sample taken when none is left has no TMPDIR reading (``tmp_seen``).
"""
from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

_TORCH_SHM = re.compile(r"^torch_(\d+)_")


@dataclass
class Peaks:
    rss_bytes: int = 0
    pss_bytes: int = 0
    uss_bytes: int = 0
    shm_used_bytes: int = 0      # statvfs used minus the baseline at start
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
    tmp_mp_dirs: int = 0         # multiprocessing's pymp-* folders in TMPDIR (not in tmp_files/bytes)
    tmp_seen: bool = True        # False: TMPDIR could not be read (an emulated one whose tree is gone)


def shm_torch_files(shm_dir: str | os.PathLike[str], pids: set[int] | None = None) -> list[Path]:
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
    """(total, used, free) bytes of the filesystem holding ``path``."""
    st = os.statvfs(path)
    total = st.f_blocks * st.f_frsize
    free = st.f_bavail * st.f_frsize
    return total, total - st.f_bfree * st.f_frsize, free


class TreeMonitor:
    """Samples a process tree every ``interval`` seconds in a daemon thread until :meth:`stop`."""

    def __init__(self, pid: int, tmpdir: str | os.PathLike[str], interval: float = 0.25,
                 shm_dir: str | None = None, private_tmp: bool = False) -> None:
        self.pid, self.tmpdir, self.interval = pid, str(tmpdir), interval
        self.private_tmp = private_tmp
        self.shm_dir = shm_dir or f"/proc/{pid}/root/dev/shm"
        self.samples: list[Sample] = []
        self.peaks = Peaks()
        self.seen: dict[int, float] = {}     # pid → create_time: the tree as observed, for cleanup
        self.names: dict[int, str] = {}
        self.parents: dict[int, int] = {}    # pid → parent pid when first seen (per-rank subtrees)
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
        rss = pss = uss = fds = threads = 0
        per: list[tuple[int, str, int]] = []
        for p in procs:
            try:
                with p.oneshot():
                    if p.pid not in self.seen:
                        self.seen[p.pid] = p.create_time()
                        self.names[p.pid] = p.name()
                        self.parents[p.pid] = p.ppid()
                    mi = p.memory_full_info()
                    rss += mi.rss
                    pss += getattr(mi, "pss", 0)
                    uss += mi.uss
                    fds += p.num_fds()
                    threads += p.num_threads()
                    per.append((p.pid, self.names[p.pid], mi.rss))
            except psutil.Error:
                continue
        try:
            _, used, free_now = fs_used_free(self.shm_dir)
            free: int | None = free_now
        except OSError:  # the child is gone (a zombie's /proc/<pid>/root cannot be read): no reading
            used, free = self.shm_baseline, None
        shm_used = max(0, used - self.shm_baseline)
        shm_files = len(shm_torch_files(self.shm_dir, set(self.seen)))
        view = self._tmp_view(procs)
        tmp_files, tmp_bytes, tmp_mp = tmp_usage(view) if view else (0, 0, 0)
        s = Sample(time.time(), rss, pss, uss, shm_used, shm_files, fds, threads, len(per),
                   tmp_files, tmp_bytes, per, tmp_mp, view is not None)
        self.samples.append(s)
        pk = self.peaks
        pk.rss_bytes, pk.pss_bytes = max(pk.rss_bytes, rss), max(pk.pss_bytes, pss)
        pk.uss_bytes, pk.shm_used_bytes = max(pk.uss_bytes, uss), max(pk.shm_used_bytes, shm_used)
        pk.shm_files, pk.fds = max(pk.shm_files, shm_files), max(pk.fds, fds)
        pk.threads, pk.procs = max(pk.threads, threads), max(pk.procs, len(per))
        pk.tmp_bytes = max(pk.tmp_bytes, tmp_bytes)
        if free is not None:
            self.shm_free_min = free if self.shm_free_min is None else min(self.shm_free_min, free)
        return s

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
