"""``watch(loader)``: the real training loop's data side, measured while it runs.

:class:`Watch` is the facade that composes three parts:

- :mod:`.steps` — the step recorder, the only part on the step path (the training thread, once per batch):
  two ``perf_counter`` calls around ``next()``, two list appends and one reference to the batch
  (NOTE [step path]);
- :mod:`.readings` — every other measurement (psutil readings, batch bytes, sums, findings, the log's
  ``sample`` lines), in one daemon thread every ``interval_s``; the step path never waits for it;
- :mod:`.failure` — a loader failure: classified by the stress outcome rules, written to the log with a
  last sample, and re-raised, the same object (torch's SIGCHLD handler chained while the watch iterates).

NOTE [training thread]: besides the step path, the training thread only opens the log, writes the start
line and starts the thread as an iteration begins, and takes one light reading (no PSS, no TMPDIR walk:
milliseconds) as it ends. The TMPDIR baseline — a walk of up to seconds on a shared /tmp — is the
sampling thread's first reading, taken once the first batch has arrived (or ``interval_s`` has passed),
bounded and with its own cost recorded (``tmp_baseline_*`` in the summary). The watch starts no processes.
"""

from __future__ import annotations

import atexit
import os
import sys
import tempfile
import time
import weakref
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Any, Generic, TypeVar

import psutil

from ..data.loader import effective_prefetch
from .failure import FailureRecord
from .findings import Finding, Series
from .log import SCHEMA, LogWriter, Summary
from .readings import SAMPLES_KEPT, Readings
from .sampler import Sampler, nofile_limit
from .steps import StepRecorder

__all__ = ["SAMPLES_KEPT", "Watch", "loader_config", "process_rank", "watch"]

T = TypeVar("T")


def process_rank() -> tuple[int, int]:
    """(rank, world size): torch.distributed when initialised, else RANK / WORLD_SIZE, else (0, 1)."""
    dist = sys.modules.get("torch.distributed")
    try:
        if dist is not None and dist.is_available() and dist.is_initialized():
            return int(dist.get_rank()), int(dist.get_world_size())
    except Exception:  # a half-initialised process group: fall back to the environment
        pass
    return int(os.environ.get("RANK", "0") or 0), int(os.environ.get("WORLD_SIZE", "1") or 1)


def loader_config(loader: Any) -> dict[str, Any]:
    """The DataLoader settings a stress run is keyed by (prefetch_factor as torch applies it)."""
    workers = int(getattr(loader, "num_workers", 0) or 0)
    config: dict[str, Any] = {
        "batch_size": getattr(loader, "batch_size", None),
        "num_workers": workers,
        "prefetch_factor": effective_prefetch(workers, getattr(loader, "prefetch_factor", None))
        if workers > 0
        else None,
        "persistent_workers": bool(getattr(loader, "persistent_workers", False)),
        "pin_memory": bool(getattr(loader, "pin_memory", False)),
        "timeout": float(getattr(loader, "timeout", 0) or 0),
        "loader": type(loader).__name__,
    }
    torch_multiprocessing = sys.modules.get("torch.multiprocessing")
    if torch_multiprocessing is not None:
        config["sharing_strategy"] = torch_multiprocessing.get_sharing_strategy()
    try:
        config["dataset_len"] = len(loader.dataset)
    except Exception:  # an IterableDataset, or no dataset attribute
        pass
    return config


