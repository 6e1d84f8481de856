"""The one percentile rule and the one interval rule for rates.

Every number the suite reports about waits or throughput goes through here, so the terminal table,
results.json, summary.md and the plots cannot disagree on how a p95 or a spread was computed.

Interval rule (stated in docs/methodology.md "Intervals"): **batch means over worker rounds**. The
per-batch (items, seconds) stream of one run, in order, is cut into ``k`` consecutive groups of equal length; each
group's rate is its items over its seconds. The point estimate is the run's ratio (items / seconds) over its
newest whole worker rounds (at most W − 1 of the oldest batches left out: a stream cut inside a round
holds a round's long wait without the round's items, or the items without the wait); the half-width is
Student's t(0.975, k − 1) × sd(group rates) / √k.
Consecutive groups, not single batches, because batch times are autocorrelated (prefetch queues fill
and drain together); grouping absorbs that, as in steady-state simulation output analysis. A group is
a whole number of worker *rounds*: the DataLoader hands batches out to its W workers in turn and
returns them in order, so W batches that were decoded side by side arrive together — one long wait,
then W − 1 near-zero ones. A group of 3 batches out of a 4-worker round would hold either the long
wait or not, and its rate would swing by orders of magnitude; a group of whole rounds holds one cycle
each. Group length = the smallest multiple of the round (``round_size``, the worker count; 1 for
W = 0) that is at least 3, and ``k = min(10, n // length)`` groups, at least 2.

A node's rate (torchrun: ranks loading side by side) is the sum of the ranks' rates; its half-width
the ranks' half-widths added in quadrature (√Σh², the ranks' batch streams are separate processes),
method ``sum-of-ranks`` (:func:`sum_intervals`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MIN_BATCHES = 6
"""Fewer batches than this give no interval (two groups of three is the least that says anything)."""

# Student's t, two-sided 95 %, by degrees of freedom (1…30); past 30 the normal 1.96 is within 2 %.
_T975 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)


def t975(df: int) -> float:
    return _T975[df - 1] if df <= len(_T975) else 1.96


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100), numpy's default (linear) rule."""
    if len(values) == 0:
        raise ValueError("percentile of no values")
    import numpy as np  # lazily: the child imports this module before torch

    return float(np.percentile(np.asarray(values, dtype=float), q))


def spans_overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """The overlap test of the tie rule: neither ``[lo, hi]`` lies clear of the other."""
    return a[0] <= b[1] and b[0] <= a[1]


TIE_MARGIN = 0.10
"""A slower rate that reaches (1 − this) of the faster one's interval lower bound ties with it even when
the intervals do not overlap: two quick runs of one phase on one quiet machine are held to agree within
10 % (docs/methodology.md "Ties"), so a smaller lead over what the faster is known to reach (its lower
bound — the fastest of several near-equal configs is also the luckiest) is not evidence that survives the next run."""


def ties(a_rate: float, a_span: tuple[float, float], b_rate: float, b_span: tuple[float, float]) -> bool:
    """The tie rule's test: the intervals overlap, or the slower rate is at least (1 − :data:`TIE_MARGIN`)
    × the faster's lower bound. A rate without an interval passes its point as the span."""
    if spans_overlap(a_span, b_span):
        return True
    (_, fast_span), (slow, _) = sorted([(a_rate, a_span), (b_rate, b_span)], key=lambda x: -x[0])
    return slow >= (1 - TIE_MARGIN) * fast_span[0]


def tie_cost(workers: int, prefetch: int, shm_bytes: float | None, rate: float, label: str) -> tuple[Any, ...]:
    """The tie rule's order of cost, cheapest first: fewer workers, less prefetch, less shared memory (unknown
    last), then the faster, then the name. The one order the recommendation (report/tie.py) and the interleaved
    comparison's candidates (stress/drift.py) sort a tie by."""
    return (workers, prefetch, shm_bytes if shm_bytes is not None else math.inf, -rate, label)


NODE_METHOD = "sum-of-ranks"


