"""Drift control and interleaved decisions: telling a slower config from a slower minute of the machine.

A machine's own speed drifts (a VM's neighbours, frequency, caches): one fixed decode traced for 10 minutes here
varied 33–46 videos/s (benchmarks/host_drift.py). Configs measured one after another therefore differ by the
machine's drift as well as by their own merit. Two tools, both pure (no processes, no clocks of their own):

**Drift control.** The same short reference measurement (the session pipeline's single-process item rate) taken at
the start of a session, between groups of configs and at the end. :func:`drift_record` turns the series into
results.json's ``"drift"`` record; ``max_change`` is the largest relative change between any two controls,
**relative to the smaller**: ``max / min − 1``. Relative to the smaller (not to the first control) so the number
does not depend on which control came first and a fall and a rise of the same size read alike; it is also the
ratio form in which two configs' rates are compared (:func:`relative_difference`). :func:`cannot_tell` says when the
difference between two configs is smaller than the drift measured around them (the controls inside their time
span plus the nearest one on either side): then the sequential numbers cannot order them.

**Interleaved decision.** Close candidates re-measured in alternating short windows (A B C A B C …): within one
round the candidates ran seconds apart, so a drift that is slow against a round scales all of them alike and their
*ratio* cancels it (every other round runs in reverse order, :func:`schedule`, so a steady trend cancels too).
:func:`interleaved` takes per-round rates, computes each candidate's per-round ratio to the round's reference, and the
mean ratio with Student's t 95 % interval over the rounds (the project's one t rule,
:func:`.stats.t975`). The faster candidate is the one whose ratio to every other candidate has its interval
above 1 and a mean more than the tie margin (:data:`.stats.TIE_MARGIN`) above it; when some other's interval reaches 1
or its mean is within the margin, they are a tie — the ladder's tie rule in ratio form (overlapping spreads, or a
lead smaller than the margin), so a lead of a few per cent, real or not, does not flip the recommendation from one
session to the next.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .schema import DriftControl, DriftRecord, InterleavedDecision, RatioRecord
from .stats import TIE_MARGIN, t975


@dataclass(frozen=True)
class Control:
    t: float  # unix time at the control's middle
    videos_per_s: float


def max_change(rates: Sequence[float]) -> float:
    """The largest relative change between any two of ``rates``: ``max / min − 1`` (relative to the smaller;
    module docstring). 0 for fewer than two rates; ``inf`` when one of them is 0."""
    if len(rates) < 2:
        return 0.0
    lo, hi = min(rates), max(rates)
    if lo <= 0:
        return math.inf if hi > 0 else 0.0
    return hi / lo - 1.0


def relative_difference(a: float, b: float) -> float:
    """The change between two rates in the same form as :func:`max_change`: ``larger / smaller − 1``."""
    return max_change([a, b])


def drift_record(controls: Sequence[Control]) -> DriftRecord:
    """results.json's ``"drift"``: the controls in time order, ``max_change`` and when the slowest and the
    fastest control were taken (``slowest_t``, ``fastest_t``; absent without controls)."""
    ordered = sorted(controls, key=lambda c: c.t)
    rec: DriftRecord = {
        "controls": [DriftControl(t=c.t, videos_per_s=c.videos_per_s) for c in ordered],
        "max_change": max_change([c.videos_per_s for c in ordered]),
    }
    if ordered:
        rec["slowest_t"] = min(ordered, key=lambda c: c.videos_per_s).t
        rec["fastest_t"] = max(ordered, key=lambda c: c.videos_per_s).t
    return rec


def controls_of(record: Mapping[str, object] | None) -> list[Control]:
    """The controls of a stored ``"drift"`` record (an old file without one: none)."""
    out: list[Control] = []
    for c in (record or {}).get("controls") or []:  # type: ignore[attr-defined]
        try:
            out.append(Control(float(c["t"]), float(c["videos_per_s"])))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def around(controls: Sequence[Control], t0: float, t1: float) -> list[Control]:
    """The controls that bracket the span ``[t0, t1]``: those inside it, the last one before and the first after."""
    lo, hi = min(t0, t1), max(t0, t1)
    ordered = sorted(controls, key=lambda c: c.t)
    inside = [c for c in ordered if lo <= c.t <= hi]
    before = [c for c in ordered if c.t < lo][-1:]
    after = [c for c in ordered if c.t > hi][:1]
    return [*before, *inside, *after]


def drift_around(controls: Sequence[Control], t0: float, t1: float) -> float | None:
    """The machine's change (:func:`max_change`) over the controls around ``[t0, t1]``; None with fewer than two."""
    near = around(controls, t0, t1)
    return max_change([c.videos_per_s for c in near]) if len(near) >= 2 else None


