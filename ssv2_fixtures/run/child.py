"""Child-process entry: load one config and stream JSON events to the parent.

Run as ``python -m ssv2_fixtures.run.child SPEC.json``. It imports no pytest and, at module level, nothing
but the standard library: the runner imports :class:`ChildSpec` from here, and the child itself loads
torch only after applying its resource limits (so the limits cover the import too).

Indices come from an endless sampler (:class:`~ssv2_fixtures.data.sampling.EndlessSampler`: seeded
permutations of the split chained one after another), so every batch holds ``batch_size`` videos whatever
the split size, no epoch ends, and the workers start once per run. ``-m distributed``
(:mod:`ssv2_fixtures.run.rank_child`) keeps DistributedSampler's epochs, which it checks.

How long it loads: ``spec["batches"]`` batches, or, with ``spec["measure"]``
(:class:`~ssv2_fixtures.run.loop.MeasureSpec`), a measured window after warm-up that ends when its rate is
precise enough: :func:`~ssv2_fixtures.run.loop.batch_loop` (NOTE [measured window] in run/loop.py).

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
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, TypedDict

from .loop import Emitter, LoopSpec, Progress, batch_loop  # stdlib only at module level, as here

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


class ChildSpec(LoopSpec, total=False):
    """The spec a child reads; ``batches``, ``measure`` and ``step_s`` are the batch loop's (:class:`LoopSpec`)."""

    dataset: DatasetSpec
    config: dict[str, Any]
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


def main(argv: list[str] | None = None, entry: Callable[[ChildSpec], int] | None = None) -> int:
    """``python -m … SPEC.json``: read the spec and run ``entry`` (this module's :func:`run` by default)."""
    args = sys.argv[1:] if argv is None else argv
    with open(args[0]) as f:
        spec: ChildSpec = json.load(f)
    return (entry or run)(spec)


if __name__ == "__main__":
    sys.exit(main())
