"""The autotune's pick against the best of a brute-force grid over the same space, in one run.

    python benchmarks/tune_vs_grid.py [--batch-size 8] [--workers 1,2,3,4] [--prefetch 1,2,4,8]
                                      [--budget 240] [--grid-batches 40] [--reps 3] [--out FILE]

1. ``-m tune``'s search (:func:`ssv2_fixtures.stress.tune_run.run_tune`) within ``--budget`` seconds.
2. Every config of the same space (workers × prefetch × both sharing strategies × persistent on/off)
   once for ``--grid-batches`` batches, each isolated, on the same clips. Each run keeps its rate and
   batch-means interval; a failed run keeps its failure kind (it is no rate of 0).
3. The grid's best by the suite's tie rule, as the tune picks (:func:`ssv2_fixtures.stress.tune_model.tie_pick`:
   the fastest, or the cheapest config that ties with it) — not the highest single point rate, which
   out of a whole grid of noisy runs is mostly the luckiest (winner's curse).
4. The tuned pick and the grid's best re-measured ``--reps`` times each, alternating (so load drift on
   the machine hits both alike): ratio = median(tuned) / median(grid best), with the range of the
   per-pair ratios. Goal ≥ 0.95.

Prints every rate with its spread (interval per run; min–max over the reps) on stderr, and one JSON
object on stdout: the ratio and its range, both medians and ranges, each run's interval, the failed
runs by kind, the tune's and the grid's wall time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ssv2_fixtures.data.loader import LoaderConfig
from ssv2_fixtures.stress.tune_model import Estimate, Probe, Space, cost_key, tie_pick, tuned_label
from ssv2_fixtures.stress.tune_run import api_stress, probe_of, run_tune

name = tuned_label


def entry(p: Probe) -> dict[str, Any]:
    """A run as the JSON keeps it: its rate and interval, or its failure kind."""
    if not p.passed:
        return {"kind": p.kind or "failed", "batches": p.batches}
    return {"videos_per_s": p.videos_per_s, "interval": list(p.interval) if p.interval else None, "batches": p.batches}


def text(p: Probe) -> str:
    if not p.passed or p.videos_per_s is None:
        return f"failed: {p.kind}"
    iv = f" [{p.interval[0]:.1f}, {p.interval[1]:.1f}]" if p.interval else " [no interval]"
    return f"{p.videos_per_s:.1f}{iv} videos/s"


def spread(rates: list[float]) -> dict[str, float | None]:
    if not rates:
        return {"median": None, "min": None, "max": None}
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--workers", default="1,2,3,4")
    ap.add_argument("--prefetch", default="1,2,4,8")
    ap.add_argument("--budget", type=float, default=240.0)
    ap.add_argument("--grid-batches", type=int, default=40)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    ints = lambda t: tuple(int(x) for x in t.split(","))  # noqa: E731
    say = lambda line: print(line, file=sys.stderr)  # noqa: E731

    reports = Path(tempfile.mkdtemp(prefix="tune-vs-grid-"))
    stress = api_stress(reports, say, batch_sizes=str(a.batch_size))
    space = Space(
        batch_size=a.batch_size,
        workers=ints(a.workers),
        prefetch=ints(a.prefetch),
        base=LoaderConfig(shuffle=True, drop_last=True),
    )
    stress.decode_limit(space.config(1), probe=True)  # once, outside both timings

    t0 = time.monotonic()
    (tuned,) = run_tune(stress, budget_s=a.budget, spaces=[space], record_confirm=False)
    tune_s = time.monotonic() - t0
    if tuned.best is None:
        print(json.dumps({"error": tuned.failure()}))
        return 1

    def run(config: LoaderConfig) -> Probe:
        p = probe_of(stress.run(config, a.grid_batches, kind="tune", phase=f"bench-{config.label}", train=True))
        say(f"  {name(config)}: {text(p)}")
        return p

    t0 = time.monotonic()
    grid = {c: run(c) for c in space.all_configs()}
    grid_s = time.monotonic() - t0
    passed = [
        Estimate(c, p.videos_per_s, *(p.interval or (p.videos_per_s, p.videos_per_s)))
        for c, p in grid.items()
        if p.passed and p.videos_per_s is not None
    ]
    if not passed:
        print(json.dumps({"error": "no grid run passed", "grid": {name(c): entry(p) for c, p in grid.items()}}))
        return 1
    shm = lambda c: float(stress.budget(c).shm_bytes)  # noqa: E731  (the tune's own "less shm")
    best, group = tie_pick(passed, lambda c: cost_key(c, shm))
    failed: dict[str, list[str]] = {}
    for c, p in grid.items():
        if not p.passed:
            failed.setdefault(p.kind or "failed", []).append(name(c))

    ours: list[Probe] = []
    theirs: list[Probe] = []
    for _ in range(a.reps):  # alternating: load drift hits both alike
        ours.append(run(tuned.best.config))
        theirs.append(run(best.config))
    rate = lambda ps: [p.videos_per_s for p in ps if p.passed and p.videos_per_s]  # noqa: E731
    pairs = [
        o.videos_per_s / t.videos_per_s
        for o, t in zip(ours, theirs)
        if o.passed and t.passed and o.videos_per_s and t.videos_per_s
    ]
    o_s, t_s, r_s = spread(rate(ours)), spread(rate(theirs)), spread(pairs)
    out = {
        "batch_size": a.batch_size,
        "space_size": len(grid),
        "tune_budget_s": a.budget,
        "tuned": name(tuned.best.config),
        "tuned_confirmed": tuned.confirmed,
        "grid_best": name(best.config),
        "grid_best_ties": sorted(name(e.config) for e in group if e is not best),
        "tuned_videos_per_s": o_s,
        "grid_best_videos_per_s": t_s,
        "tuned_reps": [entry(p) for p in ours],
        "grid_best_reps": [entry(p) for p in theirs],
        "ratio": r_s,
        "tune_s": tune_s,
        "grid_s": grid_s,
        "time_ratio": tune_s / grid_s,
        "tune_probes": len(tuned.tried),
        "grid_runs": len(grid),
        "grid": {name(c): entry(p) for c, p in grid.items()},
        "grid_failed_by_kind": failed,
    }

    def fmt(d: dict) -> str:
        if d["median"] is None:
            return "—"
        return f"{d['median']:.2f} (min–max {d['min']:.2f}–{d['max']:.2f})"

    say(f"tuned {name(tuned.best.config)}: {fmt(o_s)} videos/s over {len(rate(ours))} of {a.reps} reps")
    say(f"grid best {name(best.config)} (tie rule; {len(group) - 1} tie(s)): {fmt(t_s)} videos/s")
    say(
        f"ratio tuned / grid best: {fmt(r_s)}; tune {tune_s:.0f} s vs grid {grid_s:.0f} s"
        + (f"; failed grid runs: {failed}" if failed else "")
    )
    body = json.dumps(out, indent=1)
    print(body)
    if a.out:
        a.out.write_text(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
