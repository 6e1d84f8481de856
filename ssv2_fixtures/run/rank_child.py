"""Per-rank entry of ``-m distributed``: one rank of a torchrun job loading one config.

Started by torchrun (``python -m torch.distributed.run … -m ssv2_fixtures.run.rank_child SPEC.json``), never
by pytest; like :mod:`ssv2_fixtures.run.child` it imports no pytest and, at module level, nothing but the
standard library and the child's helpers (torch is imported after the resource limits are applied).

Each rank: ``init_process_group("gloo")``, a ``DistributedSampler(dataset, world_size, rank, shuffle,
seed, drop_last)`` under the config's DataLoader (:func:`~ssv2_fixtures.data.loader.make_loader` with
``sampler=``), ``set_epoch`` at every epoch, N batches with the same events as a single-process child
(each carrying ``rank``, written to the runner's FIFO: NOTE [rank events] in :mod:`child`). The dataset
yields its index with each item, so a rank records exactly which indices its training loop *received*,
per epoch; after the loop every rank gathers them (``all_gather_object``, a real collective over the
process group) and each node's local rank 0 writes them to ``spec["indices_path"]``. The runner checks
them against DistributedSampler's rule (:func:`ssv2_fixtures.run.launch.epoch_check`). Each batch is
``(the dataset's batch, [indices])``: the dataset's items collated as a single-process run would (a user
pipeline's ``collate_fn`` included), the indices beside them. A split too small for one batch per rank
is refused before the process group forms (``SplitTooSmallError``).

Each rank also reports its loader's processes itself: a ``workers`` event ``{pids}`` with the worker pids
of the live DataLoader iterator, once per iterator (each epoch, unless ``persistent_workers``), when its
first batch arrives (``[]`` with ``num_workers=0``). The node-totals check counts the loader processes
from these reports, not from the monitor's 0.1 s samples, which miss workers that live shorter than an
interval. A torch whose iterator does not expose its workers sends no ``workers`` event: "not observed".

A rank that fails reports an ``error`` event (with its rank) and exits 1; torchrun's agent then ends
the other ranks (SIGTERM to each rank's process group) and exits non-zero, naming the failed rank.
"""

from __future__ import annotations

import os
import sys
import time
import weakref
from typing import Any

from .child import ChildSpec, EventWriter, arm_stack_dump, load, report_error
from .child import main as child_main
from .loop import Progress, batch_loop


