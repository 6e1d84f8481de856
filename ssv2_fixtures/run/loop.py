"""The batch loop and its measured window: receive batches from a DataLoader, one ``batch`` event each.

:func:`batch_loop` is the child's (:mod:`ssv2_fixtures.run.child`) and each rank's
(:mod:`ssv2_fixtures.run.rank_child`) loop: ``spec["batches"]`` batches, or, with ``spec["measure"]``
(:class:`MeasureSpec`), a measured window after warm-up that ends when its rate is precise enough. The
events it writes are listed in NOTE [child events] (run/child.py). Only the standard library is imported
at module level: the child imports this module before torch.

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
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypedDict


class MeasureSpec(TypedDict):
    """A measured window instead of a fixed batch count; see NOTE [measured window]."""

    warmup_batches: int
    min_batches: int
    max_batches: int
    max_s: float
    target_rel: float
    min_s: float  # no ``converged`` stop before this many seconds of window (0 if left out)


class LoopSpec(TypedDict, total=False):
    """What :func:`batch_loop` reads of the child's spec (:class:`~ssv2_fixtures.run.child.ChildSpec`)."""

    batches: int
    measure: MeasureSpec | None
    step_s: float  # simulated training step per batch (the batch is held meanwhile)


class Emitter(Protocol):
    """What :func:`batch_loop` needs of an event writer (tests pass a list-backed one)."""

    def emit(self, ev: str, /, **fields: Any) -> None: ...


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
    spec: LoopSpec,
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


def _h2d(events: Emitter, i: int, tensor: Any) -> None:
    """Copy the batch's largest tensor to the GPU as a training step would (pinned, non-blocking)."""
    import torch

    t = time.perf_counter()
    src = tensor if tensor.is_pinned() else tensor.pin_memory()
    dev = src.to("cuda", non_blocking=True)
    torch.cuda.synchronize()
    events.emit("h2d", i=i, copy_s=time.perf_counter() - t, vram_peak_bytes=int(torch.cuda.max_memory_allocated()))
    del dev
