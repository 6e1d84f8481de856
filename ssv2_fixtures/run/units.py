"""The project's units as text, for every layer's messages: sizes (:func:`fmt_bytes`, binary multiples under their
IEC names: GiB, MiB, KiB for 2**30, 2**20, 2**10 bytes) and rates with their 95 % spread (:func:`rate`). A size in
any message is written by :func:`fmt_bytes`, or divided by one of these constants and named with its IEC name."""

from __future__ import annotations

import math

KiB, MiB, GiB = 2**10, 2**20, 2**30


def fmt_bytes(n: float | None) -> str:
    """``1.5 GiB``, ``385 MiB``, ``12 KiB``, ``100 B``; ``?`` for an unknown size."""
    if n is None:
        return "?"
    n = float(n)
    if abs(n) >= GiB:
        return f"{n / GiB:.1f} GiB"
    if abs(n) >= MiB:
        return f"{n / MiB:.0f} MiB"
    if abs(n) >= KiB:
        return f"{n / KiB:.0f} KiB"
    return f"{n:.0f} B"


def half_width(rate: float, interval: tuple[float, float]) -> float:
    """The interval's half-width around the recorded rate. The batch-means rule clips ``lo`` at 0, so
    the larger side is the honest one."""
    lo, hi = interval
    return max(hi - rate, rate - lo)


def rate(vps: float | None, interval: tuple[float, float] | None, *, ascii: bool = False) -> str:
    """A rate with its 95 % spread: ``97.0 ± 3.1`` (half-width of the recorded batch-means interval).

    A record without an interval (a results file without intervals, or a run with too few
    batches for the rule) shows ``97.0 ±?``: the rate is real, its spread is unknown, and the
    mark says so instead of letting a bare number look exact. ``ascii=True`` writes ``+-`` for the
    terminal (a CI log may have a C locale). No rate at all is ``—`` (``-`` in ASCII).
    """
    pm = "+-" if ascii else "±"
    if vps is None:
        return "-" if ascii else "—"
    if interval is None:
        return f"{vps:.1f} {pm}?"
    h = half_width(vps, interval)
    return f"{vps:.1f} {pm} {h:.1f}" if math.isfinite(h) else f"{vps:.1f} {pm} inf"


__all__ = ["KiB", "MiB", "GiB", "fmt_bytes", "half_width", "rate"]
