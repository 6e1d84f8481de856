"""How much do paused windows of two configs vary, round to round, on this machine?

    python benchmarks/paused_windows.py [--seconds 1.25] [--rounds 8] [--a 4,2] [--b 8,2]

The quick session's interleaved comparison (stress/drift.py ``compare_paused``) keeps one isolated child per
candidate, paused between its windows (run/paused.py). This runs that mechanism on the built-in set for two configs
(``--a``/``--b`` as BATCH_SIZE,WORKERS, prefetch 2): both children start once, then ``--rounds`` rounds of
``--seconds`` windows in the comparison's order (every other round reversed). Printed: each child's start-up, the
rounds' cost, each round's rates and B/A ratio, the ratios' standard deviation, and the decision the product's rule
(:func:`ssv2_fixtures.run.drift.interleaved`) takes on them. The ratio's spread is what sets how large a lead a
quick session's 3-4 rounds can resolve. Not a test: a machine property, printed in one run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from ssv2_fixtures.data.loader import LoaderConfig
from ssv2_fixtures.data.synth import SynthSpec, ensure_synthetic
from ssv2_fixtures.run.drift import interleaved, schedule
from ssv2_fixtures.run.paused import PausedRuns
from ssv2_fixtures.run.request import RunRequest
from ssv2_fixtures.stress.drift import PAUSED_CHILD_S


def config(text: str) -> LoaderConfig:
    bs, w = (int(x) for x in text.split(","))
    return LoaderConfig(batch_size=bs, num_workers=w, prefetch_factor=2 if w else None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.25)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--a", default="4,2")
    ap.add_argument("--b", default="8,2")
    ap.add_argument("--cache", default=None, help="synthetic set cache (default: SSV2_STRESS_CACHE or a temp dir)")
    args = ap.parse_args()
    import os

    cache = args.cache or os.environ.get("SSV2_STRESS_CACHE") or tempfile.mkdtemp()
    root = ensure_synthetic(SynthSpec(), cache_dir=cache)
    runs_dir = tempfile.mkdtemp(prefix="paused-windows-")
    measure = {
        "warmup_batches": 1,
        "min_batches": 1,
        "max_batches": 10**6,
        "max_s": PAUSED_CHILD_S,
        "target_rel": 1e-9,
        "min_s": PAUSED_CHILD_S,
    }
    requests = {
        name: RunRequest(str(root), config(c), 10**6, run_dir=runs_dir, name=name, measure=measure, hold=False)
        for name, c in (("A", args.a), ("B", args.b))
    }
    t0 = time.monotonic()
    with PausedRuns(requests) as runs:
        print("start-up (spawn to first batch, s):", {k: round(v, 2) for k, v in runs.startup_s.items()})
        rounds: list[dict[str, float]] = []
        for order in schedule(["A", "B"], args.rounds):
            r = {name: runs.window(name, args.seconds) for name in order}
            if any(v is None for v in r.values()):
                print("a window failed:", r)
                break
            rounds.append({n: float(r[n] or 0.0) for n in ("A", "B")})
        print(f"start-ups and {len(rounds)} rounds took {time.monotonic() - t0:.1f} s")
    ratios = [r["B"] / r["A"] for r in rounds]
    for r, q in zip(rounds, ratios):
        print(f"  A {r['A']:6.1f}  B {r['B']:6.1f}  videos/s   B/A {q:.3f}")
    if len(ratios) > 1:
        print(f"B/A per round: mean {statistics.mean(ratios):.3f}, sd {statistics.stdev(ratios):.3f}")
        print("decision:", interleaved(rounds)["text"])


if __name__ == "__main__":
    main()