class WatchLog:
    """The watch's log: opened as an iteration begins (for the rank known then), closed by
    :meth:`Watch.close`; every part of the watch writes through :meth:`write` (nothing without a path)."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = path
        self.writer: LogWriter | None = None

    def open(self, rank: int) -> None:
        if self.writer is None:
            self.writer = LogWriter(self.path, rank)

    def write(self, event: str, fields: dict[str, Any]) -> None:
        writer = self.writer
        if writer is not None:
            writer.write(event, fields, time.time())

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class Watch(Generic[T]):
    """Iterate it like the loader. See :func:`watch`."""

    def __init__(
        self,
        loader: Iterable[T],
        *,
        log: str | os.PathLike[str] | None = None,
        interval_s: float = 1.0,
        name: str | None = None,
        shm_dir: str = "/dev/shm",
        tmpdir: str | os.PathLike[str] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        background: bool = True,
    ) -> None:
        if isinstance(interval_s, bool) or not isinstance(interval_s, (int, float)) or not interval_s > 0:
            raise ValueError(f"watch(interval_s={interval_s!r}): must be a number of seconds > 0, e.g. 1.0")
        if not os.path.isdir(shm_dir):
            raise ValueError(
                f"watch(shm_dir={shm_dir!r}): not a directory; pass the shared-memory mount "
                "the workers allocate in (default /dev/shm)"
            )
        self.loader, self.interval_s = loader, float(interval_s)
        self.name = name or type(loader).__name__
        self.shm_dir = shm_dir
        self.tmpdir = str(tmpdir) if tmpdir is not None else tempfile.gettempdir()
        self.config = loader_config(loader)
        self.rank, self.world_size = process_rank()
        self.background = bool(background)
        self._log = WatchLog(log)
        self._steps = StepRecorder(getattr(loader, "batch_size", None), clock)
        self._readings = Readings(
            self._steps,
            config=self.config,
            shm_dir=shm_dir,
            tmpdir=self.tmpdir,
            interval_s=self.interval_s,
            nofile=nofile_limit(),
            write=self._log.write,
        )
        self._failures = FailureRecord(self._steps, self._readings, write=self._log.write)
        self._open = False  # an iteration has begun and not yet ended (its summary is not written)
        self._pid = os.getpid()  # the process iterating (a forked worker inherits the watch, not its loop)

    # ------------------------------------------------------------------ what the parts hold
    @property
    def log_path(self) -> str | os.PathLike[str] | None:
        return self._log.path

    @property
    def starts(self) -> list[float]:
        """Per batch, the clock when next() was called (the step recorder's)."""
        return self._steps.starts

    @property
    def ends(self) -> list[float]:
        """... and when it returned the batch."""
        return self._steps.ends

    @property
    def samples(self) -> deque[dict[str, Any]]:
        """The latest ``sample`` lines (all of them are in the log)."""
        return self._readings.samples

    @property
    def _sampler(self) -> Sampler | None:
        """The resource sampler, made as the first iteration begins (a test may script one before)."""
        return self._readings.sampler

    @_sampler.setter
    def _sampler(self, sampler: Sampler | None) -> None:
        self._readings.sampler = sampler

    @property
    def _series(self) -> dict[str, Series]:
        return self._readings.series

    @property
    def _failed_exc(self) -> BaseException | None:
        """The loader's exception, as it passed through (the very object)."""
        return self._failures.exc

    # ------------------------------------------------------------------ iteration
    def __iter__(self) -> Iterator[T]:
        batches = self._steps.batches(
            self.loader, begin=self._begin, started=self._started, failed=self._failures.record, end=self._end
        )
        _LIVE.add(batches)
        return batches

    def _begin(self) -> None:
        if self._open:  # a second iterator while the first is unfinished: that one ends here
            self._end()
        self._open = True
        self._pid = os.getpid()
        readings = self._readings
        self.rank, self.world_size = process_rank()  # torch.distributed may have been initialised since
        self._log.open(self.rank)
        readings.prepare()
        self._log.write(
            "start",
            {
                "schema": SCHEMA,
                "name": self.name,
                "pid": os.getpid(),
                "config": self.config,
                "interval_s": self.interval_s,
                "shm_dir": self.shm_dir,
                "tmpdir": self.tmpdir,
                "nofile": readings.nofile,
                "mem_available_bytes": psutil.virtual_memory().available,
                "cores": len(os.sched_getaffinity(0)),
                "world_size": self.world_size,
                "step": len(self._steps.ends),
            },
        )
        if self.background:
            readings.start_thread()

    def _started(self, iterator: Iterator[T]) -> None:
        self._readings.iterator = iterator
        self._readings.iterating = True
        self._failures.chain_sigchld()

    def _end(self) -> None:
        """End the iteration once: stop the thread (a walk in progress gives up), one light reading,
        the summary line. At interpreter exit the atexit hook closes an unfinished loop's generator,
        which runs this. Should one still be closed after finalisation has begun (module teardown),
        the daemon thread may be frozen holding the log's lock: nothing here waits for it then."""
        if not self._open:
            return
        if os.getpid() != self._pid:
            # a forked process (a DataLoader worker) collecting the copy of a loop it inherited: the
            # iteration, its thread and its log belong to the parent
            return
        self._open = False
        readings = self._readings
        readings.iterating = False
        readings.stop.set()
        if sys.is_finalizing():
            return
        self._failures.unchain_sigchld()
        self._failures.record_pending()  # raised by torch's handler inside the training step
        readings.join_thread()
        if self._failures.finding is None:
            try:
                # a short loop may end before the thread's next reading; light: no PSS, no walk
                readings.take(light=True)
                readings.judge()
            except Exception:
                pass
        readings.iterator = None  # let the DataLoader iterator (and its workers) go
        self._steps.latest[0] = None
        self._log.write("summary", dict(self.summary()))

    def close(self) -> None:
        """Stop sampling and close the log (iteration restarts both)."""
        self._readings.stop.set()
        self._log.close()

    def __enter__(self) -> Watch[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ readings and results
    def worker_pids(self) -> list[int] | None:
        """Pids of the live DataLoader iterator's workers ([] with none; None if it does not say)."""
        return self._readings.worker_pids()

    def poll(self) -> None:
        """One reading and the findings it allows: what the sampling thread does every ``interval_s``.
        With ``background=False`` the caller decides when (a test, or a loop that reads at its own steps)."""
        self._readings.poll()

    @property
    def findings(self) -> list[Finding]:
        """What has been found so far, in order (a loader failure last)."""
        with self._readings.lock:
            out = list(self._readings.found.values())
            if self._failures.finding is not None:
                out.append(self._failures.finding)
        return [dict(f) for f in out]  # type: ignore[misc]

    def summary(self) -> Summary:
        failure = self._failures.finding
        out = Summary(
            name=self.name,
            **self._steps.timings(round_size=int(self.config.get("num_workers") or 0)),
            **self._readings.peak_fields(),
            config=dict(self.config),
            failed=failure["kind"] if failure else None,
            findings=[dict(f) for f in self.findings],
        )
        out.update(self._readings.baseline_fields())
        return out


# Every watched loop's generator, weakly. One left unfinished (``break`` with the iterator kept, a
# traceback holding its frame, a reference cycle) is closed at interpreter exit by the atexit hook:
# its summary is written while the sampling thread still runs, and its frame lets the DataLoader
# iterator go, which then shuts its workers down before the interpreter begins finalising, instead
# of during module teardown, where that raised ("Exception ignored in ...") or hung on a lock.
_LIVE: weakref.WeakSet[Generator[Any, None, None]] = weakref.WeakSet()


@atexit.register
def _close_at_exit() -> None:
    for batches in list(_LIVE):
        try:
            batches.close()  # GeneratorExit at its yield: the loop's finally ends the iteration
        except Exception:  # (running in another thread) the process is exiting: add nothing to its output
            pass


def watch(
    loader: Iterable[T],
    log: str | os.PathLike[str] | None = None,
    *,
    interval_s: float = 1.0,
    name: str | None = None,
    shm_dir: str = "/dev/shm",
    tmpdir: str | os.PathLike[str] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    background: bool = True,
) -> Watch[T]:
    """Watch a DataLoader (any iterable of batches) inside the real training loop::

        w = watch(loader, log="watch.jsonl")
        for step, batch in enumerate(w):   # exactly the loader's batches
            train_step(batch)
        print(w.summary())                 # also the log's last line

    ``log``: JSON-lines path (``{rank}`` in it gives each rank its own file); None keeps it in memory.
    ``shm_dir``/``tmpdir``: where the workers' shared memory and temp files go (default /dev/shm and
    the temp dir the process sees). ``clock``: the step path's clock (seconds; default
    ``time.perf_counter``). ``background=False``: no sampling thread; call :meth:`Watch.poll` for
    each reading (tests drive the watch deterministically this way).
    """
    return Watch(
        loader,
        log=log,
        interval_s=interval_s,
        name=name,
        shm_dir=shm_dir,
        tmpdir=tmpdir,
        clock=clock,
        background=background,
    )
