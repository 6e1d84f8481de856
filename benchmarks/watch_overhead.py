"""Benchmark: what ``watch(loader)`` costs the training loop on a cheap loader.

A cheap loader (no decode: a TensorDataset of tiny tensors, the default collate, ``num_workers=0`` so
every microsecond of the loop is the loader's or the watch's) is iterated in rounds that alternate a
plain loop and a watched loop (with its sampling thread at the default ``interval_s=1.0`` and a log
file), in one process, so drift of a shared machine hits both alike. Each round's loop time is its
time from its first batch to its last (the start-up before the first batch, and the summary after
the last, cost once per run and are printed apart); the overhead is the median over rounds of watched / plain − 1, with the
spread (min–max of the per-round ratios) and the ratio of the fastest rounds next to it (the least
disturbed by other load). Target (issue #15): ≤ 1 %.

    python benchmarks/watch_overhead.py [--rounds 30] [--batches 5000] [--step-us 0] [--workers 0]

``--step-us`` adds a busy-wait "training step" per batch (a real step is milliseconds; 0 measures the
watch against the loader alone, the worst case).
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from ssv2_fixtures.watch import watch


def busy(us: float) -> None:
    if us <= 0:
        return
    end = time.perf_counter() + us / 1e6
    while time.perf_counter() < end:
        pass


def plain_loop(loader: DataLoader, step_us: float) -> tuple[float, float]:
    """(start-up: to the first batch, steady: first batch to last)."""
    t0 = time.perf_counter()
    first = last = 0.0
    for _batch in loader:
        busy(step_us)
        last = time.perf_counter()
        first = first or last
    return first - t0, last - first


END_S: list[float] = []


def watched_loop(loader: DataLoader, step_us: float, log: Path) -> tuple[float, float]:
    """As :func:`plain_loop`; the one-off summary at the end of the iteration is timed apart (END_S)."""
    t0 = time.perf_counter()
    first = last = 0.0
    w = watch(loader, log=log)
    for _batch in w:
        busy(step_us)
        last = time.perf_counter()
        first = first or last
    END_S.append(time.perf_counter() - last)
    w.close()
    return first - t0, last - first


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--batches", type=int, default=5000)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--step-us", type=float, default=0.0)
    ap.add_argument("--workers", type=int, default=0)
    a = ap.parse_args()
    ds = TensorDataset(torch.zeros(a.batches * a.batch_size, 4), torch.arange(a.batches * a.batch_size))
    loader = DataLoader(ds, batch_size=a.batch_size, num_workers=a.workers,
                        persistent_workers=a.workers > 0)
    with tempfile.TemporaryDirectory() as d:
        log = Path(d) / "watch.jsonl"
        plain_loop(loader, a.step_us)  # warm-up: first-touch allocations, import of the collate path
        watched_loop(loader, a.step_us, log)
        ratios, plain_s, watched_s, startup = [], [], [], []
        for r in range(a.rounds):
            # alternate which goes first, so neither always runs right after the other
            if r % 2:
                (w_up, w_s), (p_up, p_s) = watched_loop(loader, a.step_us, log), plain_loop(loader, a.step_us)
            else:
                (p_up, p_s), (w_up, w_s) = plain_loop(loader, a.step_us), watched_loop(loader, a.step_us, log)
            ratios.append(w_s / p_s)
            plain_s.append(p_s)
            watched_s.append(w_s)
            startup.append(w_up - p_up)
    # The step path alone, against a list iterator (a zero-cost "loader"): the watch's own µs per batch,
    # which a noisy shared machine resolves better than a ratio of two loop times.
    data = [next(iter(loader))] * 100_000
    path_us = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _b in data:
            pass
        bare = time.perf_counter() - t0
        w = watch(data, interval_s=3600)   # no sampling during the timing: the step path only
        t0 = time.perf_counter()
        for _b in w:
            pass
        path_us.append((time.perf_counter() - t0 - bare) / len(data) * 1e6)
    med = statistics.median(ratios)
    per_batch_us = statistics.median(plain_s) / a.batches * 1e6
    print(f"cheap loader: {a.batches} batches of {a.batch_size} × 4 floats, num_workers={a.workers}, "
          f"step {a.step_us:.0f} µs; plain loop {per_batch_us:.1f} µs/batch")
    print(f"rounds: {a.rounds}; watched/plain per round min {min(ratios):.4f} median {med:.4f} "
          f"max {max(ratios):.4f}")
    mins = min(watched_s) / min(plain_s)
    print(f"fastest watched / fastest plain: {mins:.4f}; once per run: start-up "
          f"{statistics.median(startup) * 1000:+.1f} ms, end-of-iteration summary "
          f"{statistics.median(END_S) * 1000:.1f} ms")
    print(f"step path alone: +{min(path_us):.2f} µs/batch (best of 5; median {statistics.median(path_us):.2f}) "
          f"= {min(path_us) / per_batch_us * 100:.2f} % of this loader's batch")
    print(f"overhead (median): {(med - 1) * 100:+.2f} % of loop time "
          f"({(statistics.median(watched_s) - statistics.median(plain_s)) / a.batches * 1e6:+.2f} µs/batch); "
          f"target <= 1 %")


if __name__ == "__main__":
    main()
