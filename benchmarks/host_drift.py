"""Can two consecutive `pytest -m quick` sessions agree within 10 % per phase on this machine at all?

    python benchmarks/host_drift.py [--seconds 600] [--session-gap 90] [--phase-gap 10] [--videos 64]

Traces the machine's own speed: one process decodes the same built-in clip (``SSv2Clips`` item 0, decord,
the quick ladder's BS=1 W=0 work without a DataLoader) over and over for ``--seconds``, and prints its rate in
every 1 s window — nothing changes from window to window but the machine. Then it replays the trace as if
quick sessions had run on it, ``--session-gap`` seconds apart, each with one phase per W <= cores config
of the ladder, ``--phase-gap`` seconds apart, and prints, for a few window designs, how often *every* such
phase of a session lands within 10 % of the same phase one session later (the run-to-run target,
docs/methodology.md "Run to run"), and the median change of the worst phase. The first design is the quick
ladder's own at its shortest (one window of ``stress.plans.QUICK_MIN_S``); the others show what more window
time, or the same time split in two passes, would buy. Also printed: the autocorrelation of the 1 s rates at a
few lags (how slowly the drift moves).

Not a test: a machine property, printed in one run. Where the speed holds every design gives 1.00;
on the 2-core VM of benchmarks/README.md it was 0.12 (benchmarks/README.md "Quick windows and run to run on
one VM").
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence

import torch  # before decord

from ssv2_fixtures.data.clips import SSv2Clips
from ssv2_fixtures.data.synth import SynthSpec, default_cache_dir, ensure_synthetic
from ssv2_fixtures.options import resolve
from ssv2_fixtures.run.stats import percentile
from ssv2_fixtures.stress.plans import QUICK_MIN_S, ladder

TARGET = 0.10


def trace(ds: SSv2Clips, seconds: float) -> list[float]:
    """Items/s of ``ds[0]`` in consecutive 1 s windows."""
    out: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0, n = time.perf_counter(), 0
        while time.perf_counter() < t0 + 1.0:
            ds[0]
            n += 1
        out.append(n / (time.perf_counter() - t0))
        print(f"{len(out):4d} s  {out[-1]:6.1f} videos/s", flush=True)
    return out


def replay(
    rates: Sequence[float], parts: Sequence[tuple[int, int]], phases: int, session_gap: int, phase_gap: int
) -> tuple[float, float] | None:
    """(share of session pairs whose every phase is within TARGET, median worst-phase change) when each
    phase's rate is the mean of its windows ``parts`` ((offset s, length s) from the phase's start); None
    when the trace is too short for one pair."""

    def window(t: int, length: int) -> float:
        return statistics.fmean(rates[t : t + length])

    offsets = [i * phase_gap for i in range(phases)]
    span = session_gap + offsets[-1] + max(a + n for a, n in parts)
    hits, worst = [], []
    for t in range(0, len(rates) - span + 1):
        changes = []
        for o in offsets:
            a = statistics.fmean(window(t + o + p, n) for p, n in parts)
            b = statistics.fmean(window(t + session_gap + o + p, n) for p, n in parts)
            changes.append(abs(b / a - 1.0))
        hits.append(max(changes) <= TARGET)
        worst.append(max(changes))
    if not hits:
        return None
    return sum(hits) / len(hits), percentile(worst, 50)


def autocorr(rates: Sequence[float], lag: int) -> float | None:
    if lag >= len(rates):
        return None
    m = statistics.fmean(rates)
    x = [r - m for r in rates]
    den = sum(v * v for v in x)
    return sum(x[i] * x[i + lag] for i in range(len(x) - lag)) / den if den else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=600.0, help="length of the trace (default 600)")
    ap.add_argument(
        "--session-gap",
        type=int,
        default=90,
        help="seconds from one quick session's start to the next's (default 90: a warm quick session here)",
    )
    ap.add_argument("--phase-gap", type=int, default=10, help="seconds from one phase's start to the next's")
    defaults = resolve(lambda name: None, lambda name: None, None)  # the session's defaults: cap, set size
    ap.add_argument(
        "--videos",
        type=int,
        default=defaults.synthetic_videos,
        help=f"distinct clips in the built-in set (default {defaults.synthetic_videos}, as quick)",
    )
    ap.add_argument(
        "--cache",
        default=str(default_cache_dir()),
        help="the built-in set's cache ($SSV2_STRESS_CACHE, else ~/.cache/ssv2-stress)",
    )
    a = ap.parse_args()
    torch.set_num_threads(1)  # as the suite's child
    root = ensure_synthetic(SynthSpec(videos=a.videos, full_size=True), cache_dir=a.cache)
    ds = SSv2Clips(root, split="train")
    cores = defaults.cores
    phases = sum(1 for p in ladder(defaults.max_workers) if p.config.num_workers <= cores)
    rates = trace(ds, a.seconds)
    if len(rates) < 2:
        print("trace too short", file=sys.stderr)
        return 2
    print(
        f"\n{len(rates)} windows of 1 s: median {percentile(rates, 50):.1f} videos/s, "
        f"5th-95th percentile {percentile(rates, 5):.1f}-{percentile(rates, 95):.1f}"
    )
    lags = [k for k in (1, 3, 6, 10, 30, 60, 90, 180) if k < len(rates)]
    print("autocorrelation at lag (s): " + ", ".join(f"{k}: {autocorr(rates, k):.2f}" for k in lags))
    w, half = int(round(QUICK_MIN_S)), max(1, int(round(QUICK_MIN_S / 2)))
    designs = [
        (f"one {w} s window (the quick ladder's)", [(0, w)]),
        (f"one {2 * w} s window", [(0, 2 * w)]),
        ("one 30 s window", [(0, 30)]),
        (f"two {half} s windows 45 s apart", [(0, half), (45, half)]),
        (f"two {w} s windows 45 s apart", [(0, w), (45, w)]),
    ]
    print(
        f"\n{phases} phases (W <= {cores} cores) per session, {a.phase_gap} s apart; sessions "
        f"{a.session_gap} s apart; target: every phase within {TARGET:.0%} of the previous session's"
    )
    for name, parts in designs:
        r = replay(rates, parts, phases, a.session_gap, a.phase_gap)
        if r is None:
            print(f"  {name:38s} trace too short for one pair of sessions")
            continue
        share, worst = r
        print(f"  {name:38s} pairs meeting the target {share:.2f}   median worst phase {worst:.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
