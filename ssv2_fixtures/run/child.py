"""Child-process entry: load one config for N batches and stream JSON events to the parent.

Run as ``python -m ssv2_fixtures.run.child SPEC.json``. It imports no pytest and, at module level, nothing
but the standard library: the runner imports :class:`ChildSpec` from here, and the child itself loads
torch only after applying its resource limits (so the limits cover the import too).

Events go, one JSON object per line, to the file descriptor ``spec["events_fd"]`` (a pipe to the
parent) and never to stdout/stderr, where ffmpeg and decord print. See NOTE [child events]. The
per-rank entry of ``-m distributed`` (:mod:`ssv2_fixtures.run.rank_child`) writes the same events to a FIFO
instead (``spec["events_path"]``), see NOTE [rank events].

NOTE [child events]
    ``started``   {pid, pgid, t}                       before torch is imported
    ``ready``     {t, dataset_len, import_s, build_s}  dataset and loader built
    ``batch``     {i, wait_s, videos, bytes, t}        one per batch received by the main process;
                                                       wait_s is the time blocked in ``next()``
    ``epoch``     {n, t}                               the loader was exhausted and restarted
    ``h2d``       {i, copy_s, vram_peak_bytes}         CUDA only: pinned, non-blocking copy per batch
    ``finished``  {t, loop_s, batches, videos}         loop_s: wall time of the whole batch loop
    ``error``     {t, batch, type, message, traceback, errno, chain}
                                                       batch: batches received so far (not the
                                                       index of the batch that failed to load)
    ``t`` is ``time.time()``; durations use ``perf_counter``. DataLoader workers inherit the pipe's fd
    on fork, so the parent never waits for EOF: the child main's exit ends the run. The write end is
    written only by the child main process, one ``os.write`` per event (a line < PIPE_BUF is atomic).

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
    ``sampler.set_epoch``; ``indices`` {path, world_size} is written by each node's local rank 0 once
    every rank has gathered (``all_gather_object``) the dataset indices it received, per epoch.
"""
from __future__ import annotations

import faulthandler
import json
import os
import signal
import sys
import time
import traceback
from typing import Any, TypedDict

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


class ChildSpec(TypedDict, total=False):
    dataset: DatasetSpec
    config: dict[str, Any]
    batches: int
    fault: str | None          # "KIND@BATCH[/RANK]"
    events_fd: int             # single process: the write end of a pipe
    events_path: str           # ranks (dist_child): a FIFO, see NOTE [rank events]
    indices_path: str          # ranks: where local rank 0 writes the gathered dataset indices
    stacks_path: str
    skip_log: str
    nofile: int | None
    address_space_bytes: int | None
    cpus: list[int] | None
    cuda: bool
    step_s: float              # simulated training step per batch (the batch is held meanwhile)


ATOMIC_LINE = 4000
"""Longest event line a rank writes: under PIPE_BUF (4096 on Linux), so the kernel never interleaves it
with another rank's (see NOTE [rank events])."""


class _Events:
    """``rank``: stamp every event with it and keep each line under :data:`ATOMIC_LINE` bytes."""

    def __init__(self, fd: int, rank: int | None = None) -> None:
        self.fd = fd
        self.rank = rank

    def emit(self, ev: str, **fields: Any) -> None:
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
    return f"{text[:head]}\n[... {len(text) - head - tail} characters cut to fit one atomic line ...]\n{text[-tail:] if tail else ''}"


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

    if spec.get("nofile"):
        n = int(spec["nofile"])  # type: ignore[arg-type]
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
    if spec.get("address_space_bytes"):
        n = int(spec["address_space_bytes"])  # type: ignore[arg-type]
        resource.setrlimit(resource.RLIMIT_AS, (n, n))
    if spec.get("cpus"):
        os.sched_setaffinity(0, spec["cpus"])  # type: ignore[arg-type]


def _error_fields(exc: BaseException) -> dict[str, Any]:
    chain, e = [], exc
    errno = None
    while e is not None and len(chain) < 8:
        chain.append(type(e).__name__)
        if errno is None and isinstance(e, OSError) and e.errno:
            errno = e.errno
        e = e.__cause__ or e.__context__
    return dict(type=type(exc).__name__, message=str(exc), errno=errno, chain=chain,
                traceback="".join(traceback.format_exception(exc)))


def arm_stack_dump(spec: ChildSpec) -> Any:
    """faulthandler: fatal signals to stderr; STACK_SIGNAL writes every thread's stack to stacks.txt.

    O_APPEND: the main process and its forked workers share the file, and the parent writes a header
    before each process's dump (see runner._dump_stacks). Returns the file, which must stay open."""
    stacks = open(spec["stacks_path"], "a")  # type: ignore[typeddict-item]
    faulthandler.enable(file=sys.stderr, all_threads=True)
    faulthandler.register(STACK_SIGNAL, file=stacks, all_threads=True, chain=False)
    return stacks


def load(spec: ChildSpec, *, rank: int) -> tuple[float, Any, Any]:
    """Apply the spec's limits, import torch (before decord, decord#251/#263) with one intra-op thread,
    and build (LoaderConfig, dataset). Returns (import seconds, config, dataset)."""
    _apply_limits(spec)  # before the import, so the limits cover it too
    t0 = time.perf_counter()
    import torch

    import_s = time.perf_counter() - t0
    torch.set_num_threads(1)
    cfg, ds = build_dataset(spec, rank=rank)
    return import_s, cfg, ds


