"""Benchmark: what ``watch(loader)`` costs the training loop on a cheap loader.

A cheap loader (no decode: a TensorDataset of tiny tensors, the default collate, ``num_workers=0`` so
every microsecond of the loop is the loader's or the watch's) is iterated in rounds that alternate a
plain loop and a watched loop (its sampling thread at the default ``interval_s=1.0``, a log file), in
one process, so drift of a shared machine hits both alike. A round's loop time runs from batch
``--skip`` (10 % in: past the start-up and the sampling thread's first reading, once per run) to the
last; start-up and the end-of-iteration summary are printed apart. Rounds last over a second, so the
sampling thread's readings (every second) fall inside them, as in a real run. The overhead is the
median over rounds of watched / plain − 1, with the spread (min–max of the per-round ratios).

Two figures that a shared machine resolves better than a ratio of loop times come after it:
- the step path alone: a watched iteration over a list of batches (``batch_size`` set, as a
  DataLoader's; and without, where each batch is counted) less the bare list, µs per batch;
- one reading of the sampling thread (psutil, /dev/shm, TMPDIR) in ms: its share of the loop is
  about ms / (1000 × interval_s) when the loop holds the GIL throughout.
``--shapes`` also times the step-path shapes that were tried (generator with a bound ``__next__``,
generator ``for``, ``__next__`` class, C-level zip/map pipeline) against each other.
Target (issue #15): ≤ 1 %.

Start-up with a crowded TMPDIR (issue #25; ``--crowded-tmp 200000``, the default): the first ``next()``
of a watched loop with TMPDIR holding that many files against an empty TMPDIR (and the plain loader),
interleaved over ``--startup-reps`` repetitions in one process; then the TMPDIR baseline's own recorded
cost (the sampling thread's walk) and the training thread's batch time while that walk ran against
after it. ``--startup-only`` runs just this part.

    python benchmarks/watch_overhead.py [--rounds 20] [--batches 30000] [--step-us 0] [--shapes]
    python benchmarks/watch_overhead.py --startup-only [--crowded-tmp 200000] [--startup-reps 5]

``--step-us`` adds a busy-wait "training step" per batch (a real step is milliseconds; 0 measures the
watch against the loader alone, the worst case).
"""

from __future__ import annotations

import argparse
import os
import resource
import stat
import statistics
import tempfile
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from itertools import repeat
from operator import itemgetter
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, TensorDataset

from ssv2_fixtures.watch import watch


def busy(us: float) -> None:
    if us <= 0:
        return
    end = time.perf_counter() + us / 1e6
    while time.perf_counter() < end:
        pass


CPU_S: dict[str, list[float]] = {"plain": [], "watched": []}


def _timed(batches: Iterable[Any], n: int, step_us: float, skip: int) -> tuple[float, float, float, float]:
    """The one loop both sides run: (time at batch ``skip``, time at the last batch, the training
    thread's CPU time at each), read before the iterator's StopIteration (a watch's summary runs then)."""
    pc, tt = time.perf_counter, time.thread_time
    mark = last = c0 = c1 = 0.0
    end = n - 1
    for i, _batch in enumerate(batches):
        busy(step_us)
        if i == skip:
            mark, c0 = pc(), tt()
        if i == end:
            last, c1 = pc(), tt()
    return mark, last, c0, c1


def plain_loop(loader: DataLoader, step_us: float, skip: int) -> tuple[float, float]:
    """(start-up: to batch ``skip``, steady: batch ``skip`` to the last); the training thread's CPU
    time over the steady part goes to CPU_S (a shared machine's other load does not count in it)."""
    t0 = time.perf_counter()
    mark, last, c0, c1 = _timed(loader, len(loader), step_us, skip)
    CPU_S["plain"].append(c1 - c0)
    return mark - t0, last - mark


END_S: list[float] = []


def watched_loop(loader: DataLoader, step_us: float, skip: int, log: Path) -> tuple[float, float]:
    """As :func:`plain_loop`; the one-off summary at the end of the iteration is timed apart (END_S)."""
    t0 = time.perf_counter()
    w = watch(loader, log=log)
    mark, last, c0, c1 = _timed(iter(w), len(loader), step_us, skip)
    t1 = time.perf_counter()
    CPU_S["watched"].append(c1 - c0)
    END_S.append(t1 - last)
    w.close()
    return mark - t0, last - mark


