"""Do two sessions pick the same config on a drifting machine: the sequential rule vs the interleaved one?

    python benchmarks/drift_decision.py [--trace FILE | --seconds 300] [--lead 0.05] [--session-gap 90]

The machine's own speed, one rate per 1 s window: ``--trace FILE`` reads a saved ``benchmarks/host_drift.py``
output (its ``  12 s   38.4 videos/s`` lines), else this traces it now for ``--seconds`` (host_drift's trace).
Then it replays quick sessions on the trace, ``--session-gap`` s apart. Each session decides between config A and
config B, where A is truly ``--lead`` faster (B's rate = A's / (1 + lead) at every instant, the rest is the
machine):

- **sequential** (the ladder today): A measured for one quick window (``QUICK_MIN_S``), B ``--phase-gap`` s later
  for another; the higher rate wins.
- **interleaved** (issue #24, :func:`ssv2_fixtures.run.drift.interleaved`): the same total window time split into
  alternating 1 s windows, A B, B A, … (:func:`~ssv2_fixtures.run.drift.schedule`); A or B wins only when the
  per-round ratios' interval says so, else a tie.

Printed per rule: how often two consecutive sessions pick the same (a tie counts as the same only against a tie),
and how often a session names the truly faster config, names the slower one, or ties. Not a test: a machine
property, printed in one run.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

from ssv2_fixtures.run.drift import interleaved, schedule, sequential
from ssv2_fixtures.stress.plans import QUICK_MIN_S

LINE = re.compile(r"^\s*\d+\s+s\s+([0-9.]+)\s+videos/s")


def read_trace(path: Path) -> list[float]:
    return [float(m.group(1)) for line in path.read_text().splitlines() if (m := LINE.match(line))]


def seq_pick(rates: Sequence[float], t: int, lead: float, window: int, gap: int) -> str:
    a = statistics.fmean(rates[t : t + window])
    b = statistics.fmean(rates[t + gap : t + gap + window]) / (1 + lead)
    return sequential({"A": a, "B": b})


def inter_pick(rates: Sequence[float], t: int, lead: float, window: int) -> str:
    rounds, i = [], t
    for order in schedule(["A", "B"], max(2, window)):  # 2 × window s in all: the two sequential windows' time
        r: dict[str, float] = {}
        for name in order:
            r[name] = rates[i] / (1 + lead if name == "B" else 1.0)
            i += 1
        rounds.append(r)
    d = interleaved(rounds)
    return d["faster"] or "tie"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", type=Path, help="a saved benchmarks/host_drift.py output")
    ap.add_argument("--seconds", type=float, default=300.0, help="trace length when tracing now (default 300)")
    ap.add_argument("--lead", type=float, default=0.05, help="A's true lead over B (default 0.05)")
    ap.add_argument("--session-gap", type=int, default=90)
    ap.add_argument("--phase-gap", type=int, default=10)
    a = ap.parse_args()
    if a.trace is not None:
        rates = read_trace(a.trace)
    else:
        import host_drift  # type: ignore[import-not-found]  # the sibling script: its trace

        from ssv2_fixtures.data.clips import SSv2Clips
        from ssv2_fixtures.data.synth import SynthSpec, default_cache_dir, ensure_synthetic

        root = ensure_synthetic(SynthSpec(videos=64, full_size=True), cache_dir=str(default_cache_dir()))
        rates = host_drift.trace(SSv2Clips(root, split="train"), a.seconds)
    w = int(round(QUICK_MIN_S))
    span = a.session_gap + max(a.phase_gap + w, 2 * w)
    if len(rates) < span + 1:
        print(f"trace too short: {len(rates)} s < {span + 1} s", file=sys.stderr)
        return 2
    print(f"{len(rates)} s of trace; A truly {a.lead:.0%} faster than B; sessions {a.session_gap} s apart")
    for name, rule in (
        (f"sequential ({w} s each, {a.phase_gap} s apart)", lambda t: seq_pick(rates, t, a.lead, w, a.phase_gap)),
        (f"interleaved ({w} rounds of 1 s + 1 s)", lambda t: inter_pick(rates, t, a.lead, w)),
    ):
        picks = [rule(t) for t in range(len(rates) - span)]
        pairs = [(picks[t], picks[t + a.session_gap]) for t in range(len(picks) - a.session_gap)]
        same = sum(x == y for x, y in pairs) / len(pairs) if pairs else float("nan")
        n = len(picks)
        share = {k: sum(p == k for p in picks) / n for k in ("A", "B", "tie")}
        print(
            f"  {name:40s} two sessions pick the same {same:.2f}   "
            f"faster A {share['A']:.2f}  slower B {share['B']:.2f}  tie {share['tie']:.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