def sum_intervals(rates: Sequence[float], spans: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """A node's interval from its ranks' (module docstring): Σ rates ± √Σ half-widths²."""
    if len(rates) != len(spans) or not rates:
        raise ValueError(f"{len(rates)} rates but {len(spans)} intervals")
    total = float(sum(rates))
    h = math.sqrt(sum(((hi - lo) / 2) ** 2 for lo, hi in spans))
    return max(0.0, total - h), total + h


@dataclass(frozen=True)
class RateInterval:
    rate: float  # items / seconds over the newest whole worker rounds
    lo: float
    hi: float
    groups: int  # batch-mean groups the spread came from
    batches: int
    method: str = "batch-means-t95"

    @property
    def half_width(self) -> float:
        return (self.hi - self.lo) / 2

    @property
    def relative_half_width(self) -> float:
        return self.half_width / self.rate if self.rate > 0 else math.inf

    def as_list(self) -> list[float]:
        return [self.lo, self.hi]


def whole_rounds(batches: int, round_size: int = 1) -> int:
    """``batches`` rounded up to whole worker rounds (``round_size``: the worker count; 1 for W = 0)."""
    r = max(1, int(round_size))
    return r * -(-int(batches) // r)


def group_length(round_size: int = 1) -> int:
    """Batches per batch-means group: whole worker rounds, at least 3 batches."""
    return whole_rounds(3, round_size)


def _needed(round_size: int) -> int:
    """Batches an interval needs: two groups of :func:`group_length`, at least :data:`MIN_BATCHES`."""
    return max(MIN_BATCHES, 2 * group_length(round_size))


def _whole_rounds_s(seconds: Sequence[float], round_size: int) -> float:
    n = len(seconds)
    return float(sum(seconds[n - (n - n % max(1, int(round_size))) :]))


def no_interval_reason(seconds: Sequence[float], round_size: int, hi: float | None) -> str | None:
    """Why :func:`rate_interval` over these batches gave no finite interval (``hi``: its upper bound,
    None when it gave none); None when it did."""
    n, need = len(seconds), _needed(round_size)
    if n < need:
        return f"too few batches ({n} < {need})"
    if _whole_rounds_s(seconds, round_size) <= 0:
        return "the batches took no time"
    if hi is None or not math.isfinite(hi):
        return "a group took no time"
    return None


def rate_interval(items: Sequence[float], seconds: Sequence[float], *, round_size: int = 1) -> RateInterval | None:
    """Rate (items per second) of an ordered per-batch stream with its 95 % batch-means interval;
    ``None`` with fewer than two groups of :func:`group_length` batches (:data:`MIN_BATCHES` for one
    worker) or no time. ``round_size``: the DataLoader's worker count (batches that arrive together)."""
    n = len(items)
    if n != len(seconds):
        raise ValueError(f"{n} item counts but {len(seconds)} times")
    length = group_length(round_size)
    whole = n - n % max(1, int(round_size))  # the rate over whole rounds, newest first (module docstring)
    total_s = _whole_rounds_s(seconds, round_size)
    if n < _needed(round_size) or total_s <= 0:
        return None
    rate = float(sum(items[n - whole :])) / total_s
    k = min(10, n // length)
    size = n // k
    size -= size % length  # whole rounds per group
    start = n - k * size  # drop the oldest remainder: the tail of a run is the steadier part
    rates = []
    for g in range(k):
        a, b = start + g * size, start + (g + 1) * size
        s = float(sum(seconds[a:b]))
        rates.append(float(sum(items[a:b])) / s if s > 0 else math.inf)
    if any(math.isinf(r) for r in rates):
        return RateInterval(rate, 0.0, math.inf, k, n)
    mean = sum(rates) / k
    sd = math.sqrt(sum((r - mean) ** 2 for r in rates) / (k - 1))
    h = t975(k - 1) * sd / math.sqrt(k)
    return RateInterval(rate, max(0.0, rate - h), rate + h, k, n)
