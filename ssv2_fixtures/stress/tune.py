"""Autotune: the fastest stable DataLoader settings for one batch size within a time budget.

The search is a pure function over an injected ``measure(config, seconds) -> Probe``, an injected
``confirm(config, seconds) -> ConfirmResult | bool`` and an injected ``clock() -> seconds``, so it is
tested without processes (``tests/unit/stress/test_tune.py``); :mod:`.tune_run` implements the three
with isolated runs. Stages 1–4 are :mod:`.tune_search`; this module decides among the finalists (stage 5),
confirms (stage 6) and runs the whole tune.

Search (each batch size on its own — the batch size is the recipe's choice — with the budget split
evenly between batch sizes; :data:`.tune_model.CONFIRM_SHARE` of each share is kept for the confirmation):

1. **Workers first** (they dominate): short probes at the space's prefetch default (2), first sharing
   strategy, no persistent workers, no pinning, over a geometric subset of the worker counts (1, 2, 4,
   … and the largest), then bisecting the gaps next to the fastest until its neighbours are measured.
2. **Prune**: keep the fastest worker count and the cheapest one that ties with it (at most 2). Ties
   are the suite's one rule, :func:`ssv2_fixtures.run.stats.ties`: the intervals overlap, or the slower
   rate is within ``TIE_MARGIN`` of the faster's lower bound.
3. **The other knobs around them**, one at a time (prefetch, sharing strategy, persistent workers,
   pin memory where CUDA is present): each value is probed, and the dimension keeps the fastest — or,
   on a tie, the cheapest — before the next dimension is tried; the values it kept
   out as ties are named as ties of the pick when the kept one's line leads to it.
4. **Successive halving** of up to 4 finalists (the leader, then what ties with it, cheapest first,
   then the fastest of the rest): each round measures every finalist twice as
   long as the last, keeps the better half plus any that still tie with the leader, and stops as soon
   as the leader's interval is clear of every other finalist's (or after 3 rounds, or out of budget).
5. **Pick**: the leader, unless cheaper finalists tie with it: then the cheapest of them
   (fewer workers, then less prefetch, then less predicted shared memory), and the others are named
   as ties. A tie is first re-measured in **interleaved rounds** (issue #24): the leader and the
   cheapest of its ties (at most :data:`INTERLEAVED_MAX`) in alternating short windows, A B C, C B A, …
   (:func:`ssv2_fixtures.run.drift.decide`), so a slower minute of the machine moves all of them alike
   and cancels in their per-round ratios; a config it finds faster than every other is the pick, else
   the cheapest of those it could not tell apart (the others it measured slower are out).
   :data:`INTERLEAVED_SHARE` of the search time is kept for it from the halving (what it leaves goes
   to the confirmation); it is skipped, saying why, when two rounds do not fit. In **target mode** the pick is
   the cheapest config whose interval's lower bound reaches the target; when none does the result names
   the best rate found and what limited it.
6. **Confirmation**: the pick gets one sustained run (leak and degradation verdicts) in the time left
   in the budget (the share kept for it, less what the search overran); if it fails, the next candidate
   is confirmed instead, while time is left — candidates of another workers × prefetch shape first
   (what fails a sustained run rides on memory in flight). When the time left cannot hold the
   shortest sustained run, nothing more is started and the result says the budget ran out.

The whole tune, confirmation included, ends within :func:`bound_s` (1.25 × budget + 30 s): every
probe and confirmation is planned to end inside the budget, and the slack holds estimates that come
out low (and the forced first probe on a machine whose start-up alone outlasts a tiny budget).

Before each probe the search estimates its cost (its measuring time plus the mean start-up overhead
seen so far) and starts it only if it ends before the stage's deadline. Configs predicted not to fit
(``predict_fits``) are not run — they are recorded with kind ``predicted_unfit`` — unless nothing in
the space fits; failed configs are rejected and recorded with their failure kind.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..data.loader import LoaderConfig
from ..run.drift import Plan, decide, narrowed
from ..run.schema import InterleavedDecision
from .tune_model import (
    BOUND_FACTOR,
    BOUND_SLACK_S,
    CONFIRM_SHARE,
    PREDICTED_UNFIT,
    RAN_OUT,
    Clock,
    Confirm,
    ConfirmResult,
    Estimate,
    Measure,
    Probe,
    Space,
    Trial,
    TuneResult,
    default_shm,
    tuned_label,
)
from .tune_search import Search, explore, finish, short_probe_s

INTERLEAVED_SHARE = 0.15
"""Share of the search time kept for the interleaved rounds of the final tie."""
INTERLEAVED_MAX = 3
INTERLEAVED_ROUNDS = 4
INTERLEAVED_ROUND_S = 2.0
"""Seconds of measuring per window: short, so the windows of one round run seconds apart and the machine's
drift (autocorrelated over ~6–30 s here, benchmarks/host_drift.py) moves them alike."""

__all__ = [
    "INTERLEAVED_SHARE",
    "INTERLEAVED_MAX",
    "INTERLEAVED_ROUNDS",
    "tune",
    "tune_batch_sizes",
    "bound_s",
    "limits",
]


def _names(es: Sequence[Estimate]) -> list[str]:
    """Unique names for configs: tune's label, ``-pin`` for pinned memory, a number if still alike."""
    out: list[str] = []
    for e in es:
        n = tuned_label(e.config) + ("-pin" if e.config.pin_memory else "")
        out.append(n if n not in out else f"{n}#{len(out)}")
    return out