def build_dataset(spec: ChildSpec, *, rank: int) -> tuple[Any, Any]:
    """(LoaderConfig, dataset) from the spec, with the fault drill wrapped in where it fires."""
    from ..data.clips import SSv2Clips
    from ..data.loader import LoaderConfig

    cfg = LoaderConfig.from_dict(spec["config"])  # type: ignore[typeddict-item]
    d = dict(spec["dataset"])  # type: ignore[typeddict-item]
    root = d.pop("root")
    split = d.pop("split", "train")
    ds: Any = SSv2Clips(root, split, skip_log=spec.get("skip_log"), **d)
    if spec.get("fault"):
        from .faults import FaultyDataset, parse_fault

        fault = parse_fault(str(spec["fault"]))
        if fault.fires_in(rank):  # a drill aimed at another rank does not fire here
            ds = FaultyDataset(ds, fault)
    return cfg, ds


class Progress:
    """Where the batch loop is: read by the error path (the failure point) and by the shutdown."""

    def __init__(self) -> None:
        self.batch = 0
        self.videos = 0
        self.epoch = 0
        self.it: Any = None


def batch_loop(events: _Events, loader: Any, spec: ChildSpec, cuda: bool, progress: Progress,
               on_epoch: Any = None, on_batch: Any = None) -> float:
    """Receive ``spec["batches"]`` batches, restarting the loader at each epoch end; one ``batch`` event
    each. ``on_epoch(n)`` runs before each epoch's iterator is made, ``on_batch(epoch, item)`` after each
    batch arrives (the distributed child records indices there). Returns the loop's wall time."""
    n = int(spec.get("batches", 10))
    step_s = float(spec.get("step_s") or 0.0)
    begin = getattr(loader.dataset, "begin_epoch", None)  # a fault drill counts batches across epochs
    if on_epoch:
        on_epoch(progress.epoch)
    if begin:
        begin(progress.epoch, len(loader))
    progress.it = iter(loader)
    loop0 = time.perf_counter()
    while progress.batch < n:
        t = time.perf_counter()
        try:
            item = next(progress.it)
        except StopIteration:
            progress.epoch += 1
            if on_epoch:
                on_epoch(progress.epoch)
            if begin:
                begin(progress.epoch, len(loader))
            events.emit("epoch", n=progress.epoch)
            progress.it = iter(loader)
            continue
        wait = time.perf_counter() - t
        clips = item[0]
        progress.videos += int(clips.shape[0])
        if on_batch:
            on_batch(progress.epoch, item)
        events.emit("batch", i=progress.batch, wait_s=wait, videos=int(clips.shape[0]),
                    bytes=int(clips.numel() * clips.element_size()), epoch=progress.epoch)
        if cuda:
            _h2d(events, progress.batch, clips)
        if step_s:
            time.sleep(step_s)  # a trainer slower than the loader lets the prefetch queues fill
        del clips, item
        progress.batch += 1
    loop_s = time.perf_counter() - loop0
    progress.it = None
    return loop_s


def run(spec: ChildSpec) -> int:
    events = _Events(int(spec["events_fd"]))  # type: ignore[typeddict-item]
    events.emit("started", pid=os.getpid(), pgid=os.getpgid(0))
    stacks = arm_stack_dump(spec)
    progress = Progress()
    try:
        t0 = time.perf_counter()
        import_s, cfg, ds = load(spec, rank=0)  # a single process is rank 0
        import torch

        from ..data.loader import make_loader

        loader = make_loader(ds, cfg)
        cuda = bool(spec.get("cuda")) and torch.cuda.is_available()
        events.emit("ready", dataset_len=len(ds), import_s=import_s, build_s=time.perf_counter() - t0,
                    cuda=cuda)
        loop_s = batch_loop(events, loader, spec, cuda, progress)
        events.emit("finished", loop_s=loop_s, batches=progress.batch, videos=progress.videos)
        del loader
        return 0
    except BaseException as exc:  # report everything, including KeyboardInterrupt/SystemExit
        report_error(events, progress, exc)
    progress.it = loader = ds = None  # noqa: F841  (only an error gets here)
    return 1


def report_error(events: _Events, progress: Progress, exc: BaseException) -> None:
    """The ``error`` event, the traceback on stderr, and the frames cleared: they hold the iterator
    (``self`` of __next__) in a reference cycle with the exception (torch's ``reraise`` frame), and the
    caller's dropping it must run torch's orderly shutdown at once; see NOTE [shutdown after an error]."""
    events.emit("error", batch=progress.batch, **_error_fields(exc))
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


def _h2d(events: _Events, i: int, clips: Any) -> None:
    import torch

    t = time.perf_counter()
    src = clips if clips.is_pinned() else clips.pin_memory()
    dev = src.to("cuda", non_blocking=True)
    torch.cuda.synchronize()
    events.emit("h2d", i=i, copy_s=time.perf_counter() - t,
                vram_peak_bytes=int(torch.cuda.max_memory_allocated()))
    del dev


def main(argv: list[str] | None = None, entry: Any = None) -> int:
    """``python -m … SPEC.json``: read the spec and run ``entry`` (this module's :func:`run` by default)."""
    args = sys.argv[1:] if argv is None else argv
    with open(args[0]) as f:
        spec: ChildSpec = json.load(f)
    return (entry or run)(spec)


if __name__ == "__main__":
    sys.exit(main())
