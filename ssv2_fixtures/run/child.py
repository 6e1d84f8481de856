"""Child-process entry: load one config and stream JSON events to the parent.

Run as ``python -m ssv2_fixtures.run.child SPEC.json``. It imports no pytest and, at module level, nothing
but the standard library: the runner imports :class:`ChildSpec` from here, and the child itself loads
torch only after applying its resource limits (so the limits cover the import too).

Indices come from an endless sampler (:class:`~ssv2_fixtures.data.sampling.EndlessSampler`: seeded
permutations of the split chained one after another), so every batch holds ``batch_size`` videos whatever
the split size, no epoch ends, and the workers start once per run. ``-m distributed``
(:mod:`ssv2_fixtures.run.rank_child`) keeps DistributedSampler's epochs, which it checks.

How long it loads: ``spec["batches"]`` batches, or, with ``spec["measure"]`` (:class:`MeasureSpec`), a
measured window after warm-up that ends when its rate is precise enough (NOTE [measured window]).

Events go, one JSON object per line, to the file descriptor ``spec["events_fd"]`` (a pipe to the
parent) and never to stdout/stderr, where ffmpeg and decord print. See NOTE [child events]. The
per-rank entry of ``-m distributed`` writes the same events to a FIFO instead (``spec["events_path"]``),
see NOTE [rank events].

NOTE [child events]
    ``started``   {pid, pgid, t}                       before torch is imported
    ``ready``     {t, dataset_len, import_s, build_s, cuda[, factory_args]}  dataset and loader built;
                                                       factory_args: the keyword names a user's factory
                                                       was called with (the report's snippet uses them)
    ``batch``     {i, wait_s, epoch, videos, clips, bytes, shape, dtype, t}
                                                       one per batch received by the main process;
                                                       wait_s is the time blocked in ``next()``, t the
                                                       moment it returned (the loop's time per batch is
                                                       the gap between receipts: record.batch_walls);
                                                       videos: dataset items the sampler put in it;
                                                       clips, bytes, shape, dtype: measured from its
                                                       tensors (:func:`ssv2_fixtures.data.batch.describe`)
    ``epoch``     {n, t}                               the loader was exhausted and restarted (ranks only:
                                                       the single-process sampler is endless)
    ``h2d``       {i, copy_s, vram_peak_bytes}         CUDA only: pinned, non-blocking copy of the batch's
                                                       largest tensor
    ``measured``  {batches, videos, seconds, rate, lo, hi, stopped}
                                                       with ``spec["measure"]`` only, before ``finished``
    ``hold``/``held``                                  ``spec["hold"]`` with workers: the full-queue hold after
                                                       the loop, before ``finished`` (NOTE [full-queue hold])
    ``finished``  {t, loop_s, batches, videos, split_size, distinct_videos}
                                                       loop_s: wall time of the whole batch loop;
                                                       distinct_videos: dataset items drawn at least once
    ``error``     {t, batch, type, message, traceback, errno, chain}
                                                       batch: batches received so far (not the
                                                       index of the batch that failed to load)
    ``t`` is ``time.time()``; durations use ``perf_counter``. DataLoader workers inherit the pipe's fd
    on fork, so the parent never waits for EOF: the child main's exit ends the run. The write end is
    written only by the child main process, one ``os.write`` per event (a line < PIPE_BUF is atomic).
    A split and config that can never form a batch is refused before the loader starts: an ``error``
    event of type ``SplitTooSmallError`` (:func:`ssv2_fixtures.data.loader.refuse_unbatchable`).

NOTE [measured window]
    ``spec["measure"]`` = {warmup_batches, min_batches, max_batches, max_s, target_rel[, min_s]}. The first
    ``warmup_batches`` batches, rounded up to whole worker rounds, are received and not measured
    (worker start-up, empty queues). After them, each batch's videos and wall time (since the previous
    batch arrived: the step included, as a training loop spends it; its wait for a first batch) join the
    window, and the loop stops at the first of: ``converged`` (at least ``min_batches`` measured, at least ``min_s``
    seconds of window, and the window's rate interval, :func:`ssv2_fixtures.run.stats.rate_interval`,
    has relative half-width <= ``target_rel``; the interval only sees noise inside the window, so a
    window of under a second converges on a burst: ``min_s`` makes it average over the host's drift),
    ``time`` (``max_s`` seconds since the window opened), ``batches`` (``max_batches`` received in all,
    warm-up included: the bound a fault drill's batch is checked against). ``converged`` and ``time``
    are only taken at the end of a worker round: W workers' batches arrive as one long wait and W − 1
    short ones, so a window cut inside a round over- or under-counts up to W − 1 batches' worth of
    time (with W = 4 and a 10 s window: ±12 %, the spread seen between runs of 4-worker phases on 2
    cores). ``measured`` reports the window:
    ``batches`` and ``videos`` in it, ``seconds`` its wall time, ``rate`` videos over that wall time, and
    the interval ``lo``/``hi`` (null with fewer than ``stats.MIN_BATCHES`` batches).

NOTE [rank events]
    Under torchrun the ranks cannot inherit a pipe: the agent starts them with ``close_fds``. The runner
    makes a FIFO in the run folder (``spec["events_path"]``) and keeps it open for reading (and holds a
    write end itself, so the reader never sees EOF between ranks); each rank opens it ``O_WRONLY`` and
    writes the events above, each with ``rank``. Several ranks write at once, so every event is one
    ``os.write`` of one line shorter than ``PIPE_BUF`` (4096 bytes on Linux), which the kernel writes
    atomically: an ``error`` event's ``traceback`` and ``message`` are cut (head and tail kept, the cut
    said in the text) to fit; the full traceback is in the rank's own stderr. Rank events besides the
    above: ``started`` has ``local_rank``, ``world_size``, ``node_rank``; ``ready`` has
    ``epoch_batches``/``epoch_samples`` (this rank's share of an epoch); ``epoch`` follows
    ``sampler.set_epoch``; ``finished`` has ``epochs``; ``indices`` {path, world_size} is written by
    each node's local rank 0 once every rank has gathered (``all_gather_object``) the dataset indices it
    received, per epoch.
"""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, Protocol, TypedDict

