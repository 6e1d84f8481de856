"""The memory-growth rule that a stress run's leak verdict (:func:`ssv2_fixtures.stress.verdicts.leak`) and a
watch's ``rss_growth`` finding (:func:`ssv2_fixtures.watch.findings.rss_growth`) both apply, so the two say
the same thing about the same growth: the warm-up share left out of a series, and the noise floor."""

from __future__ import annotations

LEAK_MIN_BYTES = 128 * 2**20  # growth below this is noise for a multi-process loader
LEAK_MIN_FRACTION = 0.15  # ... and so is growth below 15 % of the starting RSS
WARMUP_FRACTION = 0.1  # the share of a series' first points left out before its growth is judged


def leaks(growth: float, first: float) -> bool:
    """Growth past both floors: more than :data:`LEAK_MIN_BYTES` and more than :data:`LEAK_MIN_FRACTION`
    of ``first`` (the starting RSS)."""
    return growth > LEAK_MIN_BYTES and growth > LEAK_MIN_FRACTION * first