class _Indexed:
    """Yields ``(item, index)``: the index travels with the batch, so the main process records what it
    received, not what the sampler handed out ahead of time."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> Any:
        return self.dataset[i], i

    def __getitems__(self, indices: list[int]) -> list[Any]:
        # batch-wise through a fault drill (FaultyDataset counts batches there)
        inner = getattr(self.dataset, "__getitems__", None)
        items = inner(indices) if inner else [self.dataset[i] for i in indices]
        return list(zip(items, indices))

    def begin_epoch(self, epoch: int, batches_per_epoch: int) -> None:
        begin = getattr(self.dataset, "begin_epoch", None)
        if begin:
            begin(epoch, batches_per_epoch)


class _IndexedCollate:
    """``[(item, index), …]`` → ``(collate(items), [index, …])``: the dataset's batch of any structure
    (torch's default collate, or a user pipeline's), and the indices beside it. A class: spawn workers
    receive it pickled."""

    def __init__(self, collate: Any) -> None:
        self.collate = collate

    def __call__(self, pairs: list[Any]) -> tuple[Any, list[int]]:
        if self.collate is None:
            from torch.utils.data import default_collate

            return default_collate([p[0] for p in pairs]), [int(p[1]) for p in pairs]
        return self.collate([p[0] for p in pairs]), [int(p[1]) for p in pairs]


def worker_pids(it: Any) -> list[int] | None:
    """Pids of a DataLoader iterator's worker processes: ``[]`` for a single-process iterator, ``None``
    when the iterator does not say. ``_workers`` (the iterator's ``multiprocessing`` Process objects) is
    torch's private attribute, the only place the pids are; hence the guard."""
    n = getattr(it, "_num_workers", None)
    if n is None:
        return None
    if int(n) == 0:
        return []
    ws = getattr(it, "_workers", None)
    if ws is None:
        return None
    return [int(w.pid) for w in ws if getattr(w, "pid", None) is not None]


class WorkerReport:
    """Emits ``workers {pids}`` once per DataLoader iterator (``check(progress.it)`` after each batch):
    the rank's own count of its loader processes."""

    def __init__(self, events: Any) -> None:
        self.events = events
        # the iterator last reported (a new one each epoch without persistent workers); weak, so an
        # error path that drops its iterator still shuts its workers down
        self.last: weakref.ref[Any] | None = None

    def check(self, it: Any) -> None:
        if it is None or (self.last is not None and self.last() is it):
            return
        self.last = weakref.ref(it)
        pids = worker_pids(it)
        if pids is not None:
            self.events.emit("workers", pids=pids)


def _env_int(name: str, default: int | None = None) -> int:
    v = os.environ.get(name)
    if v is None:
        if default is None:
            raise RuntimeError(f"{name} is not set: ssv2_fixtures.run.rank_child runs under torchrun only")
        return default
    return int(v)


def run(spec: ChildSpec) -> int:
    rank, world = _env_int("RANK"), _env_int("WORLD_SIZE")
    local_rank, node_rank = _env_int("LOCAL_RANK", 0), _env_int("GROUP_RANK", 0)
    events = EventWriter(os.open(spec["events_path"], os.O_WRONLY), rank=rank)
    events.emit(
        "started", pid=os.getpid(), pgid=os.getpgid(0), local_rank=local_rank, world_size=world, node_rank=node_rank
    )
    stacks = arm_stack_dump(spec)  # noqa: F841  (kept open for the signal handler)
    progress = Progress()
    loader: Any = None
    ds: Any = None
    try:
        t0 = time.perf_counter()
        import_s, built = load(spec, rank=rank)
        cfg = built.config
        import torch
        import torch.distributed as dist
        from torch.utils.data.distributed import DistributedSampler

        from ..data.loader import make_loader, refuse_unbatchable
        from .record import write_atomic  # after torch: this entry's module level stays stdlib-only

        # before the process group: every rank refuses alike, and no rank waits in a collective for it
        refuse_unbatchable(len(built.dataset), cfg, world_size=world, where=f"{cfg.label} × {world} ranks")
        dist.init_process_group("gloo")
        ds = _Indexed(built.dataset)
        sampler: DistributedSampler[Any] = DistributedSampler(
            ds, num_replicas=world, rank=rank, shuffle=cfg.shuffle, seed=cfg.seed, drop_last=cfg.drop_last
        )
        gen = torch.Generator()
        gen.manual_seed(cfg.seed + rank)  # each rank's workers draw their own clips (as DDP recipes seed)
        loader = make_loader(
            ds,
            cfg,
            sampler=sampler,
            shuffle=False,
            generator=gen,
            collate_fn=_IndexedCollate(built.collate_fn),
            worker_init_fn=built.worker_init_fn,
        )
        cuda = bool(spec.get("cuda")) and torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(local_rank % torch.cuda.device_count())
        events.emit(
            "ready",
            dataset_len=len(ds),
            import_s=import_s,
            build_s=time.perf_counter() - t0,
            cuda=cuda,
            epoch_batches=len(loader),
            epoch_samples=sampler.num_samples,
        )

        seen: list[list[int]] = []  # per epoch: dataset indices received, in order
        report = WorkerReport(events)

        def on_epoch(n: int) -> None:
            sampler.set_epoch(n)
            seen.append([])

        def on_batch(epoch: int, item: Any) -> None:
            seen[epoch].extend(item[1])
            report.check(progress.it)  # the workers that loaded this batch: alive now

        loop_s = batch_loop(
            events, loader, spec, cuda, progress, on_epoch, on_batch, videos_of=lambda item: len(item[1])
        )
        events.emit(
            "finished",
            loop_s=loop_s,
            batches=progress.batch,
            videos=progress.videos,
            epochs=progress.epoch + 1,
            split_size=len(ds),
            distinct_videos=len({i for epoch in seen for i in epoch}),
        )
        del loader
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, {"rank": rank, "node_rank": node_rank, "epochs": seen})
        if local_rank == 0 and spec.get("indices_path"):
            write_atomic(str(spec["indices_path"]), {"world_size": world, "ranks": gathered})
            events.emit("indices", path=spec["indices_path"], world_size=world)
        dist.destroy_process_group()
        return 0
    except BaseException as exc:  # report everything, including KeyboardInterrupt/SystemExit
        report_error(events, progress, exc)
    progress.it = loader = ds = None  # noqa: F841  (only an error gets here)
    return 1


def main(argv: list[str] | None = None) -> int:
    return child_main(argv, entry=run)


if __name__ == "__main__":
    sys.exit(main())