STACK_SIGNAL = signal.SIGUSR1  # the parent sends it before killing: every thread's stack is dumped


class DatasetSpec(TypedDict, total=False):
    root: str
    split: str
    list_file: str | None
    missing: str
    num_frames: int
    size: int
    train: bool
    sampling: str
    decoder: str
    limit: int | None
    on_error: str
    factory: str | None  # MODULE:CALLABLE of a user's pipeline, read by data.factory.load_pipeline
    factory_kwargs: dict[str, Any]
    factory_path: list[str]
    check_collate: bool  # the session's pipeline probe (W=0): fetch two items and check they collate


class MeasureSpec(TypedDict):
    """A measured window instead of a fixed batch count; see NOTE [measured window]."""

    warmup_batches: int
    min_batches: int
    max_batches: int
    max_s: float
    target_rel: float
    min_s: float  # no ``converged`` stop before this many seconds of window (0 if left out)


class ChildSpec(TypedDict, total=False):
    dataset: DatasetSpec
    config: dict[str, Any]
    batches: int
    measure: MeasureSpec | None
    fault: str | None  # "KIND@BATCH[/RANK]"
    events_fd: int  # single process: the write end of a pipe
    events_path: str  # ranks (rank_child): a FIFO, see NOTE [rank events]
    indices_path: str  # ranks: where local rank 0 writes the gathered dataset indices
    stacks_path: str
    skip_log: str | None
    nofile: int | None
    address_space_bytes: int | None
    cpus: list[int] | None
    cuda: bool
    step_s: float  # simulated training step per batch (the batch is held meanwhile)
    hold: bool  # after the loop, hold until every prefetch slot is full: NOTE [full-queue hold] (run/hold.py)


ATOMIC_LINE = 4000
"""Longest event line a rank writes: under PIPE_BUF (4096 on Linux), so the kernel never interleaves it
with another rank's (see NOTE [rank events])."""


