"""``watch(loader)``: the real training loop's data side, measured while it runs.

The step path (the training thread, once per batch) does only this: two ``perf_counter`` calls around
``next()``, two list appends (call time, return time) and one reference to the batch (NOTE [step path]). Every
other measurement — psutil readings, batch bytes, sums, findings, the log — happens in one daemon
thread every ``interval_s``; the step path never waits for it. NOTE [training thread]: besides the step
path, the training thread only opens the log, writes the start line and starts the thread as an
iteration begins, and takes one light reading (no PSS, no TMPDIR walk: milliseconds) as it ends. The
TMPDIR baseline — a walk of up to seconds on a shared /tmp — is the sampling thread's first reading,
taken once the first batch has arrived (or ``interval_s`` has passed), bounded and with its own cost
recorded (``tmp_baseline_*`` in the summary).

Failures pass through: an exception from the loader is classified by the stress outcome rules, written
to the log with a last sample, and re-raised — the same object. torch raises a dead worker's error
from its SIGCHLD handler, in the main thread, wherever it is (often inside the training step, not in
``next()``): the watch chains that handler for as long as it iterates, records what it raises and
raises it on. The watch starts no processes.
"""

from __future__ import annotations

import atexit
import math
import operator
import os
import signal
import sys
import tempfile
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from types import FrameType
from typing import Any, Generic, TypeVar

import psutil

from ..data.batch import describe
from ..data.loader import effective_prefetch
from ..run.child import error_fields
from ..run.shm import shm_slots_for
from ..run.stats import percentile, rate_interval
from . import findings as fnd
from .log import SCHEMA, LogWriter, Summary, TmpBaseline
from .sampler import Sampler, nofile_limit

T = TypeVar("T")

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


def _rank() -> tuple[int, int]:
    """(rank, world size): torch.distributed when initialised, else RANK / WORLD_SIZE, else (0, 1)."""
    dist = sys.modules.get("torch.distributed")
    try:
        if dist is not None and dist.is_available() and dist.is_initialized():
            return int(dist.get_rank()), int(dist.get_world_size())
    except Exception:  # a half-initialised process group: fall back to the environment
        pass
    return int(os.environ.get("RANK", "0") or 0), int(os.environ.get("WORLD_SIZE", "1") or 1)


def _items(batch: Any) -> int:
    """Videos in a batch: the leading size of its first tensor (the DataLoader's batch dimension)."""
    b = batch
    while True:
        if isinstance(b, (tuple, list)):
            if not b:
                return 0
            b = b[0]
        elif isinstance(b, dict):
            if not b:
                return 0
            b = next(iter(b.values()))
        else:
            break
    shape = getattr(b, "shape", None)
    return int(shape[0]) if shape else 1


