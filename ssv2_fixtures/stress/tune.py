"""Autotune: the fastest stable DataLoader settings for one batch size within a time budget.

The search is a pure function over an injected ``measure(config, seconds) -> Probe``, an injected
``confirm(config, seconds) -> ConfirmResult | bool`` and an injected ``clock() -> seconds``, so it is
tested without processes (``tests/unit/stress/test_tune.py``); :mod:`.tune_run` implements the three
with isolated runs.

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

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..data.loader import LoaderConfig
from ..run.drift import Plan, decide, narrowed
from ..run.schema import InterleavedDecision
from .tune_model import (
    BOUND_FACTOR,
    BOUND_SLACK_S,
    CONFIRM_SHARE,
    MAX_FINALISTS,
    MAX_HALVING_ROUNDS,
    MAX_KEPT_WORKERS,
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
    cost_key,
    default_shm,
    tie_pick,
    tuned_label,
)

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


# --- the search -----------------------------------------------------------------------------------


class _OutOfTime(Exception):
    pass


@dataclass
class _Search:
    space: Space
    measure: Measure
    clock: Clock
    deadline: float
    fits: Callable[[LoaderConfig], bool]
    shm: Callable[[LoaderConfig], float]
    overhead_s: float
    short_s: float
    on_probe: Callable[[Trial], None] | None = None
    tried: list[Trial] = field(default_factory=list)
    est: dict[LoaderConfig, Estimate] = field(default_factory=dict)
    failed: dict[LoaderConfig, str] = field(default_factory=dict)
    overheads: list[float] = field(default_factory=list)
    # loser → winner of each config's latest tie decision (it tied and a cheaper one was kept)
    tie_of: dict[LoaderConfig, LoaderConfig] = field(default_factory=dict)
    ran_out: bool = False

    def cost(self, seconds: float) -> float:
        over = sum(self.overheads) / len(self.overheads) if self.overheads else self.overhead_s
        return seconds + over

    def key(self, c: LoaderConfig) -> tuple[Any, ...]:
        return cost_key(c, self.shm)

    def affordable(self, seconds: float) -> bool:
        return self.clock() + self.cost(seconds) <= self.deadline

    def probe(self, config: LoaderConfig, seconds: float, stage: str, *, force: bool = False) -> Estimate | None:
        """Measure ``config`` (unless known failed or predicted unfit); raise :class:`_OutOfTime` when the
        probe would end past the deadline (``force``: the first probe of a batch size always runs)."""
        if config in self.failed:
            return None
        if not self.fits(config):
            self.failed[config] = PREDICTED_UNFIT
            self._add(Trial(config, stage, Probe(kind=PREDICTED_UNFIT)))
            return None
        if not force and not self.affordable(seconds):
            self.ran_out = True
            raise _OutOfTime
        t0 = self.clock()
        p = self.measure(config, seconds)
        took = self.clock() - t0
        # the probe's own wall time when it says: one-off work inside measure (a decode-rate probe, the
        # synthetic set's first build) is spent from the budget but is no probe's start-up cost
        self.overheads.append(max(0.0, (p.seconds if p.seconds > 0 else took) - seconds))
        self._add(Trial(config, stage, p))
        if not p.passed:
            self.failed[config] = p.kind or "no_rate"
            self.est.pop(config, None)
            return None
        assert p.videos_per_s is not None
        lo, hi = p.interval if p.interval is not None else (p.videos_per_s, p.videos_per_s)
        e = Estimate(config, p.videos_per_s, lo, hi, seconds)
        self.est[config] = e
        return e

    def _add(self, t: Trial) -> None:
        self.tried.append(t)
        if self.on_probe:
            self.on_probe(t)

    def best_of(self, cands: Sequence[Estimate]) -> Estimate:
        """:func:`tie_pick`; every other member of the tie group is remembered as a tie of the pick
        (named in the record if the pick's line wins)."""
        pick, group = tie_pick(cands, self.key)
        for e in cands:  # the latest decision about a config is the one that counts
            if e in group and e.config != pick.config:
                self.tie_of[e.config] = pick.config
            else:
                self.tie_of.pop(e.config, None)
        return pick

    def ties_of(self, best: LoaderConfig) -> list[Estimate]:
        """The configs that lost to ``best`` by the tie rule, directly or through a chain of tie
        decisions (a knob stage's tie whose winner later tied and lost to the pick), cheapest first."""

        def reaches(c: LoaderConfig) -> bool:
            seen: set[LoaderConfig] = set()
            while c != best:
                if c in seen or c not in self.tie_of:
                    return False
                seen.add(c)
                c = self.tie_of[c]
            return True

        named = [c for c in self.tie_of if c != best and c in self.est and reaches(c)]
        return [self.est[c] for c in sorted(named, key=self.key)]

    def start(self, w: int) -> LoaderConfig:
        """Stage 1's config for ``w`` workers: the defaults, or the cheapest variant predicted to fit."""
        c = self.space.config(w)
        if self.fits(c):
            return c
        ok = [v for v in self.space.all_configs() if v.num_workers == w and self.fits(v)]
        return min(ok, key=self.key) if ok else c

    # stage 1
    def workers(self) -> list[Estimate]:
        ws = self.space.workers
        done: dict[int, Estimate | None] = {}
        first = True
        for w in _grid(ws):
            done[w] = self.probe(self.start(w), self.short_s, "workers", force=first)
            first = False
        while True:  # bisect the gaps next to the fastest worker count
            ok = {w: e for w, e in done.items() if e is not None}
            if not ok:
                break
            lead = max(ok.values(), key=lambda e: e.rate).config.num_workers
            tried = sorted(done)
            i = tried.index(lead)
            gaps = [(tried[j], tried[j + 1]) for j in (i - 1, i) if 0 <= j < len(tried) - 1]
            mids = [m for a, b in gaps for m in [_middle(ws, a, b)] if m is not None]
            if not mids:
                break
            for m in mids:
                done[m] = self.probe(self.start(m), self.short_s, "workers")
        return [e for e in done.values() if e is not None]

    # stage 3
    def knobs(self, start: Estimate) -> Estimate:
        cur = start
        sp = self.space
        dims: list[tuple[str, Sequence[Any]]] = [
            ("prefetch_factor", sp.prefetch),
            ("sharing_strategy", sp.strategies),
            ("persistent_workers", sp.persistent),
            ("pin_memory", sp.pin_memory),
        ]
        for name, values in dims:
            cands = [cur]
            for v in values:
                c = replace(cur.config, **{name: v})
                if c == cur.config:
                    continue
                e = self.est.get(c) or self.probe(c, self.short_s, "knobs")
                if e is not None:
                    cands.append(e)
            cur = self.best_of(cands)
        return cur

    # stage 4
    def halving(
        self,
        finalists: list[Estimate],
        keep: Callable[[list[Estimate]], list[Estimate]],
        done: Callable[[list[Estimate]], bool],
    ) -> list[Estimate]:
        seconds = self.short_s
        for _ in range(MAX_HALVING_ROUNDS):
            if len(finalists) < 2 or done(finalists):
                break
            seconds *= 2
            n = len(finalists)
            left = self.deadline - self.clock()
            if n * self.cost(seconds) > left:  # shorten the round to what is left, if still longer than a probe
                seconds = left / n - self.cost(0.0)
                if seconds < self.short_s:
                    self.ran_out = True
                    break
            fresh: list[Estimate] = []
            for e in finalists:
                try:
                    m = self.probe(e.config, seconds, "halving")
                except _OutOfTime:
                    fresh.append(e)
                    continue
                if m is not None:
                    fresh.append(m)
            finalists = keep(fresh) if fresh else []
        return finalists


def _names(es: Sequence[Estimate]) -> list[str]:
    """Unique names for configs: tune's label, ``-pin`` for pinned memory, a number if still alike."""
    out: list[str] = []
    for e in es:
        n = tuned_label(e.config) + ("-pin" if e.config.pin_memory else "")
        out.append(n if n not in out else f"{n}#{len(out)}")
    return out


def _interleave(
    s: _Search, finals: list[Estimate]
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
        s._add(Trial(e.config, "interleaved", p))
        return p.videos_per_s if p.passed else None

    round_s = INTERLEAVED_ROUND_S
    plan = Plan(round_s, INTERLEAVED_ROUNDS, max(0.0, s.deadline - s.clock()), s.cost(round_s))
    rec = decide(names, window, plan, s.clock)
    if not rec.get("rounds"):
        return None, [], set(), rec
    left = sorted((by[n] for n in narrowed(names, rec)), key=lambda e: s.key(e.config))
    return left[0], left[1:], {e.config for e in group} - {e.config for e in left}, rec


def _after_interleaving(
    s: _Search,
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


def _grid(ws: Sequence[int]) -> list[int]:
    """Stage 1's first worker counts: the powers of two in ``ws`` (sorted), and its first and last."""
    return sorted({w for w in ws if w & (w - 1) == 0} | {ws[0], ws[-1]})


def _finalists(s: _Search, pool: list[Estimate]) -> list[Estimate]:
    """The leader, then what ties with it (cheapest first: variants of equal rate must not crowd out a
    cheaper worker count), then the fastest of the rest."""
    if not pool:
        return []
    lead = max(pool, key=lambda e: e.rate)
    ties = sorted((e for e in pool if e is not lead and e.ties(lead)), key=lambda e: s.key(e.config))
    rest = sorted((e for e in pool if e is not lead and not e.ties(lead)), key=lambda e: -e.rate)
    return [lead, *ties, *rest][:MAX_FINALISTS]


def _middle(ws: Sequence[int], a: int, b: int) -> int | None:
    inside = [w for w in ws if a < w < b]
    return inside[len(inside) // 2] if inside else None


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
    The stages share one :class:`_Search` (its deadline, its ``tried`` list and its estimates)."""
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
    s = _Search(
        space,
        measure,
        clock,
        t_start + search_s,
        fits,
        shm,
        overhead_s,
        _short_s(space, search_s, overhead_s),
        on_probe,
    )
    _explore(s)
    if target is None:  # the halving leaves the share kept for the interleaved rounds
        s.deadline = t_start + search_s * (1 - INTERLEAVED_SHARE)
    finals, pool = _finish(s, target)
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


def _short_s(space: Space, search_s: float, overhead_s: float) -> float:
    """Stage 1 and 3's probe length: the probes planned for them take about half of the search time."""
    planned = (
        len(_grid(space.workers))
        + 2
        + MAX_KEPT_WORKERS
        * (len(space.prefetch) + len(space.strategies) + len(space.persistent) + len(space.pin_memory) - 4)
    )
    return min(20.0, max(2.0, 0.5 * search_s / planned - overhead_s))


def _explore(s: _Search) -> None:
    """Stages 1–3: the worker counts, the prune to at most two, the other knobs around each."""
    try:
        ws = s.workers()
        if ws:
            lead = max(ws, key=lambda e: e.rate)
            kept = sorted([lead] + [e for e in ws if e is not lead and e.ties(lead)], key=lambda e: s.key(e.config))[
                :MAX_KEPT_WORKERS
            ]
            if lead not in kept:
                kept = [kept[0], lead]
            for e in kept:
                s.knobs(e)
    except _OutOfTime:
        pass


def _finish(s: _Search, target: float | None) -> tuple[list[Estimate], list[Estimate]]:
    """Stage 4 (successive halving) towards the fastest, or in target mode towards the cheapest that
    reaches the target; returns the finalists' and every config's latest estimates."""
    pool = list(s.est.values())
    if target is None:

        def keep(fs: list[Estimate]) -> list[Estimate]:
            lead = max(fs, key=lambda e: e.rate)
            top = sorted(fs, key=lambda e: -e.rate)[: math.ceil(len(fs) / 2)]
            return top + [e for e in fs if e not in top and e.ties(lead)]

        def clear(fs: list[Estimate]) -> bool:  # longer probes separated the intervals: the tie rule decides
            lead = max(fs, key=lambda e: e.rate)
            return all(e.hi < lead.lo for e in fs if e is not lead)

        finals = s.halving(_finalists(s, pool), keep, clear)
    else:
        tgt = target
        maybe = sorted([e for e in pool if e.hi >= tgt], key=lambda e: s.key(e.config))[:MAX_FINALISTS]

        def keep_t(fs: list[Estimate]) -> list[Estimate]:
            return [e for e in fs if e.hi >= tgt]

        def settled(fs: list[Estimate]) -> bool:  # the cheapest that may reach it surely does
            return bool(fs) and min(fs, key=lambda e: s.key(e.config)).lo >= tgt

        finals = s.halving(maybe, keep_t, settled)
    # a finalist's latest estimate is the one that counts; eliminated configs keep theirs
    return [s.est[e.config] for e in finals if e.config in s.est], list(s.est.values())


def _confirm(
    s: _Search,
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
        s._add(Trial(cand.config, "confirm", probe))
        if res.ok:
            return cand
        # What fails a sustained run (memory in flight, worker churn) rides on workers × prefetch:
        # after a failure, candidates of another shape are confirmed first.
        failed_shapes.add(_shape(cand.config))
        queue.sort(key=lambda e: (_shape(e.config) in failed_shapes, order.index(e)))
    return None


def _shape(c: LoaderConfig) -> tuple[int, int]:
    return c.num_workers, c.effective_prefetch


def _candidates(s: _Search, pool: list[Estimate], finals: list[Estimate], target: float | None) -> list[Estimate]:
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
    spaces: Sequence[Space], measure: Measure, *, budget_s: float, clock: Clock, **kw: Any
) -> list[TuneResult]:
    """Each space (one per batch size) tuned on its own, with the budget split evenly (what one batch
    size leaves unspent goes to the next; one that overran leaves the next batch sizes none: they are
    reported as not tuned, with why, rather than given a budget they do not have)."""
    if not budget_s > 0:
        raise ValueError(f"tune budget must be > 0 seconds, got {budget_s} (--tune-budget)")
    out: list[TuneResult] = []
    end = clock() + budget_s
    for i, sp in enumerate(spaces):
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
