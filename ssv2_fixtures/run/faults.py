"""Real fault drills: a dataset wrapper that makes the loading process provoke a real fault at a batch.

Used by the suite's own tests and by users (``--inject-fault KIND[@BATCH][/RANK]``) to check that the
suite traps each kind on their machine. Every drill is the real thing, not an imitation of its message:

========== ==================================================================== ==================
drill      what the loading process does                                        expected outcome
========== ==================================================================== ==================
bus_error  writes through an mmap of a file it truncated to 0 bytes → SIGBUS    bus_error
segfault   reads address 0 through ctypes → SIGSEGV                             segfault
killed     sends itself SIGKILL (a documented stand-in for the OOM killer)      worker_killed
fd_exhausted opens /dev/null until EMFILE, keeps them, re-raises the OSError    fd_exhausted
hang       sleeps in C while holding the GIL, forever (no Python handler runs)  hang
exception  raises RuntimeError                                                  worker_exception
corrupt_video decodes a truncated copy of the item's video                     decode_error
tmp_fill   writes a file in TMPDIR until ENOSPC, re-raises the OSError; refuses  tmp_full
           (RuntimeError) where TMPDIR has more than ``TMP_FILL_MAX_BYTES`` free,
           so it fills an emulated TMPDIR (``Sandbox(tmp_bytes=...)``), never a disk
========== ==================================================================== ==================

Which batch triggers: the drill fires at the first item of batch ``B`` of the run, counted across epochs
as the main process receives them (``B = epoch * N + j`` for the ``j``-th batch of an epoch of ``N``).
A single-process run draws from an endless sampler: one epoch of unbounded length (the main process
says ``N = 0``), so ``B`` is simply the ``B``-th batch, built by worker ``B % W``; ``-m distributed``
ranks cross real epochs.
DataLoader restarts its round robin at every epoch: batch ``j`` of an epoch goes to worker ``j % W``, and
each worker builds its batches in order. So a copy of the wrapper that has built ``k`` batches (counted
in ``__getitems__``, one call per batch, so a short last batch counts as one) knows the batch it builds
now; the main process tells it the epoch and ``N`` (:meth:`FaultyDataset.begin_epoch`, called before
each epoch's iterator). New workers copy that state at each epoch; persistent workers keep counting past
the epoch end, which the same formula covers. A drill at a batch the run never loads would silently
never fire, so :func:`~ssv2_fixtures.runner.run_config` refuses it.

Ranks (``-m distributed``): ``/RANK`` fires the drill in that global rank's loader only (``exception@2/1``:
rank 1, its batch 2; the batch is counted in that rank's own loader). Without ``/RANK`` it fires in every
rank. A single-process run counts as rank 0: a drill aimed at another rank never fires there.

The ``batch`` an outcome reports is a different number: how many batches the main process *received*
before the failure. A fault at batch ``B`` fires while the main process is still waiting for earlier,
prefetched batches, and when the drill kills the worker, torch's SIGCHLD handler raises at once, before
those batches are consumed: ``segfault@2`` with ``W=2`` reads ``batch=0``. A drill that raises (exception,
corrupt_video, fd_exhausted, tmp_fill) is re-raised in order, so it reads ``batch=B``. ``hang`` in a worker
holds the GIL, so that worker's feeder thread cannot send the batch it finished before the hang either.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass
from typing import Any

from .units import GiB, fmt_bytes

FAULTS: dict[str, str] = {
    "bus_error": "bus_error",
    "segfault": "segfault",
    "killed": "worker_killed",
    "fd_exhausted": "fd_exhausted",
    "hang": "hang",
    "exception": "worker_exception",
    "corrupt_video": "decode_error",
    "tmp_fill": "tmp_full",
}
"""Drill name → the outcome kind the suite must report for it."""


@dataclass(frozen=True)
class FaultSpec:
    kind: str
    batch: int = 0
    rank: int | None = None  # global rank whose loader fires it (None: every rank; a plain run is rank 0)

    def __post_init__(self) -> None:
        if self.kind not in FAULTS:
            raise ValueError(f"unknown fault {self.kind!r}; choose one of {sorted(FAULTS)}")
        if self.batch < 0:
            raise ValueError(f"fault batch must be >= 0, got {self.batch}")
        if self.rank is not None and self.rank < 0:
            raise ValueError(f"fault rank must be >= 0, got {self.rank}")

    @property
    def expected_kind(self) -> str:
        return FAULTS[self.kind]

    def fires_in(self, rank: int) -> bool:
        """Whether the drill fires in the loader of global rank ``rank`` (a plain run is rank 0)."""
        return self.rank is None or self.rank == rank

    def __str__(self) -> str:
        return f"{self.kind}@{self.batch}" + (f"/{self.rank}" if self.rank is not None else "")


def parse_fault(text: str, *, where: str = "--inject-fault") -> FaultSpec:
    """``KIND[@BATCH][/RANK]`` → :class:`FaultSpec`; a bad value names where it came from."""
    head, slash, rank = text.strip().partition("/")
    kind, _, batch = head.partition("@")
    try:
        try:
            b = int(batch) if batch else 0
            r = int(rank) if slash else None
        except ValueError:
            raise ValueError("BATCH and RANK must be integers") from None
        return FaultSpec(kind, b, r)
    except ValueError as exc:
        raise ValueError(f"invalid fault {text!r} from {where}: {exc} (form: KIND[@BATCH][/RANK])") from None


def refuse_unfit(fault: FaultSpec | None, factory: str | None) -> None:
    """Raise ValueError when ``fault`` cannot run on the dataset: ``corrupt_video`` decodes a truncated
    copy of an item's file through :class:`~ssv2_fixtures.data.clips.SSv2Clips` (its index and its
    ``load``), which a user's pipeline (``factory``) does not have."""
    if fault is not None and fault.kind == "corrupt_video" and factory:
        raise ValueError(
            f"--inject-fault {fault} cannot run with --dataset-factory {factory}: the corrupt_video drill "
            "decodes a truncated copy of an item's video through the suite's own dataset (SSv2Clips), and a "
            "user's pipeline reads its files its own way. Fix: drop --dataset-factory for this drill, or "
            "choose another drill (e.g. --inject-fault exception)"
        )