def loader_config(loader: Any) -> dict[str, Any]:
    """The DataLoader settings a stress run is keyed by (prefetch_factor as torch applies it)."""
    w = int(getattr(loader, "num_workers", 0) or 0)
    cfg: dict[str, Any] = {
        "batch_size": getattr(loader, "batch_size", None),
        "num_workers": w,
        "prefetch_factor": effective_prefetch(w, getattr(loader, "prefetch_factor", None)) if w > 0 else None,
        "persistent_workers": bool(getattr(loader, "persistent_workers", False)),
        "pin_memory": bool(getattr(loader, "pin_memory", False)),
        "timeout": float(getattr(loader, "timeout", 0) or 0),
        "loader": type(loader).__name__,
    }
    tmp = sys.modules.get("torch.multiprocessing")
    if tmp is not None:
        cfg["sharing_strategy"] = tmp.get_sharing_strategy()
    try:
        cfg["dataset_len"] = len(loader.dataset)
    except Exception:  # an IterableDataset, or no dataset attribute
        pass
    return cfg


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
        self.loader, self.log_path, self.interval_s = loader, log, float(interval_s)
        self.name = name or type(loader).__name__
        self.shm_dir = shm_dir
        self.tmpdir = str(tmpdir) if tmpdir is not None else tempfile.gettempdir()
        self.config = loader_config(loader)
        self.rank, self.world_size = _rank()
        self.starts: list[float] = []  # perf_counter when next() was called, per batch
        self.ends: list[float] = []  # ... and when it returned the batch
        bs = getattr(loader, "batch_size", None)
        self._fixed: int | None = bs if isinstance(bs, int) and not isinstance(bs, bool) and bs > 0 else None
        self.videos: list[int] = []  # per batch, only without a fixed batch size
        self._partial: dict[int, int] = {}  # with one: batch index → videos, for short last batches
        # the latest ``sample`` lines (SampleLine), bounded: a long run's whole history is in the log,
        # and what the findings and the summary need is kept incrementally below
        self.samples: deque[dict[str, Any]] = deque(maxlen=SAMPLES_KEPT)
        self._n_samples = 0
        self._peaks: dict[str, int] = {}
        self._shm_free_min: int | None = None
        self._series: dict[str, fnd.Series] = {k: fnd.Series() for k in SERIES_KEYS}
        self._clock = clock  # the step path's clock (tests drive a fake one)
        self.background = bool(background)
        self._iterating = False
        self._found: dict[str, fnd.Finding] = {}
        self._order: list[str] = []
        self._failure: fnd.Finding | None = None
        self._failed_exc: BaseException | None = None
        self._pending: BaseException | None = None
        self._last: list[Any] = [None]  # the latest batch, for the sampling thread (batch bytes)
        self._batch_bytes = 0
        self._it: Any = None
        self._writer: LogWriter | None = None
        self._sampler: Sampler | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._prev_sigchld: Any = None
        self._our_sigchld: Callable[[int, FrameType | None], Any] | None = None
        self._nofile = nofile_limit()
        self._acc_n, self._acc_wait, self._acc_videos = 0, 0.0, 0
        self._open = False  # an iteration has begun and not yet ended (its summary is not written)
        self._epoch = 0  # iterations begun: a generator ends only its own
        self._pid = os.getpid()  # the process iterating (a forked worker inherits the watch, not its loop)
        self._start_s: float | None = None  # the watch's own start-up inside the first batch's wait
        self._baseline_logged = False

    # ------------------------------------------------------------------ the step path
    def __iter__(self) -> Iterator[T]:
        batches = self._batches()
        _LIVE.add(batches)
        return batches

    def _batches(self) -> Generator[T, None, None]:
        pc = self._clock
        # the training loop asked for its first batch: that batch's wait runs from here, through the
        # watch's start-up and the loader's (its workers), as the loop saw it
        asked = pc()
        add_start, add_end = self.starts.append, self.ends.append
        add_start(asked)
        try:
            self._begin()
            epoch = self._epoch
            if self._start_s is None:
                self._start_s = pc() - asked
            it = iter(self.loader)
        except BaseException:
            del self.starts[len(self.ends) :]
            self._end()
            raise
        self._it = it
        self._iterating = True
        self._chain_sigchld()
        last = self._last
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
        # suspended at interpreter exit is closed by the atexit hook (see _LIVE).
        try:
            if self._fixed is not None:
                for batch in it:
                    add_end(pc())
                    last[0] = batch
                    yield batch
                    add_start(pc())
            else:
                count = self.videos.append
                for batch in it:
                    add_end(pc())
                    count(_items(batch))
                    last[0] = batch
                    yield batch
                    add_start(pc())
            self._count_last(batch)
        except Exception as exc:
            self._on_failure(exc)
            raise
        finally:
            if epoch == self._epoch:  # (a later iteration of the same watch has not ended this one)
                # the start of the next() that ended the loop (StopIteration, a failure) has no batch:
                # drop it, so that a next epoch's batches pair their own starts and ends
                del self.starts[len(self.ends) :]
                self._end()

    def _count_last(self, batch: Any) -> None:
        if self._fixed is not None and batch is not None and self.ends:
            n = _items(batch)
            if n != self._fixed:
                self._partial[len(self.ends) - 1] = n

    def _videos(self, lo: int, hi: int) -> int:
        """Videos in batches ``lo`` to ``hi - 1``."""
        if self._fixed is None:
            return sum(self.videos[lo:hi])
        return (hi - lo) * self._fixed + sum(v - self._fixed for i, v in self._partial.items() if lo <= i < hi)

    def _video_list(self, lo: int, hi: int) -> list[int]:
        """Videos per batch, batches ``lo`` to ``hi - 1``."""
        if self._fixed is None:
            return list(self.videos[lo:hi])
        return [self._partial.get(i, self._fixed) for i in range(lo, hi)]

    def _steps(self) -> int:
        n = min(len(self.starts), len(self.ends))
        return n if self._fixed is not None else min(n, len(self.videos))

    # ------------------------------------------------------------------ lifecycle
    def _begin(self) -> None:
        if self._open:  # a second iterator while the first is unfinished: that one ends here
            self._end()
        self._open = True
        self._pid = os.getpid()
        self._epoch += 1
        # one stop event per iteration: a thread of an earlier one never sees it cleared
        self._stop = threading.Event()
        self.rank, self.world_size = _rank()  # torch.distributed may have been initialised since
        if self._writer is None:
            self._writer = LogWriter(self.log_path, self.rank)
        if self._sampler is None:
            self._sampler = Sampler(
                shm_dir=self.shm_dir,
                tmpdir=self.tmpdir,
                worker_pids=self.worker_pids,
                iter_live=self._iter_live,
                stop=self._stop,
            )
        else:
            self._sampler.stop = self._stop
            self._sampler.forget()  # a new iterator has new workers: drop the handles of the last one's
        self._write(
            "start",
            {
                "schema": SCHEMA,
                "name": self.name,
                "pid": os.getpid(),
                "config": self.config,
                "interval_s": self.interval_s,
                "shm_dir": self.shm_dir,
                "tmpdir": self.tmpdir,
                "nofile": self._nofile,
                "mem_available_bytes": psutil.virtual_memory().available,
                "cores": len(os.sched_getaffinity(0)),
                "world_size": self.world_size,
                "step": len(self.ends),
            },
        )
        if self.background:
            self._thread = threading.Thread(
                target=self._loop, args=(self._stop, len(self.ends)), name="ssv2-watch", daemon=True
            )
            self._thread.start()

    def _iter_live(self) -> bool:
        """The iterator runs and has not begun shutting its workers down (torch sets ``_shutdown``)."""
        return self._iterating and not getattr(self._it, "_shutdown", False)

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
        self._iterating = False
        self._stop.set()
        if sys.is_finalizing():
            return
        self._unchain_sigchld()
        if self._pending is not None and self._failed_exc is None:
            self._on_failure(self._pending)  # raised by torch's handler inside the training step
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        self._thread = None
        if self._failure is None:
            try:
                # a short loop may end before the thread's next reading; light: no PSS, no walk
                self._take_sample(light=True)
                self._judge()
            except Exception:
                pass
        self._it = None  # let the DataLoader iterator (and its workers) go
        self._last[0] = None
        self._write("summary", dict(self.summary()))

    def close(self) -> None:
        """Stop sampling and close the log (iteration restarts both)."""
        self._stop.set()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> Watch[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ failures
    def _chain_sigchld(self) -> None:
        """Wrap the SIGCHLD handler torch installed for its workers, to see what it raises."""
        if threading.current_thread() is not threading.main_thread():
            return
        prev = signal.getsignal(signal.SIGCHLD)
        if not callable(prev):
            return

        def handler(signum: int, frame: FrameType | None) -> Any:
            try:
                return prev(signum, frame)
            except Exception as exc:
                # Recorded when it leaves the loop: through next() it arrives wrapped ("exited
                # unexpectedly", chained to this one), elsewhere it closes the watch (see _end).
                self._pending = exc
                raise

        self._prev_sigchld, self._our_sigchld = prev, handler
        signal.signal(signal.SIGCHLD, handler)

    def _unchain_sigchld(self) -> None:
        if self._our_sigchld is None or threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGCHLD) is self._our_sigchld:
            signal.signal(signal.SIGCHLD, self._prev_sigchld)
        self._prev_sigchld = self._our_sigchld = None

    def _on_failure(self, exc: BaseException) -> None:
        if exc is self._failed_exc:  # seen in the SIGCHLD handler, now passing through next()
            return
        self._failed_exc = exc
        self._iterating = False
        try:
            last = self._take_sample(final=True, light=True)
            step = len(self.ends)
            err = error_fields(exc)
            err["batch"] = step
            facts: dict[str, Any] = {
                "nofile": self._nofile,
                "tmpdir": self.tmpdir,
                "ranks": int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1),
            }
            if last is not None:
                facts.update(
                    shm_free_bytes=last.get("shm_free"),
                    shm_total_bytes=last.get("shm_total"),
                    tmp_free_bytes=last.get("tmp_free"),
                    rss_peak_bytes=self._peak("rss"),
                )
            if self._batch_bytes:
                facts["shm_need_bytes"] = self._batch_bytes * shm_slots_for(
                    int(self.config.get("num_workers") or 0), self.config.get("prefetch_factor")
                )
            f = fnd.failure(err, step=step, config=self.config, facts=facts)
            with self._lock:
                self._failure = f
            self._write("finding", dict(f))
        except Exception:  # the watch must never hide the loader's own error
            pass

    # ------------------------------------------------------------------ the sampling thread
    def worker_pids(self) -> list[int] | None:
        """Pids of the live DataLoader iterator's workers ([] with none; None if it does not say)."""
        if int(self.config.get("num_workers") or 0) == 0:
            return []
        it = self._it
        ws = getattr(it, "_workers", None)
        if ws is None:
            return None if it is not None else []
        return [int(w.pid) for w in list(ws) if w.pid is not None]

    def _loop(self, stop: threading.Event, batches_before: int) -> None:
        # The first reading (with the TMPDIR baseline) waits for this iteration's first batch, or
        # interval_s: that batch's wait never shares the GIL or the kernel's locks with the walk.
        deadline = time.monotonic() + self.interval_s
        while len(self.ends) <= batches_before and time.monotonic() < deadline:
            if stop.wait(FIRST_BATCH_POLL_S):
                return
        try:
            self._take_sample()
        except Exception:  # sampling must never take the training run down
            pass
        while not stop.wait(self.interval_s):
            try:
                self.poll()
            except Exception:
                pass

    def poll(self) -> None:
        """One reading and the findings it allows: what the sampling thread does every ``interval_s``.
        With ``background=False`` the caller decides when (a test, or a loop that reads at its own steps)."""
        self._take_sample()
        self._judge()

    def _take_sample(self, final: bool = False, light: bool = False) -> dict[str, Any] | None:
        s = self._sampler
        if s is None:
            return None
        res = s.sample(light=light)
        b = self._last[0]
        if b is not None:
            try:
                self._batch_bytes = max(self._batch_bytes, describe(b, 0)["bytes"])
            except Exception:
                pass
        n = self._steps()
        line: dict[str, Any] = {"step": n, **self._loop_totals(n), **res, "batch_bytes": self._batch_bytes}
        w = fnd.window_wait_fraction(self.starts, self.ends, n=n)
        line["wait_fraction"] = round(w[0], 4) if w else None
        if final:
            line["final"] = True
        if s.baseline is not None and not self._baseline_logged:
            self._baseline_logged = True
            line.update(self._baseline_fields())
        with self._lock:
            self.samples.append(line)
            self._n_samples += 1
            for k in PEAK_KEYS:
                v = line.get(k)
                if isinstance(v, (int, float)) and v > self._peaks.get(k, 0):
                    self._peaks[k] = int(v)
            free = line.get("shm_free")
            if free is not None and (self._shm_free_min is None or free < self._shm_free_min):
                self._shm_free_min = int(free)
            if n >= 1:
                for k, ser in self._series.items():
                    if line.get(k) is not None:
                        ser.add(n, float(line[k]))
        self._write("sample", line)
        return line

    def _loop_totals(self, n: int) -> dict[str, Any]:
        if n == 0:
            return {
                "loop_s": 0.0,
                "wait_s": 0.0,
                "videos": 0,
                "steady_s": 0.0,
                "steady_wait_s": 0.0,
                "steady_videos": 0,
            }
        # incremental: the sum over all steps so far would cost the GIL in proportion to the run
        s, e = self.starts, self.ends
        # (a C-level map over slices: a Python loop here held the GIL ~1.5 ms a second at 20 k steps/s)
        self._acc_wait += sum(map(operator.sub, e[self._acc_n : n], s[self._acc_n : n]))
        if self._fixed is None:
            self._acc_videos += sum(self.videos[self._acc_n : n])
        self._acc_n = n
        wait = self._acc_wait
        videos = self._acc_videos if self._fixed is None else self._videos(0, n)
        first_wait, first_videos = e[0] - s[0], (self.videos[0] if self._fixed is None else self._videos(0, 1))
        # the steady figures (after the first batch), as summary() computes them: a run killed before
        # its summary line is read from its last sample by the same rule
        return {
            "loop_s": round(e[n - 1] - s[0], 4),
            "wait_s": round(wait, 4),
            "videos": videos,
            "steady_s": round(e[n - 1] - e[0], 4),
            "steady_wait_s": round(wait - first_wait, 4),
            "steady_videos": videos - first_videos,
        }

    def _trend_series(self, key: str) -> tuple[list[int], list[float]]:
        with self._lock:
            ser = self._series[key]
            return list(ser.steps), list(ser.values)

    def _step_s(self) -> float | None:
        n = min(len(self.starts), len(self.ends))
        return (self.ends[n - 1] - self.ends[0]) / (n - 1) if n > 1 else None

    def _judge(self) -> None:
        w = int(self.config.get("num_workers") or 0)
        n = min(len(self.starts), len(self.ends))
        cands: list[fnd.Finding | None] = []
        if "data_bound" not in self._found:
            cands.append(fnd.data_bound(self.starts, self.ends, n=n, num_workers=w))
        step_s = self._step_s()
        if "rss_growth" not in self._found:
            st, v = self._trend_series("workers_rss" if w > 0 else "main_rss")
            cands.append(
                fnd.rss_growth(
                    st,
                    v,
                    available_bytes=psutil.virtual_memory().available,
                    step_s=step_s,
                    what="worker tree" if w > 0 else "main process",
                )
            )
        if "shm_headroom" not in self._found and self.samples:
            last = self.samples[-1]
            cands.append(
                fnd.shm_headroom(
                    last.get("shm_free"),
                    self._batch_bytes,
                    step=int(last["step"]),
                    num_workers=w,
                    prefetch_factor=self.config.get("prefetch_factor"),
                    batch_size=self.config.get("batch_size"),
                    ranks=int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1),
                )
            )
        if "fd_growth" not in self._found:
            st, v = self._trend_series("fds_max")
            cands.append(fnd.fd_growth(st, v, nofile=self._nofile, step_s=step_s))
        if "tmp_growth" not in self._found:
            st, files = self._trend_series("tmp_files")
            _, nbytes = self._trend_series("tmp_bytes")
            free = self.samples[-1].get("tmp_free") if self.samples else None
            cands.append(
                fnd.tmp_growth(
                    st,
                    files,
                    nbytes,
                    tmpdir=self.tmpdir,
                    free_bytes=free,
                    step_s=step_s,
                    strategy=self.config.get("sharing_strategy"),
                )
            )
        for f in cands:
            if f is not None:
                with self._lock:
                    self._found[f["kind"]] = f
                    self._order.append(f["kind"])
                self._write("finding", dict(f))

    def _write(self, ev: str, fields: dict[str, Any]) -> None:
        if self._writer is not None:
            self._writer.write(ev, fields, time.time())

    # ------------------------------------------------------------------ results
    def _peak(self, key: str) -> int:
        return self._peaks.get(key, 0)

    def _baseline_fields(self) -> TmpBaseline:
        b = self._sampler.baseline if self._sampler is not None else None
        if b is None:  # no full reading yet (a loop that ended before the thread's first)
            return TmpBaseline(tmp_baseline_s=None, tmp_baseline_entries=None, tmp_baseline_cut=None)
        return TmpBaseline(
            tmp_baseline_s=round(b.seconds, 4),
            tmp_baseline_entries=b.entries,
            tmp_baseline_cut=b.cut,
            tmp_baseline_thread=b.thread,
        )

    def _rate_interval(self, n: int) -> list[float] | None:
        """The suite's interval rule (run.stats) over the batches after the first: videos per batch
        over the loop time each took (``ends[i] - ends[i - 1]``), rounds of the worker count."""
        if n < 3:
            return None
        e = self.ends
        secs = list(map(operator.sub, e[1:n], e[0 : n - 1]))
        iv = rate_interval(self._video_list(1, n), secs, round_size=int(self.config.get("num_workers") or 0))
        if iv is None or not math.isfinite(iv.hi):
            return None
        return [round(iv.lo, 3), round(iv.hi, 3)]

    @property
    def findings(self) -> list[fnd.Finding]:
        """What has been found so far, in order (a loader failure last)."""
        with self._lock:
            out = [self._found[k] for k in self._order]
            if self._failure is not None:
                out.append(self._failure)
        return [dict(f) for f in out]  # type: ignore[misc]

    def summary(self) -> Summary:
        n = self._steps()
        starts, ends = self.starts[:n], self.ends[:n]
        waits = [e - s for s, e in zip(starts, ends)]
        steps_s = [starts[i + 1] - ends[i] for i in range(n - 1)]
        # steady state, as the stress runs report it: after the first batch (worker start-up)
        loop = ends[-1] - ends[0] if n > 1 else 0.0
        sm = self._sampler
        out = Summary(
            name=self.name,
            steps=n,
            videos=self._videos(0, n),
            loop_s=round(ends[-1] - starts[0], 4) if n else 0.0,
            wait_s=round(sum(waits), 4),
            videos_per_s=round(self._videos(1, n) / loop, 3) if loop > 0 else None,
            videos_per_s_interval=self._rate_interval(n),
            wait_fraction=round(sum(waits[1:]) / loop, 4) if loop > 0 else None,
            first_batch_s=round(waits[0], 4) if n else None,
            watch_start_s=round(self._start_s, 4) if self._start_s is not None else None,
            wait_ms_p50=round(percentile(waits[1:], 50) * 1000, 3) if n > 1 else None,
            wait_ms_p95=round(percentile(waits[1:], 95) * 1000, 3) if n > 1 else None,
            step_ms_p50=round(percentile(steps_s, 50) * 1000, 3) if steps_s else None,
            rss_peak_bytes=self._peak("rss"),
            pss_peak_bytes=self._peak("pss"),
            workers_rss_peak_bytes=self._peak("workers_rss"),
            shm_peak_bytes=self._peak("shm_used"),
            shm_free_min_bytes=self._shm_free_min,
            fds_peak=self._peak("fds"),
            fds_max_peak=self._peak("fds_max"),
            threads_peak=self._peak("threads"),
            workers_peak=sm.workers_peak if sm else 0,
            worker_restarts=self._peak("worker_restarts"),
            tmp_peak_bytes=self._peak("tmp_bytes"),
            tmp_files_peak=self._peak("tmp_files"),
            batch_bytes=self._batch_bytes,
            samples=self._n_samples,
            config=dict(self.config),
            failed=self._failure["kind"] if self._failure else None,
            findings=[dict(f) for f in self.findings],
        )
        out.update(self._baseline_fields())
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
