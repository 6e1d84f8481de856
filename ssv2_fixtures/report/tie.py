"""The tie rule: which of several measured, passed configs to recommend.

:func:`pick` is pure, over recorded rates and intervals:

1. the fastest candidate is the one with the highest recorded videos/s;
2. it and every candidate that *ties* with it form the tie (:func:`ssv2_fixtures.run.stats.ties`):
   their 95 % intervals overlap, so the measurements cannot tell them apart, or the candidate's rate
   reaches 90 % (1 − ``stats.TIE_MARGIN``) of the fastest's lower bound: a lead smaller than two runs
   of one config are held to agree by (a candidate without an interval counts as the point
   ``[rate, rate]``). Ties are with the
   fastest, not chained: a config that ties only with a tied one is not in the tie;
3. the tie goes to the cheapest: fewer workers, then smaller prefetch, then less shared memory
   (measured peak, else the budget's prediction); then the higher rate, then the label, so the
   answer never depends on the order of the records.

:func:`ssv2_fixtures.report.recommend.recommend` and the tune section's confirmed best apply it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..run.stats import TIE_MARGIN, tie_cost, ties
from .model import Run


@dataclass(frozen=True)
class Candidate:
    """One measured, passed config as the tie rule sees it."""

    label: str
    rate: float
    interval: tuple[float, float] | None = None
    workers: int = 0
    prefetch: int = 0
    shm_bytes: float | None = None

    @property
    def span(self) -> tuple[float, float]:
        return self.interval if self.interval is not None else (self.rate, self.rate)

    def ties_with(self, other: Candidate) -> bool:
        return ties(self.rate, self.span, other.rate, other.span)

    @property
    def cost(self) -> tuple[Any, ...]:
        return tie_cost(self.workers, self.prefetch, self.shm_bytes, self.rate, self.label)


@dataclass(frozen=True)
class Pick:
    best: Candidate
    ties: tuple[Candidate, ...]  # every candidate in the tie, cheapest first (best included)
    fastest: Candidate

    @property
    def tied(self) -> bool:
        return len(self.ties) > 1


def pick(candidates: Sequence[Candidate]) -> Pick:
    """The tie rule (module docstring). Raises ``ValueError`` on no candidates."""
    if not candidates:
        raise ValueError("pick: no candidates")
    fastest = min(candidates, key=lambda c: (-c.rate, c.cost))  # equal rates: the cheaper is "fastest"
    ties = tuple(sorted((c for c in candidates if c is fastest or c.ties_with(fastest)), key=lambda c: c.cost))
    return Pick(ties[0], ties, fastest)


def candidate(r: Run) -> Candidate:
    return Candidate(r.label, r.vps or 0.0, r.interval, r.workers or 0, r.prefetch, r.shm_bytes)


def tie_text(p: Pick) -> str:
    """``tie: a, b — within each other's spread; the cheaper is recommended`` (empty when no tie)."""
    if not p.tied:
        return ""
    return (
        f"tie: {', '.join(c.label for c in p.ties)} — within each other's spread or "
        f"{TIE_MARGIN:.0%} of the fastest's lower bound; the cheaper is recommended"
    )