class EventWriter:
    """Writes events, one JSON line per ``os.write``, to ``fd``. ``rank``: stamp every event with it and
    keep each line under :data:`ATOMIC_LINE` bytes."""

    def __init__(self, fd: int, rank: int | None = None) -> None:
        self.fd = fd
        self.rank = rank

    def emit(self, ev: str, /, **fields: Any) -> None:
        fields["ev"] = ev
        fields.setdefault("t", time.time())
        if self.rank is not None:
            fields["rank"] = self.rank
        data = (json.dumps(fields, default=str) + "\n").encode()
        if self.rank is not None and len(data) > ATOMIC_LINE:
            data = _fit(fields, ATOMIC_LINE)
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]


class Emitter(Protocol):
    """What :func:`batch_loop` needs of an event writer (tests pass a list-backed one)."""

    def emit(self, ev: str, /, **fields: Any) -> None: ...


def _cut(text: str, keep: int) -> str:
    """``text`` cut to about ``keep`` characters: its head and tail, the cut said in the middle."""
    if len(text) <= keep:
        return text
    head = keep // 3
    tail = max(0, keep - head)
    cut = f"[... {len(text) - head - tail} characters cut to fit one atomic line ...]"
    return f"{text[:head]}\n{cut}\n{text[-tail:] if tail else ''}"


