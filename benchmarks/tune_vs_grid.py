"""The autotune's pick against the best of a brute-force grid over the same space, in one run.

    python benchmarks/tune_vs_grid.py [--batch-size 8] [--workers 1,2,3,4] [--prefetch 1,2,4,8]
                                      [--budget 240] [--grid-batches 40] [--reps 3] [--out FILE]

1. ``-m tune``'s search (:func:`ssv2_fixtures.stress.tune_run.run_tune`) within ``--budget`` seconds.
2. Every config of the same space (workers × prefetch × both sharing strategies × persistent on/off)
   once for ``--grid-batches`` batches, each isolated, on the same clips.
3. The tuned pick and the grid's best re-measured ``--reps`` times each, alternating (so load drift on
   the machine hits both alike): ratio = median(tuned) / median(grid best). Goal ≥ 0.95.

Prints one JSON object: the ratio, both medians, the tune's and the grid's wall time.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ssv2_fixtures.data.loader import LoaderConfig
from ssv2_fixtures.stress.tune import Space
from ssv2_fixtures.stress.tune_run import api_stress, probe_of, run_tune


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

    reports = Path(tempfile.mkdtemp(prefix="tune-vs-grid-"))
    stress = api_stress(reports, lambda line: print(line, file=sys.stderr), batch_sizes=str(a.batch_size))
    space = Space(batch_size=a.batch_size, workers=ints(a.workers), prefetch=ints(a.prefetch),
                  base=LoaderConfig(shuffle=True, drop_last=True))
    stress.decode_limit(space.config(1), probe=True)  # once, outside both timings

    t0 = time.monotonic()
    (tuned,) = run_tune(stress, budget_s=a.budget, spaces=[space], record_confirm=False)
    tune_s = time.monotonic() - t0
    if tuned.best is None:
        print(json.dumps({"error": tuned.failure()}))
        return 1

    def rate(config: LoaderConfig, batches: int) -> float:
        p = probe_of(stress.run(config, batches, kind="tune", phase=f"bench-{config.label}", train=True))
        return p.videos_per_s or 0.0

    t0 = time.monotonic()
    grid = {c: rate(c, a.grid_batches) for c in space.all_configs()}
    grid_s = time.monotonic() - t0
    best = max(grid, key=lambda c: grid[c])
    ours, theirs = [], []
    for _ in range(a.reps):
        ours.append(rate(tuned.best.config, a.grid_batches))
        theirs.append(rate(best, a.grid_batches))
    out = {
        "batch_size": a.batch_size, "space_size": len(grid), "tune_budget_s": a.budget,
        "tuned": tuned.best.config.label + ("-pw" if tuned.best.config.persistent_workers else ""),
        "tuned_confirmed": tuned.confirmed, "grid_best": best.label + ("-pw" if best.persistent_workers else ""),
        "tuned_videos_per_s": statistics.median(ours), "grid_best_videos_per_s": statistics.median(theirs),
        "ratio": statistics.median(ours) / statistics.median(theirs) if statistics.median(theirs) else None,
        "tune_s": tune_s, "grid_s": grid_s, "time_ratio": tune_s / grid_s,
        "tune_probes": len(tuned.tried), "grid_runs": len(grid),
        "grid": {c.label + ("-pw" if c.persistent_workers else ""): r
                 for c, r in grid.items()},
    }
    text = json.dumps(out, indent=1)
    print(text)
    if a.out:
        a.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