def percent(x: float) -> str:
    """A share as the report writes it: ``14 %``."""
    return f"{x * 100:.0f} %" if math.isfinite(x) else "∞ %"


def cannot_tell(
    a_rate: float, a_span: tuple[float, float], b_rate: float, b_span: tuple[float, float], controls: Sequence[Control]
) -> str | None:
    """ "cannot tell: the machine changed by 14 % during these runs" when the difference between two configs'
    rates (:func:`relative_difference`) is smaller than the drift measured around the time both ran
    (``*_span``: each run's (start, end) unix times); None when the difference is larger, or no two controls
    bracket the runs (then the drift is not known and says nothing)."""
    t0 = min(a_span[0], b_span[0])
    t1 = max(a_span[1], b_span[1])
    d = drift_around(controls, t0, t1)
    if d is None or relative_difference(a_rate, b_rate) >= d:
        return None
    return f"cannot tell: the machine changed by {percent(d)} during these runs"


def schedule(names: Sequence[str], rounds: int) -> list[list[str]]:
    """The order of the windows, round by round: forward, then reversed (A B C, C B A, A B C, …). With one fixed
    order a steady trend of the machine would favour whoever runs last in every round, the same way each time
    (a bias the rounds' spread cannot show); reversing every other round turns it into a spread that cancels in
    the mean over an even number of rounds and widens the interval otherwise."""
    fwd = list(names)
    return [fwd if i % 2 == 0 else fwd[::-1] for i in range(rounds)]


def ratio_interval(ratios: Sequence[float]) -> tuple[float, float, float] | None:
    """(mean, lo, hi): the mean of per-round ratios with Student's t 95 % half-width over the rounds
    (``t975(k − 1) × sd / √k``); None with fewer than two rounds."""
    k = len(ratios)
    if k < 2:
        return None
    mean = math.fsum(ratios) / k
    sd = math.sqrt(math.fsum((r - mean) ** 2 for r in ratios) / (k - 1))
    h = t975(k - 1) * sd / math.sqrt(k)
    return mean, mean - h, mean + h


def _ratios(rounds: Sequence[Mapping[str, float]], name: str, ref: str) -> list[float]:
    return [r[name] / r[ref] for r in rounds if r.get(ref, 0) > 0 and name in r]


def interleaved(
    rounds: Sequence[Mapping[str, float]], reference: str | None = None, margin: float = TIE_MARGIN
) -> InterleavedDecision:
    """Decide between candidates measured in alternating windows: ``rounds[i][name]`` is ``name``'s rate in
    round ``i`` (every candidate once per round, in the order of :func:`schedule`). Ratios are taken to
    ``reference`` (default: the first candidate of the first round) for the record; the decision takes them to the
    candidate with the highest mean ratio (the leader): the leader is ``faster`` when every other candidate's ratio to
    it has its interval below 1 and its mean below ``1 − margin``; those whose interval reaches 1 or whose mean is
    within the margin tie with it (``faster`` None). ``margin=0`` is the bare statistical test. Fewer than two rounds
    decide nothing."""
    names = list(rounds[0]) if rounds else []
    ref = reference if reference is not None else (names[0] if names else "")
    ratios: dict[str, RatioRecord] = {}
    for n in names:
        rs = _ratios(rounds, n, ref)
        iv = ratio_interval(rs)
        ratios[n] = {"rounds": rs, "mean": iv[0], "interval": [iv[1], iv[2]]} if iv else {"rounds": rs}
    rec: InterleavedDecision = {
        "candidates": names,
        "rounds": [dict(r) for r in rounds],
        "reference": ref,
        "ratios": ratios,
        "leader": None,
        "faster": None,
        "tie": list(names),
    }
    if len(rounds) < 2 or not names:
        rec["text"] = f"cannot tell: {len(rounds)} round{'s' if len(rounds) != 1 else ''}, at least 2 are needed"
        return rec
    leader = max(names, key=lambda n: ratios[n].get("mean", -math.inf))
    tie = [leader]
    for n in names:
        if n == leader:
            continue
        iv = ratio_interval(_ratios(rounds, n, leader))
        if iv is None or iv[2] >= 1.0 or iv[0] >= 1.0 - margin:  # not told slower, or by less than the margin
            tie.append(n)
    rec["leader"], rec["tie"] = leader, tie
    k = len(rounds)
    if len(tie) == 1:
        rec["faster"] = leader
        rec["text"] = (
            f"{leader} is faster: every other candidate's ratio to it stays below 1, and its mean more than "
            f"{margin:.0%} below, over {k} interleaved rounds"
        )
    else:
        rec["text"] = (
            f"tie over {k} interleaved rounds: "
            + ", ".join(tie)
            + f" (each within {margin:.0%} of the leader, or its ratio's interval reaches 1)"
        )
    return rec


