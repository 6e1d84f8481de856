"""Verdicts on a passed run's time series: memory growth (leak) and throughput decay (degradation).

A verdict too short a run cannot judge says so with ``"judged": False`` (and ``ok`` True, so it fails
nothing): the reports show it as not judged, never as a check that passed.

Both compare the first and last fifth of the run after warm-up, which is robust to the sawtooth of
workers restarting at each epoch and to one slow batch. Thresholds are stated in the verdict text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..run.growth import LEAK_MIN_BYTES, LEAK_MIN_FRACTION, WARMUP_FRACTION, leaks
from ..run.record import batch_walls
from ..run.stats import MIN_BATCHES, group_length
from ..run.units import MiB

DEGRADATION_RATIO = 0.7  # last fifth below 70 % of the first fifth's videos/s


def _fifths(values: Sequence[float] | np.ndarray, least: int = 1) -> tuple[np.ndarray, np.ndarray] | None:
    a = np.asarray(values, dtype=np.float64)
    a = a[int(len(a) * WARMUP_FRACTION) + 1 :]
    k = len(a) // 5
    if k < max(1, least):
        return None
    return a[:k], a[-k:]


def fifth_batches(round_size: int = 1) -> int:
    """Batches each fifth needs before two fifths' rates can be compared: the interval rule's minimum
    (:data:`~ssv2_fixtures.run.stats.MIN_BATCHES`) and whole worker rounds (batches of ``round_size``
    workers arrive together, so a part of a round is one long wait or none)."""
    return max(MIN_BATCHES, group_length(round_size))


def fewest_batches(round_size: int = 1) -> int:
    """The shortest run (warm-up included) whose degradation is judged."""
    k, n = fifth_batches(round_size), 5 * fifth_batches(round_size)
    while (n - int(n * WARMUP_FRACTION) - 1) // 5 < k:  # the warm-up skip of _fifths
        n += 1
    return n


def leak(t: Sequence[float], rss: Sequence[float], batches: int) -> dict[str, Any]:
    """RSS growth over the run; ``ok`` False when it grows past both thresholds."""
    f = _fifths(rss)
    if f is None or len(t) < 2:
        return {"name": "leak", "ok": True, "judged": False, "detail": "too few samples to judge memory growth"}
    first, last = float(np.mean(f[0])), float(np.mean(f[1]))
    growth = last - first
    skip = int(len(t) * WARMUP_FRACTION) + 1  # the fit, like the fifths, leaves out the warm-up
    tt = np.asarray(t, dtype=np.float64)[skip:]
    rr = np.asarray(rss, dtype=np.float64)[skip:]
    if len(tt) < 2:
        tt, rr = np.asarray(t, dtype=np.float64), np.asarray(rss, dtype=np.float64)
    slope = float(np.polyfit(tt, rr, 1)[0]) if np.ptp(tt) > 0 else 0.0  # bytes per second
    # Seconds per batch from the whole run: ``batches`` counts the warm-up batches too.
    t_all = np.asarray(t, dtype=np.float64)
    per_100 = slope * (t_all[-1] - t_all[0]) / max(batches, 1) * 100
    bad = leaks(growth, first)
    return {
        "name": "leak",
        "ok": not bool(bad),
        "growth_bytes": float(growth),
        "slope_bytes_per_s": slope,
        "slope_bytes_per_100_batches": per_100,
        "detail": (
            f"RSS {first / MiB:.0f} → {last / MiB:.0f} MiB (first vs last fifth), slope "
            f"{per_100 / MiB:+.1f} MiB per 100 batches; threshold: growth > "
            f"{LEAK_MIN_BYTES / MiB:.0f} MiB and > {LEAK_MIN_FRACTION:.0%}"
        ),
    }


def degradation(seconds: Sequence[float], videos: Sequence[int], round_size: int = 1) -> dict[str, Any]:
    """Throughput (videos over the batches' ``seconds``: their wall times in the loop, :func:`loop_seconds`) of
    the last fifth of batches against the first fifth, after warm-up; not judged when a fifth holds fewer
    than :func:`fifth_batches` batches (one batch against one batch is noise)."""
    w = np.asarray(seconds, dtype=np.float64)
    v = np.asarray(videos, dtype=np.float64)
    least = fifth_batches(round_size)
    fw, fv = _fifths(w, least), _fifths(v, least)
    if fw is None or fv is None:
        return {
            "name": "degradation",
            "ok": True,
            "judged": False,
            "detail": (
                f"too few batches to judge throughput decay: each fifth after warm-up needs "
                f"{least} batches, {len(w)} loaded (run at least {fewest_batches(round_size)})"
            ),
        }
    if fw[0].sum() <= 0 or fw[1].sum() <= 0:
        return {
            "name": "degradation",
            "ok": True,
            "judged": False,
            "detail": "too few batches with measured time to judge throughput decay",
        }
    first = fv[0].sum() / fw[0].sum()
    last = fv[1].sum() / fw[1].sum()
    ratio = last / first if first > 0 else 1.0
    return {
        "name": "degradation",
        "ok": bool(ratio >= DEGRADATION_RATIO),
        "first_videos_per_s": float(first),
        "last_videos_per_s": last,
        "ratio": ratio,
        "detail": (
            f"videos/s {first:.1f} (first fifth) → {last:.1f} (last fifth), ratio {ratio:.2f}; "
            f"threshold {DEGRADATION_RATIO}"
        ),
    }


def loop_seconds(rec: Any) -> list[float]:
    """Each batch's wall time in the training loop, the quantity videos/s is over: from the recorded receipt
    times (``series.batch_t``, one per batch) by :func:`~ssv2_fixtures.run.record.batch_walls`, the record
    builder's own rule (the step held after the previous batch, then this batch's wait; the first batch its
    wait). A record without one receipt time per batch: wait + ``step_s``, the
    time the loop would have spent with nothing else in it."""
    waits = [float(w) for w in rec.get("batch_waits_s", [])]
    bt = (rec.get("series") or {}).get("batch_t") or []
    if waits and len(bt) == len(waits):
        return batch_walls([{"t": float(t), "wait_s": w} for t, w in zip(bt, waits)])
    step = float(rec.get("step_s") or 0.0)
    return [w + step for w in waits]


def series_verdicts(rec: Any) -> list[dict[str, Any]]:
    """Leak and degradation verdicts for a passed run's record.

    Memory is judged on the batch loop only (not the torch import before it or the shutdown after)
    and on samples where the whole tree is up: non-persistent workers are re-forked at each epoch,
    and the dips while they restart are not a change in memory use. Every batch holds ``batch_size``
    videos (measured runs draw from an endless sampler). Throughput is judged on the loop's wall time per
    batch (:func:`loop_seconds`), the quantity videos/s is over: on the waits alone, a loader that keeps up
    with a slow step (``--step-time``) waits ~1 ms one batch and ~4 ms the next, and that noise reads as a
    collapse; wait + step would miss what else the loop spent per batch.
    """
    series = rec.get("series", {})
    walls = loop_seconds(rec)
    bt = series.get("batch_t", [])
    t, rss, procs = series.get("t", []), series.get("rss", []), series.get("procs", [])
    full = max(procs) if procs else 0
    keep = [i for i in range(len(t)) if bt and bt[0] <= t[i] <= bt[-1] and procs[i] == full]
    vids = [int(rec["config"]["batch_size"])] * len(walls)
    rounds = int(rec["config"].get("num_workers") or 1)
    return [leak([t[i] for i in keep], [rss[i] for i in keep], len(walls)), degradation(walls, vids, rounds)]


def failed(rec: Any) -> list[dict[str, Any]]:
    """The verdicts of a record that failed."""
    return [v for v in rec.get("verdicts") or [] if not v.get("ok", True)]


def failed_text(rec: Any) -> str:
    """The failed verdicts of a record as one line, ``name: detail; …`` (empty when none failed)."""
    return "; ".join(f"{v['name']}: {v['detail']}" for v in failed(rec))


def decide(status: str, verdicts: Sequence[dict[str, Any]]) -> str:
    """The run's status, decided once: a run that loaded every batch fails when any verdict failed."""
    if status == "passed" and any(not v.get("ok", True) for v in verdicts):
        return "failed"
    return status