def _fit(fields: dict[str, Any], limit: int) -> bytes:
    """The event as one line of at most ``limit`` bytes: long text fields are cut, longest first."""
    f = dict(fields)
    for _ in range(40):
        data = (json.dumps(f, default=str) + "\n").encode()
        if len(data) <= limit:
            return data
        texts = [(len(json.dumps(v)), k) for k, v in f.items() if isinstance(v, str)]
        if not texts:
            break
        _, key = max(texts)
        over = len(data) - limit
        f[key] = _cut(f[key], max(0, len(f[key]) - max(over + 80, len(f[key]) // 4)))
    small = {k: v for k, v in f.items() if k in ("ev", "t", "rank", "batch", "type", "errno", "i")}
    small["cut"] = True
    return (json.dumps(small, default=str) + "\n").encode()


def _apply_limits(spec: ChildSpec) -> None:
    import resource

    nofile, address_space, cpus = spec.get("nofile"), spec.get("address_space_bytes"), spec.get("cpus")
    if nofile:
        resource.setrlimit(resource.RLIMIT_NOFILE, (int(nofile), int(nofile)))
    if address_space:
        resource.setrlimit(resource.RLIMIT_AS, (int(address_space), int(address_space)))
    if cpus:
        os.sched_setaffinity(0, cpus)


def error_fields(exc: BaseException) -> dict[str, Any]:
    chain: list[str] = []
    e: BaseException | None = exc
    errno = None
    while e is not None and len(chain) < 8:
        chain.append(type(e).__name__)
        if errno is None and isinstance(e, OSError) and e.errno:
            errno = e.errno
        e = e.__cause__ or e.__context__
    f = dict(
        type=type(exc).__name__,
        message=str(exc),
        errno=errno,
        chain=chain,
        traceback="".join(traceback.format_exception(exc)),
    )
    extra = getattr(exc, "event_fields", None)
    if callable(extra):  # FactoryError: what/file/line/fix for the outcome and the report
        f.update(extra())
    return f


def arm_stack_dump(spec: ChildSpec) -> IO[str]:
    """faulthandler: fatal signals to stderr; STACK_SIGNAL writes every thread's stack to stacks.txt.

    O_APPEND: the main process and its forked workers share the file, and the parent writes a header
    before each process's dump (see runner._dump_stacks). Returns the file, which must stay open."""
    stacks = open(spec["stacks_path"], "a")
    faulthandler.enable(file=sys.stderr, all_threads=True)
    faulthandler.register(STACK_SIGNAL, file=stacks, all_threads=True, chain=False)
    return stacks


@dataclass
class Built:
    """What a run loads: the config, the dataset (fault drill wrapped in), and a user pipeline's
    collate and worker set-up (None for the suite's own dataset)."""

    config: Any  # LoaderConfig (not imported at module level: this stays stdlib-only)
    dataset: Any
    collate_fn: Callable[[Any], Any] | None = None
    worker_init_fn: Callable[[int], None] | None = None
    factory_args: list[str] | None = None  # the keyword names a user's factory was called with


def load(spec: ChildSpec, *, rank: int) -> tuple[float, Built]:
    """Apply the spec's limits, import torch (before decord, decord#251/#263) with one intra-op thread,
    and build the dataset. Returns (import seconds, what was built)."""
    _apply_limits(spec)  # before the import, so the limits cover it too
    t0 = time.perf_counter()
    import torch

    import_s = time.perf_counter() - t0
    torch.set_num_threads(1)
    return import_s, build_dataset(spec, rank=rank)


def build_dataset(spec: ChildSpec, *, rank: int) -> Built:
    """The config and dataset from the spec (a user's pipeline when ``dataset.factory`` is set), with the
    fault drill wrapped in where it fires."""
    from ..data.loader import LoaderConfig

    cfg = LoaderConfig.from_dict(spec["config"])
    d: dict[str, Any] = dict(spec["dataset"])
    fault_text = spec.get("fault")  # refused with a user's pipeline before the child started (runner)
    built: Built
    if d.get("factory"):
        from ..data.factory import check_collatable, load_pipeline  # only for a user's pipeline

        called: dict[str, Any] = {}
        p = load_pipeline(d, train=bool(d.get("train")), on_call=called.update)
        if d.get("check_collate") and cfg.num_workers == 0:  # no worker forks after this: no shared open file
            check_collatable(p.dataset, p.collate_fn)  # names an uncollatable item by its path
        built = Built(cfg, p.dataset, p.collate_fn, p.worker_init_fn, sorted(called))
    else:
        from ..data.clips import SSv2Clips

        for k in ("factory", "factory_kwargs", "factory_path"):
            d.pop(k, None)
        root = d.pop("root")
        split = d.pop("split", "train")
        built = Built(cfg, SSv2Clips(root, split, skip_log=spec.get("skip_log"), **d))
    if fault_text:
        from .faults import FaultyDataset, parse_fault

        fault = parse_fault(str(fault_text))
        if fault.fires_in(rank):  # a drill aimed at another rank does not fire here
            built.dataset = FaultyDataset(built.dataset, fault)
    return built


@dataclass
class Progress:
    """Where the batch loop is: read by the error path (the failure point) and by the shutdown."""

    batch: int = 0  # batches received in the run
    videos: int = 0
    epoch: int = 0
    in_epoch: int = 0  # batches received in this epoch
    it: Any = None
    measured: dict[str, Any] | None = None  # the measured window's result (spec["measure"] only)


def check_measure(m: Mapping[str, Any]) -> MeasureSpec:
    """``spec["measure"]`` checked and typed; a bad value names its key."""
    keys = ("warmup_batches", "min_batches", "max_batches", "max_s", "target_rel", "min_s")
    missing = [k for k in keys[:-1] if k not in m]  # min_s may be left out: 0
    unknown = sorted(set(m) - set(keys))
    if missing or unknown:
        raise ValueError(f"spec measure: missing {missing}, unknown {unknown}; keys are {list(keys)}")
    for k in ("warmup_batches", "min_batches", "max_batches"):
        if not isinstance(m[k], int) or isinstance(m[k], bool) or m[k] < (0 if k == "warmup_batches" else 1):
            raise ValueError(
                f"spec measure.{k}: must be an integer >= {0 if k == 'warmup_batches' else 1}, got {m[k]!r}"
            )
    if m["max_batches"] <= m["warmup_batches"]:
        raise ValueError(
            f"spec measure.max_batches ({m['max_batches']}) must exceed warmup_batches "
            f"({m['warmup_batches']}): nothing would be measured"
        )
    for k in ("max_s", "target_rel"):
        v = m[k]
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0:
            raise ValueError(f"spec measure.{k}: must be a number > 0, got {v!r}")
    min_s = m.get("min_s", 0.0)
    if not isinstance(min_s, (int, float)) or isinstance(min_s, bool) or min_s < 0:
        raise ValueError(f"spec measure.min_s: must be a number >= 0, got {min_s!r}")
    if min_s > m["max_s"]:
        raise ValueError(
            f"spec measure.min_s ({min_s}) must not exceed max_s ({m['max_s']}): the window could never converge"
        )
    return MeasureSpec(
        warmup_batches=m["warmup_batches"],
        min_batches=m["min_batches"],
        max_batches=m["max_batches"],
        max_s=float(m["max_s"]),
        target_rel=float(m["target_rel"]),
        min_s=float(min_s),
    )


MIN_GROUPS = 5
"""A measured window converges only on an interval from at least this many batch-means groups."""


@dataclass
class Window:
    """The measured window of NOTE [measured window]: pure bookkeeping, ``now`` is given by the caller."""

    spec: MeasureSpec
    opened: float  # when the window opens if there is no warm-up
    round_size: int = 1  # the loader's workers: batches that arrive together (run/stats.py)
    received: int = 0
    videos: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # each measured batch's wall time (NOTE [measured window])
    last: float = 0.0

    @property
    def warmup(self) -> int:
        """Warm-up batches: ``warmup_batches`` rounded up to whole rounds (NOTE [measured window])."""
        from .stats import whole_rounds

        return min(whole_rounds(int(self.spec["warmup_batches"]), self.round_size), int(self.spec["max_batches"]) - 1)

    def add(self, videos: int, wait_s: float, now: float) -> str | None:
        """One received batch; the reason to stop now (``converged``/``time``/``batches``) or None."""
        from .stats import rate_interval

        self.received += 1
        wall = now - self.last if self.received > 1 else wait_s  # the first batch: nothing came before it
        self.last = now
        if self.received <= self.warmup:
            self.opened = now  # the window opens when the last warm-up batch has arrived
            return None  # check_measure: max_batches > warmup_batches
        self.videos.append(int(videos))
        self.seconds.append(max(float(wall), float(wait_s)))
        if self.received >= self.spec["max_batches"]:
            return "batches"
        if len(self.videos) % max(1, self.round_size):
            return None  # inside a worker round
        if len(self.videos) >= self.spec["min_batches"] and now - self.opened >= self.spec["min_s"]:
            iv = rate_interval(self.videos, self.seconds, round_size=self.round_size)
            # at least MIN_GROUPS groups: with 2–3 the t quantile is large but sd over so few groups is
            # itself noisy, and stopping at the first lucky check under target would favour it
            if iv is not None and iv.groups >= MIN_GROUPS and iv.relative_half_width <= self.spec["target_rel"]:
                return "converged"
        if now - self.opened >= self.spec["max_s"]:
            return "time"
        return None

    def result(self, stopped: str) -> dict[str, Any]:
        from .stats import rate_interval

        total_s = sum(self.seconds)
        iv = rate_interval(self.videos, self.seconds, round_size=self.round_size)
        return {
            "batches": len(self.videos),
            "videos": sum(self.videos),
            "seconds": max(0.0, self.last - self.opened),
            "rate": iv.rate if iv else (sum(self.videos) / total_s if total_s > 0 else None),
            "lo": iv.lo if iv else None,
            "hi": iv.hi if iv else None,
            "stopped": stopped,
        }


def videos_in_batch(loader: Any, j: int) -> int | None:
    """Dataset items the sampler put in batch ``j`` of an epoch (torch's BatchSampler rule: full batches,
    then a short last one unless ``drop_last``); None where the loader has no ``batch_size`` (a user's
    own batch_sampler). An endless sampler has no length: every batch is full."""
    bs = getattr(loader, "batch_size", None)
    if bs is None:
        return None
    if getattr(loader, "drop_last", False):
        return int(bs)
    try:
        n = len(loader.sampler)
    except TypeError:
        return int(bs)
    return max(0, min(int(bs), n - j * int(bs)))


def _epoch_batches(loader: Any) -> int:
    """Batches in an epoch of ``loader``; 0 for an endless one (a fault drill then counts one endless epoch)."""
    try:
        return len(loader)
    except TypeError:
        return 0


def _workers(loader: Any) -> int:
    return int(getattr(loader, "num_workers", 0) or 0)


def batch_loop(
    events: Emitter,
    loader: Any,
    spec: ChildSpec,
    cuda: bool,
    progress: Progress,
    on_epoch: Callable[[int], None] | None = None,
    on_batch: Callable[[int, Any], None] | None = None,
    videos_of: Callable[[Any], int] | None = None,
    hold: bool = False,
) -> float:
    """Receive ``spec["batches"]`` batches (or a measured window, ``spec["measure"]``), restarting a
    finite loader at each epoch end; one ``batch`` event each. ``on_epoch(n)`` runs before each epoch's
    iterator is made, ``on_batch(epoch, item)`` after each batch arrives (the distributed child records
    indices there); ``videos_of(item)`` counts a batch's dataset items where the loader knows better than
    :func:`videos_in_batch`. ``hold``: after the loop (outside every rate), the full-queue hold of NOTE
    [full-queue hold] (run/hold.py). Returns the loop's wall time; a measured window's result is left in
    ``progress.measured``."""
    from ..data.batch import describe, tensors

    n = int(spec.get("batches", 10))
    m = spec.get("measure")
    window = Window(check_measure(m), time.perf_counter(), _workers(loader)) if m else None
    step_s = float(spec.get("step_s") or 0.0)
    begin = getattr(loader.dataset, "begin_epoch", None)  # a fault drill counts batches across epochs
    if on_epoch:
        on_epoch(progress.epoch)
    if begin:
        begin(progress.epoch, _epoch_batches(loader))
    progress.it = iter(loader)
    loop0 = time.perf_counter()
    stopped: str | None = None

    def more() -> bool:
        return stopped is None if window else progress.batch < n

    while more():
        t = time.perf_counter()
        try:
            item = next(progress.it)
        except StopIteration:
            if progress.in_epoch == 0:  # restarting would spin forever, starting workers each time
                from ..data.loader import SplitTooSmallError

                raise SplitTooSmallError(
                    f"an epoch of this loader ({len(loader.dataset)} items, batch_size={loader.batch_size}, "
                    f"drop_last={loader.drop_last}) yields no batch: lower batch_size or use a larger split"
                ) from None
            progress.epoch += 1
            progress.in_epoch = 0
            if on_epoch:
                on_epoch(progress.epoch)
            if begin:
                begin(progress.epoch, _epoch_batches(loader))
            events.emit("epoch", n=progress.epoch)
            progress.it = iter(loader)
            continue
        now = time.perf_counter()
        received = time.time()  # the batch event's ``t``: the receipt, not the emit after describe()
        wait = now - t
        counted = videos_of(item) if videos_of else videos_in_batch(loader, progress.in_epoch)
        facts = describe(item, videos=0 if counted is None else counted)
        videos = facts["clips"] if counted is None else counted  # no batch size known: its leading size
        progress.videos += videos
        if on_batch:
            on_batch(progress.epoch, item)
        events.emit(
            "batch",
            i=progress.batch,
            wait_s=wait,
            epoch=progress.epoch,
            videos=videos,
            clips=facts["clips"],
            bytes=facts["bytes"],
            shape=facts["shape"],
            dtype=facts["dtype"],
            t=received,
        )
        if cuda:
            largest = max(tensors(item), key=_nbytes, default=None)
            if largest is not None and hasattr(largest, "pin_memory"):
                _h2d(events, progress.batch, largest)
            del largest
        if step_s:
            time.sleep(step_s)  # a trainer slower than the loader lets the prefetch queues fill
        del item
        progress.batch += 1
        progress.in_epoch += 1
        if window:
            stopped = window.add(videos, wait, now)
    loop_s = time.perf_counter() - loop0
    if window and stopped:
        progress.measured = window.result(stopped)
        events.emit("measured", **progress.measured)
    if hold and _workers(loader) and progress.batch:
        from .hold import hold_full_queues

        prefetch = int(getattr(loader, "prefetch_factor", None) or 2)
        hold_full_queues(
            events, progress.it, workers=_workers(loader), prefetch=prefetch, batch_s=loop_s / progress.batch
        )
    progress.it = None
    return loop_s


def _nbytes(t: Any) -> int:
    from ..data.batch import nbytes

    return nbytes(t)


def run(spec: ChildSpec) -> int:
    events = EventWriter(int(spec["events_fd"]))
    events.emit("started", pid=os.getpid(), pgid=os.getpgid(0))
    stacks = arm_stack_dump(spec)  # noqa: F841  (kept open for the signal handler)
    progress = Progress()
    loader: Any = None
    built: Built | None = None
    try:
        t0 = time.perf_counter()
        import_s, built = load(spec, rank=0)  # a single process is rank 0
        import torch

        from ..data.loader import make_loader, refuse_unbatchable
        from ..data.sampling import distinct_drawn

        split_size = len(built.dataset)
        refuse_unbatchable(split_size, built.config, endless=True, where=f"{built.config.label}")
        loader = make_loader(
            built.dataset, built.config, endless=True, collate_fn=built.collate_fn, worker_init_fn=built.worker_init_fn
        )
        cuda = bool(spec.get("cuda")) and torch.cuda.is_available()
        called = {} if built.factory_args is None else {"factory_args": built.factory_args}
        events.emit(
            "ready", dataset_len=split_size, import_s=import_s, build_s=time.perf_counter() - t0, cuda=cuda, **called
        )
        loop_s = batch_loop(events, loader, spec, cuda, progress, hold=bool(spec.get("hold")))
        # Chained permutations draw every item once before any repeats: exactly min(split, drawn).
        drawn = progress.batch * built.config.batch_size
        events.emit(
            "finished",
            loop_s=loop_s,
            batches=progress.batch,
            videos=progress.videos,
            split_size=split_size,
            distinct_videos=distinct_drawn(split_size, drawn),
        )
        del loader
        return 0
    except BaseException as exc:  # report everything, including KeyboardInterrupt/SystemExit
        report_error(events, progress, exc)
    progress.it = loader = built = None  # noqa: F841  (only an error gets here)
    return 1


def report_error(events: Emitter, progress: Progress, exc: BaseException) -> None:
    """The ``error`` event, the traceback on stderr, and the frames cleared: they hold the iterator
    (``self`` of __next__) in a reference cycle with the exception (torch's ``reraise`` frame), and the
    caller's dropping it must run torch's orderly shutdown at once; see NOTE [shutdown after an error]."""
    events.emit("error", batch=progress.batch, **error_fields(exc))
    traceback.print_exc()
    traceback.clear_frames(exc.__traceback__)


# NOTE [shutdown after an error]
#     After an error the child drops the DataLoader iterator itself, so that torch's orderly shutdown
#     lets the healthy workers exit by themselves and run their exit finalizers. Left to interpreter
#     exit, multiprocessing's atexit hook SIGTERMs them instead, and each leaves its ``pymp-*`` folder in
#     TMPDIR. Left to the garbage collector (the iterator sits in a reference cycle with the exception's
#     traceback), it is slow: the collector first clears the weak references of the index queues, whose
#     finalizers stop the queues' feeder threads, so the ``None`` that tells a worker to exit is never
#     sent and torch waits 5 s per worker before SIGTERMing it. Measured here: 10 s for W=2 through the
#     collector, 0.01 s after ``traceback.clear_frames``. The parent bounds the shutdown anyway
#     (``Watchdog.exit_s``).


def _h2d(events: Emitter, i: int, tensor: Any) -> None:
    """Copy the batch's largest tensor to the GPU as a training step would (pinned, non-blocking)."""
    import torch

    t = time.perf_counter()
    src = tensor if tensor.is_pinned() else tensor.pin_memory()
    dev = src.to("cuda", non_blocking=True)
    torch.cuda.synchronize()
    events.emit("h2d", i=i, copy_s=time.perf_counter() - t, vram_peak_bytes=int(torch.cuda.max_memory_allocated()))
    del dev


def main(argv: list[str] | None = None, entry: Callable[[ChildSpec], int] | None = None) -> int:
    """``python -m … SPEC.json``: read the spec and run ``entry`` (this module's :func:`run` by default)."""
    args = sys.argv[1:] if argv is None else argv
    with open(args[0]) as f:
        spec: ChildSpec = json.load(f)
    return (entry or run)(spec)


if __name__ == "__main__":
    sys.exit(main())