def sequential(rates: Mapping[str, float]) -> str:
    """The sequential rule the interleaved one replaces: the highest rate, each measured once in turn."""
    return max(rates, key=lambda n: rates[n])


Window = Callable[[str, float], "float | None"]
"""One measured window: ``window(name, seconds)`` runs candidate ``name`` for ``seconds`` of measuring time and
returns its videos/s (None when the run failed)."""


@dataclass(frozen=True)
class Plan:
    """How long an interleaved comparison may take: windows of ``round_s`` seconds, at most ``max_rounds``
    rounds, all within ``budget_s`` seconds of the clock. ``window_cost_s``: what one window is expected to
    cost before any ran (its measuring time plus a child's start-up); after the first round the rounds' own
    mean cost replaces it."""

    round_s: float = 2.0
    max_rounds: int = 4
    budget_s: float = 20.0
    window_cost_s: float = 5.0
    min_rounds: int = 2


def measure_rounds(
    names: Sequence[str], window: Window, plan: Plan, clock: Callable[[], float]
) -> tuple[list[dict[str, float]], str]:
    """Run the windows of :func:`schedule` until ``plan.max_rounds`` rounds are complete or the next round would
    end past ``plan.budget_s``; returns the complete rounds and why they stopped. Nothing runs when not even
    ``plan.min_rounds`` rounds fit (a decision needs two: one round has no spread). A failed window ends the
    comparison (its round is dropped: a round's ratios need every candidate)."""
    t0 = clock()
    costs: list[float] = []
    rounds: list[dict[str, float]] = []

    def per_round() -> float:
        return sum(costs) / len(costs) if costs else plan.window_cost_s * len(names)

    if plan.min_rounds * per_round() > plan.budget_s:
        return [], (
            f"skipped: {plan.min_rounds} rounds of {len(names)} windows would take about "
            f"{plan.min_rounds * per_round():.0f} s, more than the {plan.budget_s:.0f} s left for them"
        )
    for order in schedule(names, plan.max_rounds):
        start = clock()
        if start - t0 + per_round() > plan.budget_s:
            return rounds, f"stopped after {len(rounds)} rounds: the next would end past {plan.budget_s:.0f} s"
        r: dict[str, float] = {}
        for name in order:
            v = window(name, plan.round_s)
            if v is None or not v > 0:
                return rounds, f"stopped after {len(rounds)} rounds: {name}'s window failed"
            r[name] = v
        rounds.append({n: r[n] for n in names})  # the candidates' order, whatever order they ran in
        costs.append(clock() - start)
    return rounds, f"{len(rounds)} rounds"


def decide(names: Sequence[str], window: Window, plan: Plan, clock: Callable[[], float]) -> InterleavedDecision:
    """:func:`measure_rounds` then :func:`interleaved`, with the plan and the time taken in the record
    (``round_s``, ``seconds``, ``stopped``)."""
    t0 = clock()
    rounds, why = measure_rounds(names, window, plan, clock)
    rec = interleaved(rounds) if rounds else not_measured(names, why)
    rec["candidates"] = list(names)
    rec["round_s"] = plan.round_s
    rec["seconds"] = clock() - t0
    rec["stopped"] = why
    return rec


def not_measured(names: Sequence[str], why: str) -> InterleavedDecision:
    """The record of a comparison that measured nothing (``text``: "not re-measured (why)")."""
    return {
        "candidates": list(names),
        "rounds": [],
        "reference": names[0] if names else "",
        "ratios": {},
        "leader": None,
        "faster": None,
        "tie": list(names),
        "text": f"not re-measured ({why})",
    }


def narrowed(tie: Sequence[str], decision: Mapping[str, object] | None) -> list[str]:
    """The tie after an interleaved decision: the one it names as faster; else the tie less the candidates it
    measured slower (members it did not re-measure stay) plus those its rounds could not tell from the leader (a
    config the sequential numbers had put just outside the tie, re-measured because the machine's drift could
    explain the gap). Without a decision (none, or one that measured nothing) the tie as it was."""
    if not decision or not decision.get("rounds"):
        return list(tie)
    faster = decision.get("faster")
    if isinstance(faster, str):
        return [faster]
    measured = set(decision.get("candidates") or [])  # type: ignore[call-overload]
    kept = list(decision.get("tie") or [])  # type: ignore[call-overload]
    return [t for t in tie if t not in measured or t in kept] + [t for t in kept if t not in tie]