def _interleave(
    s: Search, finals: list[Estimate]
) -> tuple[Estimate | None, list[Estimate], set[LoaderConfig], InterleavedDecision | None]:
    """The pick's tie among the finalists re-measured in interleaved rounds (module docstring, stage 5) within
    the time left before the search's deadline. Returns the pick it decides (the config it named faster, else
    the cheapest of those it could not tell apart; None when it measured nothing), those it could not tell
    from the pick, those it measured slower, and its record (None without a tie)."""
    if len(finals) < 2:
        return None, [], set(), None
    lead = max(finals, key=lambda e: e.rate)
    tied = sorted((e for e in finals if e is not lead and e.ties(lead)), key=lambda e: s.key(e.config))
    if not tied:
        return None, [], set(), None
    group = [lead, *tied][:INTERLEAVED_MAX]
    names = _names(group)
    by = dict(zip(names, group))

    def window(name: str, seconds: float) -> float | None:
        e = by[name]
        t0 = s.clock()
        p = s.measure(e.config, seconds)
        s.overheads.append(max(0.0, (p.seconds if p.seconds > 0 else s.clock() - t0) - seconds))
        s.add(Trial(e.config, "interleaved", p))
        return p.videos_per_s if p.passed else None

    round_s = INTERLEAVED_ROUND_S
    plan = Plan(round_s, INTERLEAVED_ROUNDS, max(0.0, s.deadline - s.clock()), s.cost(round_s))
    rec = decide(names, window, plan, s.clock)
    if not rec.get("rounds"):
        return None, [], set(), rec
    left = sorted((by[n] for n in narrowed(names, rec)), key=lambda e: s.key(e.config))
    return left[0], left[1:], {e.config for e in group} - {e.config for e in left}, rec


def _after_interleaving(
    s: Search,
    pick: Estimate,
    kept: list[Estimate],
    slower: set[LoaderConfig],
    chain: list[Estimate],
    decision: InterleavedDecision,
) -> list[Estimate]:
    """The pick's ties once the interleaved rounds decided it: none when they named it faster; else those they
    could not tell from it, and the tie rule's other ties of it (``chain``) that they did not measure slower."""
    if decision.get("faster"):
        return []
    out = {e.config: e for e in kept}
    for e in chain:
        if e.config not in slower:
            out.setdefault(e.config, e)
    out.pop(pick.config, None)
    return sorted(out.values(), key=lambda e: s.key(e.config))


def bound_s(budget_s: float) -> float:
    """What a whole tune of ``budget_s`` (confirmation included) ends within: 1.25 × budget + 30 s.

    The search plans every probe and the confirmation to end inside the budget; the slack holds what a
    plan cannot see: a start-up or a sustained rate that comes out worse than its estimate, and the
    forced first probe of a batch size on a machine whose start-up alone is longer than the budget."""
    return BOUND_FACTOR * budget_s + BOUND_SLACK_S