class Batches:
    """A list of batches with a DataLoader's ``batch_size`` (the watch's fixed-size step path)."""

    def __init__(self, data: list[Any], batch_size: int | None) -> None:
        self.data, self.batch_size = data, batch_size

    def __iter__(self) -> Iterator[Any]:
        return iter(self.data)


def settle(w: Any) -> None:
    """Wait out the sampling thread's first reading (tens of ms of /proc reads on a loaded machine)."""
    deadline = time.monotonic() + 5
    while not w.samples and time.monotonic() < deadline:
        time.sleep(0.005)


def step_path_us(data: list[Any], batch_size: int | None, reps: int = 7) -> list[float]:
    """µs per batch the watch adds to iterating ``data`` (no sampling during the timing; the clock
    stops at the last batch, before the end-of-iteration summary, which sorts every step's times)."""
    pc, end = time.perf_counter, len(data) - 1
    out = []
    for _ in range(reps):
        t0 = t1 = pc()
        for i, _b in enumerate(data):
            if i == end:
                t1 = pc()
        bare = t1 - t0
        w = watch(Batches(data, batch_size), interval_s=3600)
        it = iter(w)
        next(it)  # start-up (the log line, the thread's first reading) outside the timing
        settle(w)
        t0 = t1 = pc()
        for i, _b in enumerate(it, start=1):
            if i == end:
                t1 = pc()
        out.append((t1 - t0 - bare) / len(data) * 1e6)
    return out


def reading_ms(loader: DataLoader, reps: int = 20) -> tuple[list[float], list[float]]:
    """(wall ms, user-CPU ms) per sampling-thread reading (with its findings pass), mid-iteration.
    User CPU is the part that holds the GIL; the rest is the kernel (``smaps_rollup``, ``/proc``),
    which runs with the GIL released, on another core."""
    w = watch(loader, interval_s=3600)
    it = iter(w)
    for _ in zip(range(2000), it):
        pass
    out, user = [], []
    for _ in range(reps):
        for _ in zip(range(200), it):
            pass
        r0, t0 = resource.getrusage(resource.RUSAGE_THREAD).ru_utime, time.perf_counter()
        w.poll()
        t1, r1 = time.perf_counter(), resource.getrusage(resource.RUSAGE_THREAD).ru_utime
        out.append((t1 - t0) * 1000)
        user.append((r1 - r0) * 1000)
    for _ in it:
        pass
    return out, user


def interleaved(loader: DataLoader, step_us: float, pairs: int, chunk: int) -> list[float]:
    """watched / plain time of ``chunk`` batches, chunk after chunk of one long plain iteration and one
    long watched iteration (sampling off: the step path in the real loop), so that a burst of other
    load on a shared machine hits both sides of a pair alike. Per pair, the ratio."""

    def chunks(src: Any) -> Generator[float, None, None]:
        pc = time.perf_counter
        while True:
            t0 = pc()
            for _ in zip(range(chunk), src):
                busy(step_us)
            yield pc() - t0

    # one epoch long enough for every pair: one start-up and one first reading, waited out below
    n = (pairs + 1) * chunk * loader.batch_size  # type: ignore[operator]
    big = DataLoader(TensorDataset(torch.zeros(n, 4), torch.arange(n)), batch_size=loader.batch_size)
    w = watch(big, interval_s=3600)
    p_it, w_it = chunks(iter(big)), chunks(iter(w))
    next(p_it), next(w_it)  # start-up of both outside the timing
    settle(w)
    out = []
    for r in range(pairs):
        if r % 2:
            w_s, p_s = next(w_it), next(p_it)
        else:
            p_s, w_s = next(p_it), next(w_it)
        out.append(w_s / p_s)
    w_it.close()
    return out


# ---------------------------------------------------------------- step-path shapes (--shapes)
def _shape_next(data: list[Any], s: list[float], e: list[float]) -> Iterator[Any]:
    pc, a, b, nxt = time.perf_counter, s.append, e.append, iter(data).__next__
    while True:
        t0 = pc()
        try:
            x = nxt()
        except StopIteration:
            return
        b(pc())
        a(t0)
        yield x