class FaultyDataset:
    """Wraps a map-style dataset; fires ``fault`` in the process that builds batch ``fault.batch``."""

    def __init__(self, dataset: Any, fault: FaultSpec) -> None:
        self.dataset, self.fault = dataset, fault
        self._epoch, self._per_epoch, self._built = 0, 0, 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str) -> Any:  # expose the wrapped dataset's attributes
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def begin_epoch(self, epoch: int, batches_per_epoch: int) -> None:
        """Main process, before each epoch's iterator (the workers it starts copy this state);
        ``batches_per_epoch=0``: the epoch has no end (an endless sampler)."""
        self._epoch, self._per_epoch, self._built = epoch, batches_per_epoch, 0

    def batch_now(self) -> int:
        """The run's number of the batch this copy is about to build (see the module docstring)."""
        from torch.utils.data import get_worker_info

        info = get_worker_info()
        w, nw = (0, 1) if info is None else (info.id, info.num_workers)
        n = self._per_epoch or sys.maxsize  # 0 (an endless sampler) or never told: one endless epoch
        mine = len(range(w, n, nw))  # batches of an epoch this worker builds
        if mine == 0:
            return -1
        k = self._built
        return (self._epoch + k // mine) * n + w + (k % mine) * nw

    def __getitems__(self, indices: list[int]) -> list[Any]:
        """One call per batch (torch's fetcher prefers it to one ``__getitem__`` per item); the drill
        fires at the batch's first item, before any is fetched."""
        due = self.batch_now() == self.fault.batch
        self._built += 1
        if due and indices:
            if self.fault.kind == "corrupt_video":
                i = indices[0]
                return [(corrupt_video(self.dataset, i), self.dataset.index.label(i)), *self._fetch(indices[1:])]
            provoke(self.fault.kind)
        return self._fetch(indices)

    def _fetch(self, indices: list[int]) -> list[Any]:
        """The wrapped dataset's items, through its own ``__getitems__`` when it has one (as torch would)."""
        many = getattr(self.dataset, "__getitems__", None)
        if callable(many):
            return list(many(indices)) if indices else []
        return [self.dataset[i] for i in indices]

    def __getitem__(self, i: int) -> Any:  # a single item, outside batching: never a drill
        return self.dataset[i]


def provoke(kind: str) -> None:
    """Provoke ``kind`` in this process, for real."""
    if kind == "bus_error":
        # A shared mapping whose file shrinks under it: the next write faults with SIGBUS.
        fd, path = tempfile.mkstemp(prefix="ssv2-fault-bus-")
        os.unlink(path)
        os.ftruncate(fd, 2 * mmap.PAGESIZE)
        m = mmap.mmap(fd, 2 * mmap.PAGESIZE)
        os.ftruncate(fd, 0)
        m[mmap.PAGESIZE] = 1
    elif kind == "segfault":
        ctypes.string_at(0)
    elif kind == "killed":
        os.kill(os.getpid(), signal.SIGKILL)
    elif kind == "fd_exhausted":
        held = _HELD_FDS
        while True:
            try:
                held.append(os.open(os.devnull, os.O_RDONLY))
            except OSError:
                raise  # the real EMFILE, from the real limit
    elif kind == "hang":
        libc = ctypes.PyDLL(None)  # PyDLL keeps the GIL during the call: no Python handler can run
        while True:
            libc.sleep(3600)
    elif kind == "tmp_fill":
        _fill_tmp()
    elif kind == "exception":
        raise RuntimeError("injected fault: exception raised by the dataset code")
    else:
        raise ValueError(f"provoke: {kind!r} is not a process-level fault")


_HELD_FDS: list[int] = []

TMP_FILL_MAX_BYTES = 1 * GiB
"""``tmp_fill`` refuses to start where TMPDIR has more free space than this (a safety cap, not a limit)."""


def _fill_tmp() -> None:
    """Write zeros to a file in TMPDIR until the filesystem refuses (ENOSPC, or EDQUOT on a quota); the
    OSError propagates unchanged.

    The file is removed on the way out (the error is the point, not the leftover).
    """
    tmp = tempfile.gettempdir()  # honours TMPDIR
    free = shutil.disk_usage(tmp).free
    if free > TMP_FILL_MAX_BYTES:
        raise RuntimeError(
            f"tmp_fill refuses to fill TMPDIR {tmp}: {fmt_bytes(free)} free is more than the "
            f"{fmt_bytes(TMP_FILL_MAX_BYTES)} safety cap; run it under an emulated TMPDIR "
            "(Sandbox(tmp_bytes=...), e.g. --emulate hpc-quota)"
        )
    fd, path = tempfile.mkstemp(prefix="ssv2-fault-tmp-", dir=tmp)
    chunk = b"\0" * (1 << 20)
    try:
        written = 0
        while written <= TMP_FILL_MAX_BYTES + len(chunk):
            written += os.write(fd, chunk)  # tmpfs allocates pages for zeros too; raises the real OSError
        raise RuntimeError(f"tmp_fill wrote {fmt_bytes(written)} to {tmp} without ENOSPC")
    finally:
        os.close(fd)
        os.unlink(path)


def corrupt_video(dataset: Any, i: int) -> Any:
    """Decode a truncated copy of item ``i``'s video through the dataset's own decoder and error path
    (its public ``load``, on a shallow copy whose index points item ``i`` at the broken file): raises
    the dataset's :class:`~ssv2_fixtures.data.clips.ClipDecodeError` naming the copy and ``i``'s id."""
    import copy

    src = dataset.index.path(i)
    with open(src, "rb") as f:
        head = f.read(max(64, os.path.getsize(src) // 20))
    fd, path = tempfile.mkstemp(prefix="ssv2-fault-corrupt-", suffix=".webm")
    with os.fdopen(fd, "wb") as f:
        f.write(head[:64] + bytes(len(head) - 64))  # header start, then zeros: not decodable
    try:
        view = copy.copy(dataset)
        view.index = _Redirected(dataset.index, i, path)
        return view.load(i)
    finally:
        os.unlink(path)


class _Redirected:
    """An index whose item ``i`` lives at ``path``; everything else is the wrapped index's."""

    def __init__(self, index: Any, i: int, path: str) -> None:
        self._index, self._i, self._path = index, i, path

    def path(self, i: int) -> str:
        return self._path if i == self._i else str(self._index.path(i))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._index, name)

    def __len__(self) -> int:
        return len(self._index)