def tune(
    space: Space,
    measure: Measure,
    *,
    budget_s: float,
    clock: Clock,
    confirm: Confirm | None = None,
    predict_fits: Callable[[LoaderConfig], bool] | None = None,
    target: float | None = None,
    shm: Callable[[LoaderConfig], float] = default_shm,
    overhead_s: float = 8.0,
    on_probe: Callable[[Trial], None] | None = None,
) -> TuneResult:
    """Tune ``space`` (one batch size) within ``budget_s`` seconds of ``clock``; see the module docstring.
    The stages share one :class:`Search` (its deadline, its ``tried`` list and its estimates)."""
    if not budget_s > 0:
        raise ValueError(f"tune budget must be > 0 seconds, got {budget_s} (--tune-budget)")
    if target is not None and not target > 0:
        raise ValueError(f"target must be > 0 videos/s, got {target} (--target-videos-per-s)")
    t_start = clock()
    configs = list(space.all_configs())
    fits = predict_fits or (lambda c: True)
    nothing_fits = not any(fits(c) for c in configs)
    if nothing_fits:  # run them anyway: a failure then says why, a prediction alone would not
        fits = lambda c: True  # noqa: E731
    search_s = budget_s - (CONFIRM_SHARE * budget_s if confirm is not None else 0.0)
    s = Search(
        space,
        measure,
        clock,
        t_start + search_s,
        fits,
        shm,
        overhead_s,
        short_probe_s(space, search_s, overhead_s),
        on_probe,
    )
    explore(s)
    if target is None:  # the halving leaves the share kept for the interleaved rounds
        s.deadline = t_start + search_s * (1 - INTERLEAVED_SHARE)
    finals, pool = finish(s, target)
    chosen: Estimate | None = None
    chosen_ties: list[Estimate] = []
    slower: set[LoaderConfig] = set()
    decision: InterleavedDecision | None = None
    if target is None:
        s.deadline = t_start + search_s  # the share kept for them
        chosen, chosen_ties, slower, decision = _interleave(s, finals)
    order = _candidates(s, pool, finals, target)
    if chosen is not None:  # the interleaved rounds decided the pick; the others stay next in line
        order = [chosen, *(e for e in order if e.config != chosen.config)]
    best = order[0] if order else None
    ties = s.ties_of(best.config) if best is not None and target is None else []
    if chosen is not None and decision is not None:
        ties = _after_interleaving(s, chosen, chosen_ties, slower, ties, decision)
    confirmed = False
    confirmations: list[tuple[LoaderConfig, ConfirmResult]] = []
    if confirm is not None:
        picked = _confirm(s, confirm, order, t_start + budget_s, confirmations)
        if picked is not None:
            if best is not None and picked.config != best.config:
                ties = []  # the tie group was the failed pick's
            best, confirmed = picked, True
    met = None if target is None else bool(best is not None and best.lo >= target)
    if target is not None and not met:
        best = max(pool, key=lambda e: e.rate) if pool else None
    res = TuneResult(
        space.batch_size,
        best,
        confirmed,
        ties,
        s.tried,
        budget_s,
        clock() - t_start,
        target,
        met,
        confirmations=confirmations,
        interleaved=decision,
    )
    res.limited_by = limits(res, space, ran_out=s.ran_out, nothing_fits=nothing_fits)
    return res


def _confirm(
    s: Search,
    confirm: Confirm,
    order: list[Estimate],
    end: float,
    confirmations: list[tuple[LoaderConfig, ConfirmResult]],
) -> Estimate | None:
    """Stage 6: one sustained run per candidate, in ``order``, until one passes (returned) or the time
    left before ``end`` does not hold another (``ran_out``). Each run is given the measuring time left
    after the mean start-up seen so far, so it is planned to end by ``end``; a confirm that cannot fit
    its shortest sustained run in it says so with kind :data:`RAN_OUT` and runs nothing."""
    queue = list(order)
    failed_shapes: set[tuple[int, int]] = set()
    while queue:
        cand = queue.pop(0)
        seconds = end - s.clock() - s.cost(0.0)
        if seconds <= 0:
            s.ran_out = True
            return None
        t0 = s.clock()
        raw = confirm(cand.config, seconds)
        res = raw if isinstance(raw, ConfirmResult) else ConfirmResult(ok=bool(raw), seconds=s.clock() - t0)
        if res.kind == RAN_OUT:
            s.ran_out = True
            return None
        confirmations.append((cand.config, res))
        probe = (
            Probe(videos_per_s=res.videos_per_s, batches=res.batches, seconds=res.seconds)
            if res.ok and res.videos_per_s is not None
            else Probe(
                kind=("confirmed" if res.ok else res.kind or "confirm_failed"), batches=res.batches, seconds=res.seconds
            )
        )
        s.add(Trial(cand.config, "confirm", probe))
        if res.ok:
            return cand
        # What fails a sustained run (memory in flight, worker churn) rides on workers × prefetch:
        # after a failure, candidates of another shape are confirmed first.
        failed_shapes.add(_shape(cand.config))
        queue.sort(key=lambda e: (_shape(e.config) in failed_shapes, order.index(e)))
    return None