def _shape_for(data: list[Any], s: list[float], e: list[float]) -> Iterator[Any]:
    pc, a, b, last = time.perf_counter, s.append, e.append, [None]
    a(pc())
    for x in data:
        b(pc())
        last[0] = x
        yield x
        a(pc())


class _ShapeClass:
    __slots__ = ("nxt", "a", "b", "pc")

    def __init__(self, data: list[Any], s: list[float], e: list[float]) -> None:
        self.nxt, self.a, self.b, self.pc = iter(data).__next__, s.append, e.append, time.perf_counter

    def __iter__(self) -> _ShapeClass:
        return self

    def __next__(self) -> Any:
        self.a(self.pc())
        x = self.nxt()
        self.b(self.pc())
        return x


def _shape_c(data: list[Any], s: list[float], e: list[float]) -> Iterator[Any]:
    pc = time.perf_counter
    # zip calls its iterators in order: clock → append, the batch, clock → append; no Python frame
    return map(itemgetter(1), zip(map(s.append, iter(pc, None)), iter(data), map(e.append, iter(pc, None))))


def shapes(n: int = 200_000, reps: int = 9) -> None:
    data = [object()] * n
    kinds: dict[str, Callable[..., Any]] = {
        "generator, bound __next__ (wave 1)": _shape_next,
        "generator, for (now)": _shape_for,
        "__next__ class": _ShapeClass,
        "C zip/map pipeline": _shape_c,
    }
    got: dict[str, list[float]] = {k: [] for k in kinds}
    bare: list[float] = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _x in data:
            pass
        bare.append(time.perf_counter() - t0)
        for k, f in kinds.items():
            s: list[float] = []
            e: list[float] = []
            t0 = time.perf_counter()
            for _x in f(data, s, e):
                pass
            got[k].append(time.perf_counter() - t0)
    b = min(bare)
    for k, v in got.items():
        print(
            f"  shape {k:38s} +{(min(v) - b) / n * 1e9:6.0f} ns/batch (best of {reps}; "
            f"median +{(statistics.median(v) - b) / n * 1e9:.0f})"
        )


def make_files(d: str, n: int) -> None:
    """``n`` real empty files in ``d`` (mknod: no open/close per file)."""
    fd = os.open(d, os.O_RDONLY)
    try:
        for i in range(n):
            os.mknod(f"f{i}", 0o600 | stat.S_IFREG, dir_fd=fd)
    finally:
        os.close(fd)


def first_next(loader: DataLoader, tmpdir: str | None, log: Path) -> tuple[float, Any]:
    """Seconds of the loop's first ``next()`` (plain loader when ``tmpdir`` is None), and the iterator."""
    src: Iterable[Any] = loader if tmpdir is None else watch(loader, log=log, tmpdir=tmpdir)
    t0 = time.perf_counter()
    it = iter(src)
    next(it)
    return time.perf_counter() - t0, (src, it)


def during_baseline(w: Any, it: Iterator[Any], step_us: float) -> tuple[list[float], list[float]]:
    """Per-batch seconds while the sampling thread's TMPDIR baseline is under way, then as many after it."""
    pc = time.perf_counter
    during: list[float] = []
    t = pc()
    for _b in it:
        busy(step_us)
        now = pc()
        during.append(now - t)
        t = now
        if w._sampler is not None and w._sampler.baseline is not None:
            break
    after: list[float] = []
    for _b in zip(range(max(len(during), 1000)), it):
        busy(step_us)
        now = pc()
        after.append(now - t)
        t = now
    return during, after


