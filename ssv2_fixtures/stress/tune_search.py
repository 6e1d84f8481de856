"""Autotune's search, stages 1–4 of :mod:`.tune` (its docstring says what each does): the worker counts, the
prune to at most two, the other knobs around them, and the successive halving of the finalists. One
:class:`Search` carries the deadline, the probes tried and every config's latest estimate; :mod:`.tune` then
decides among the finalists and confirms the pick on the same one."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..data.loader import LoaderConfig
from .tune_model import (
    MAX_FINALISTS,
    MAX_HALVING_ROUNDS,
    MAX_KEPT_WORKERS,
    PREDICTED_UNFIT,
    Clock,
    Estimate,
    Measure,
    Probe,
    Space,
    Trial,
    cost_key,
    tie_pick,
)

__all__ = ["Search", "explore", "finish", "short_probe_s"]


class _OutOfTime(Exception):
    pass


@dataclass
class Search:
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
            self.add(Trial(config, stage, Probe(kind=PREDICTED_UNFIT)))
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
        self.add(Trial(config, stage, p))
        if not p.passed:
            self.failed[config] = p.kind or "no_rate"
            self.est.pop(config, None)
            return None
        assert p.videos_per_s is not None
        lo, hi = p.interval if p.interval is not None else (p.videos_per_s, p.videos_per_s)
        e = Estimate(config, p.videos_per_s, lo, hi, seconds)
        self.est[config] = e
        return e

    def add(self, t: Trial) -> None:
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


def _grid(ws: Sequence[int]) -> list[int]:
    """Stage 1's first worker counts: the powers of two in ``ws`` (sorted), and its first and last."""
    return sorted({w for w in ws if w & (w - 1) == 0} | {ws[0], ws[-1]})


def _finalists(s: Search, pool: list[Estimate]) -> list[Estimate]:
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


def short_probe_s(space: Space, search_s: float, overhead_s: float) -> float:
    """Stage 1 and 3's probe length: the probes planned for them take about half of the search time."""
    planned = (
        len(_grid(space.workers))
        + 2
        + MAX_KEPT_WORKERS
        * (len(space.prefetch) + len(space.strategies) + len(space.persistent) + len(space.pin_memory) - 4)
    )
    return min(20.0, max(2.0, 0.5 * search_s / planned - overhead_s))


def explore(s: Search) -> None:
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


def finish(s: Search, target: float | None) -> tuple[list[Estimate], list[Estimate]]:
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