def _shape(c: LoaderConfig) -> tuple[int, int]:
    return c.num_workers, c.effective_prefetch


def _candidates(s: Search, pool: list[Estimate], finals: list[Estimate], target: float | None) -> list[Estimate]:
    """Confirmation order: the pick first, then the next candidates."""
    if not pool:
        return []
    if target is not None:
        return sorted([e for e in pool if e.lo >= target], key=lambda e: s.key(e.config))
    head = s.best_of(finals or pool)
    rest = sorted((e for e in pool if e.config != head.config), key=lambda e: (-e.rate, s.key(e.config)))
    return [head, *rest]


def limits(r: TuneResult, space: Space, *, ran_out: bool = False, nothing_fits: bool = False) -> str:
    """What kept the best rate where it is, in words (from what was tried)."""
    why: list[str] = []
    passed = [t for t in r.tried if t.probe.passed and t.stage != "confirm"]
    failed = [t for t in r.tried if t.probe.kind and t.stage != "confirm"]
    if r.best is not None:
        w = r.best.config.num_workers
        more = [t for t in passed if t.config.num_workers > w]
        if w == space.workers[-1]:
            why.append(f"the most workers in the space ({w}; --workers / --max-workers)")
        elif more:
            why.append(
                f"rate stopped growing past {w} workers ({max(t.config.num_workers for t in more)} "
                "measured no faster: decode-bound on this machine's cores)"
            )
    by_kind: dict[str, list[str]] = {}
    for t in failed:
        by_kind.setdefault(t.probe.kind or "?", []).append(t.config.label)
    for kind, labels in sorted(by_kind.items()):
        what = "predicted not to fit" if kind == PREDICTED_UNFIT else f"failed with {kind}"
        why.append(f"{len(labels)} config(s) {what} ({', '.join(sorted(set(labels))[:4])})")
    if nothing_fits:
        why.append("no config was predicted to fit; all were run anyway")
    if ran_out:
        why.append(f"the budget ({r.budget_s:.0f} s) ran out before the search finished")
    return "; ".join(why)


def tune_batch_sizes(
    spaces: Sequence[Space],
    measure: Measure,
    *,
    budget_s: float,
    clock: Clock,
    between: Callable[[], object] | None = None,
    **kw: Any,
) -> list[TuneResult]:
    """Each space (one per batch size) tuned on its own, with the budget split evenly (what one batch
    size leaves unspent goes to the next; one that overran leaves the next batch sizes none: they are
    reported as not tuned, with why, rather than given a budget they do not have). ``between``: called
    before every batch size after the first (the session's drift control between groups), on the budget."""
    if not budget_s > 0:
        raise ValueError(f"tune budget must be > 0 seconds, got {budget_s} (--tune-budget)")
    out: list[TuneResult] = []
    end = clock() + budget_s
    for i, sp in enumerate(spaces):
        if i and between is not None and end - clock() > 0:
            between()
        share = budget_s / len(spaces) if i == 0 else (end - clock()) / (len(spaces) - i)
        if share > 0:
            out.append(tune(sp, measure, budget_s=share, clock=clock, **kw))
        else:
            out.append(
                TuneResult(
                    sp.batch_size,
                    None,
                    False,
                    [],
                    [],
                    0.0,
                    0.0,
                    kw.get("target"),
                    None if kw.get("target") is None else False,
                    limited_by=f"the budget ({budget_s:.0f} s) ran out before this batch size",
                )
            )
    return out