def crowded_startup(a: argparse.Namespace) -> None:
    n = a.batches * a.batch_size
    loader = DataLoader(
        TensorDataset(torch.zeros(n, 4), torch.arange(n)), batch_size=a.batch_size, num_workers=a.workers
    )
    with tempfile.TemporaryDirectory() as empty, tempfile.TemporaryDirectory() as crowded:
        t0 = time.perf_counter()
        make_files(crowded, a.crowded_tmp)
        print(f"TMPDIR of {a.crowded_tmp} files made in {time.perf_counter() - t0:.1f} s")
        log = Path(empty) / "watch.jsonl"
        first: dict[str, list[float]] = {"plain": [], "empty": [], "crowded": []}
        rec: list[dict[str, Any]] = []
        during: list[float] = []
        after: list[float] = []
        first_next(loader, None, log)  # warm-up: imports, first-touch allocations
        for r in range(a.startup_reps):
            order = ["plain", "empty", "crowded"]
            order = order[r % 3 :] + order[: r % 3]  # each side first as often as the others
            for side in order:
                tmpdir = {"plain": None, "empty": empty, "crowded": crowded}[side]
                s, (src, it) = first_next(loader, tmpdir, log)
                first[side].append(s)
                if side == "crowded":
                    d, af = during_baseline(src, it, a.step_us)
                    during += d
                    after += af
                if tmpdir is not None:
                    it.close()  # ends the watched loop: its summary records the baseline
                    rec.append({"side": side, **src.summary()})
    crowd = [x for x in rec if x["side"] == "crowded"]
    med = {k: statistics.median(v) * 1000 for k, v in first.items()}
    print(
        f"first next(), median of {a.startup_reps} ({a.workers} workers): plain {med['plain']:.2f} ms, "
        f"watched with an empty TMPDIR {med['empty']:.2f} ms, with {a.crowded_tmp} files {med['crowded']:.2f} ms"
    )
    print(
        f"first next() with / without the crowded TMPDIR: {med['crowded'] / med['empty']:.3f} "
        f"(per repetition: {', '.join(f'{c / e:.2f}' for c, e in zip(first['crowded'], first['empty']))}); "
        f"watched / plain {med['empty'] / med['plain']:.3f}"
    )
    print(
        "summary first_batch_s with the crowded TMPDIR: "
        + ", ".join(f"{x['first_batch_s'] * 1000:.2f} ms" for x in crowd)
        + "; watch_start_s: "
        + ", ".join(f"{x['watch_start_s'] * 1000:.2f} ms" for x in crowd)
    )
    print(
        "TMPDIR baseline (sampling thread): "
        + ", ".join(
            f"{x['tmp_baseline_entries']} entries in {x['tmp_baseline_s']:.2f} s by {x.get('tmp_baseline_thread')}"
            + (f" (cut: {x['tmp_baseline_cut']})" if x["tmp_baseline_cut"] else "")
            for x in crowd
        )
    )
    if during and after:
        print(
            f"training thread's batch while the walk ran: mean {statistics.mean(during) * 1e6:.1f} µs over "
            f"{len(during)} batches, after it {statistics.mean(after) * 1e6:.1f} µs over {len(after)} "
            f"(ratio {statistics.mean(during) / statistics.mean(after):.2f}; step {a.step_us:.0f} µs)"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--batches", type=int, default=30000)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--step-us", type=float, default=0.0)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--pairs", type=int, default=300, help="interleaved chunk pairs")
    ap.add_argument("--chunk", type=int, default=200, help="batches per interleaved chunk")
    ap.add_argument("--shapes", action="store_true", help="also time the step-path shapes")
    ap.add_argument("--crowded-tmp", type=int, default=200_000, help="files in the start-up TMPDIR (0: skip)")
    ap.add_argument("--startup-reps", type=int, default=5)
    ap.add_argument("--startup-only", action="store_true", help="only the crowded-TMPDIR start-up figures")
    a = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    if a.crowded_tmp > 0:
        crowded_startup(a)
    if a.startup_only:
        return
    ds = TensorDataset(torch.zeros(a.batches * a.batch_size, 4), torch.arange(a.batches * a.batch_size))
    loader = DataLoader(ds, batch_size=a.batch_size, num_workers=a.workers, persistent_workers=a.workers > 0)
    skip = a.batches // 10
    with tempfile.TemporaryDirectory() as d:
        log = Path(d) / "watch.jsonl"
        plain_loop(loader, a.step_us, skip)  # warm-up: first-touch allocations, import of the collate path
        watched_loop(loader, a.step_us, skip, log)
        ratios, plain_s, watched_s, startup = [], [], [], []
        for r in range(a.rounds):
            # alternate which goes first, so neither always runs right after the other
            if r % 2:
                (w_up, w_s), (p_up, p_s) = (
                    watched_loop(loader, a.step_us, skip, log),
                    plain_loop(loader, a.step_us, skip),
                )
            else:
                (p_up, p_s), (w_up, w_s) = (
                    plain_loop(loader, a.step_us, skip),
                    watched_loop(loader, a.step_us, skip, log),
                )
            ratios.append(w_s / p_s)
            plain_s.append(p_s)
            watched_s.append(w_s)
            startup.append(w_up - p_up)
    pairs = interleaved(loader, a.step_us, a.pairs, a.chunk)
    batch = next(iter(loader))
    data = list(repeat(batch, 100_000))
    fixed, counted = step_path_us(data, a.batch_size), step_path_us(data, None)
    reads, reads_user = reading_ms(loader)
    cpu = [w / p for w, p in zip(CPU_S["watched"][1:], CPU_S["plain"][1:])]  # the warm-up left out
    med = statistics.median(ratios)
    n = a.batches - skip
    per_batch_us = statistics.median(plain_s) / n * 1e6
    print(
        f"cheap loader: {a.batches} batches of {a.batch_size} × 4 floats, num_workers={a.workers}, "
        f"step {a.step_us:.0f} µs; plain loop {per_batch_us:.1f} µs/batch; rounds of "
        f"{statistics.median(plain_s):.2f} s timed from batch {skip}"
    )
    print(
        f"rounds: {a.rounds}; watched/plain per round min {min(ratios):.4f} median {med:.4f} "
        f"max {max(ratios):.4f} (quartiles {statistics.quantiles(ratios, n=4)[0]:.4f}–"
        f"{statistics.quantiles(ratios, n=4)[2]:.4f})"
    )
    print(
        f"fastest watched / fastest plain (the rounds least disturbed by other load): wall "
        f"{min(watched_s) / min(plain_s):.4f}, CPU {min(CPU_S['watched'][1:]) / min(CPU_S['plain'][1:]):.4f}"
    )
    print(
        f"once per run: start-up {statistics.median(startup) * 1000:+.1f} ms, end-of-iteration summary "
        f"{statistics.median(END_S) * 1000:.1f} ms"
    )
    print(
        f"step path alone: +{min(fixed):.2f} µs/batch with batch_size (best of {len(fixed)}; median "
        f"{statistics.median(fixed):.2f}) = {min(fixed) / per_batch_us * 100:.2f} % of this loader's batch; "
        f"counting each batch (no batch_size) +{min(counted):.2f} (median {statistics.median(counted):.2f})"
    )
    print(
        f"training thread CPU time, watched/plain per round: min {min(cpu):.4f} median "
        f"{statistics.median(cpu):.4f} max {max(cpu):.4f}"
    )
    # the mean, not the median: every 5th reading (PSS, TMPDIR) is the dear one
    share = statistics.mean(reads) / 10
    print(
        f"one sampling reading: {statistics.mean(reads):.2f} ms wall on average (median "
        f"{statistics.median(reads):.2f}, max {max(reads):.1f}), of which {statistics.mean(reads_user):.2f} ms "
        f"user CPU (holds the GIL): at most {share:.3f} % of a loop at interval_s=1.0 (all of its wall time)"
    )
    pm = statistics.median(pairs)
    q1, _, q3 = statistics.quantiles(pairs, n=4)
    # the median's standard error, from the interquartile range (σ ≈ IQR / 1.35; SE ≈ 1.25 σ / √n)
    se = 1.25 * (q3 - q1) / 1.35 / len(pairs) ** 0.5
    print(
        f"step path in the loop, {len(pairs)} interleaved pairs of {a.chunk} batches: watched/plain median "
        f"{pm:.4f} ± {se:.4f} (quartiles {q1:.4f}–{q3:.4f})"
    )
    print(
        f"overhead (step path + sampling): {(pm - 1) * 100:+.2f} ± {se * 100:.2f} % "
        f"+ {share:.3f} % = {(pm - 1) * 100 + share:+.2f} %"
    )
    print(f"overhead (median, CPU): {(statistics.median(cpu) - 1) * 100:+.2f} % of the training thread's time")
    print(
        f"overhead (median, wall): {(med - 1) * 100:+.2f} % of loop time "
        f"({(statistics.median(watched_s) - statistics.median(plain_s)) / n * 1e6:+.2f} µs/batch); "
        f"target <= 1 %"
    )
    if a.shapes:
        shapes()


if __name__ == "__main__":
    main()
