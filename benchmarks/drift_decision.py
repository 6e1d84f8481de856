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
and how often a session names the truly faster config, names the slower one, or ties.

Then the optional normalisation (issue #24): a config's rate (one quick window) divided by a drift control (a 2 s
window of the same trace ``--control-gap`` s after it), compared between sessions ``--session-gap`` s apart: the
share of session pairs within 10 % and the median change, raw videos/s vs normalised. The trace is one decode, so
config and control respond to the machine identically here: this is the most normalisation can gain. Not a test:
a machine property, printed in one run.
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


def inter_pick(rates: Sequence[float], t: int, lead: float, rounds_n: int, round_s: int = 1, startup: int = 0) -> str:
    """``rounds_n`` rounds of ``round_s`` s windows, each after ``startup`` s of a child's start-up (no measuring)."""
    rounds, i = [], t
    for order in schedule(["A", "B"], rounds_n):
        r: dict[str, float] = {}
        for name in order:
            i += startup
            r[name] = statistics.fmean(rates[i : i + round_s]) / (1 + lead if name == "B" else 1.0)
            i += round_s
        rounds.append(r)
    d = interleaved(rounds)
    return d["faster"] or "tie"


def normalised_spread(
    rates: Sequence[float], window: int, control_gap: int, session_gap: int, control_s: int = 2
) -> tuple[tuple[float, float], tuple[float, float]]:
    """((share within 10 %, median change) raw, (the same) normalised) over session pairs ``session_gap`` apart."""

    def at(t: int) -> tuple[float, float]:
        raw = statistics.fmean(rates[t : t + window])
        c0 = t + window + control_gap
        return raw, raw / statistics.fmean(rates[c0 : c0 + control_s])

    span = session_gap + window + control_gap + control_s
    pairs = [(at(t), at(t + session_gap)) for t in range(len(rates) - span)]

    def stats(k: int) -> tuple[float, float]:
        ch = [max(a[k], b[k]) / min(a[k], b[k]) - 1 for a, b in pairs]
        return sum(c <= 0.10 for c in ch) / len(ch), statistics.median(ch)

    return stats(0), stats(1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", type=Path, help="a saved benchmarks/host_drift.py output")
    ap.add_argument("--seconds", type=float, default=300.0, help="trace length when tracing now (default 300)")
    ap.add_argument("--lead", type=float, default=0.05, help="A's true lead over B (default 0.05)")
    ap.add_argument("--session-gap", type=int, default=90)
    ap.add_argument("--phase-gap", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the product-like interleaved rule (default 3)")
    ap.add_argument("--startup", type=int, default=3, help="s of a child's start-up before each window (default 3)")
    ap.add_argument("--control-gap", type=int, nargs="+", default=[0, 15, 30], help="s from a window to its control")
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
    prod = (a.rounds, 2, a.startup)  # the quick session's comparison: 2 s windows, each after a child's start-up
    span = a.session_gap + max(a.phase_gap + w, 2 * w, 2 * a.rounds * (2 + a.startup))
    if len(rates) < span + 1:
        print(f"trace too short: {len(rates)} s < {span + 1} s", file=sys.stderr)
        return 2
    print(f"{len(rates)} s of trace; A truly {a.lead:.0%} faster than B; sessions {a.session_gap} s apart")
    for name, rule in (
        (f"sequential ({w} s each, {a.phase_gap} s apart)", lambda t: seq_pick(rates, t, a.lead, w, a.phase_gap)),
        (f"interleaved ({w} rounds of 1 s + 1 s)", lambda t: inter_pick(rates, t, a.lead, max(2, w))),
        (
            f"interleaved ({a.rounds} rounds of 2 s windows, {a.startup} s start-up each)",
            lambda t: inter_pick(rates, t, a.lead, *prod),
        ),
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
    print(f"normalised by a 2 s control: {w} s windows, sessions {a.session_gap} s apart")
    for gap in a.control_gap:
        if len(rates) <= a.session_gap + w + gap + 2:
            continue
        (r_in, r_med), (n_in, n_med) = normalised_spread(rates, w, gap, a.session_gap)
        print(
            f"  control {gap:3d} s after: within 10 % raw {r_in:.2f} (median change {r_med:.1%})   "
            f"normalised {n_in:.2f} (median change {n_med:.1%})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
