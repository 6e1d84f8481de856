"""The ``tune`` section: what ``-m tune`` searched, per batch size, and what it settled on.

results.json may carry a top-level ``tune`` list, one entry per batch size::

    {"batch_size": 8,
     "best": {"config": "bs8-w2-pf2" | {LoaderConfig fields}, "videos_per_s": 97.0, "interval": [93.9, 100.1]},
     "confirmed": true,              # the best was re-measured and held
     "ties": [{"config": ..., "videos_per_s": ..., "interval": [...]}, ...],   # as "best"
     "tried": [{"config": ..., "stage": ..., "videos_per_s": ..., "interval": [...]} | {..., "kind": ...}],
     "budget_s": 120, "spent_s": 96.5, "target_videos_per_s": 80}

The section renders those entries as recorded; the recommendation shows a confirmed best first
(:func:`confirmed_best`). Missing fields read as ``?``. The writer is
:meth:`ssv2_fixtures.stress.tune.TuneResult.record`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from .fmt import md_table, num, rate
from .model import extra, interval_of, label_of


def _entries(results: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [e for e in extra(results, "tune") or [] if isinstance(e, Mapping)]


def config_label(c: Any) -> str:
    """A tune entry names its config by label or by LoaderConfig fields."""
    if isinstance(c, Mapping):
        return label_of(c)
    return str(c) if c is not None else "?"


def entry_label(x: Any) -> str:
    """A ``ties`` item: a ``{"config": ...}`` record (as the tuner writes it) or a bare label."""
    return config_label(x.get("config")) if isinstance(x, Mapping) else config_label(x)


@dataclass(frozen=True)
class TunedBest:
    entry: Mapping[str, Any]
    label: str
    rate: float | None
    interval: tuple[float, float] | None


def _best(e: Mapping[str, Any]) -> TunedBest:
    raw = e.get("best")
    b: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    v = b.get("videos_per_s")
    return TunedBest(e, config_label(b.get("config")), float(v) if isinstance(v, (int, float)) else None,
                     interval_of(b.get("interval")))


def confirmed_best(results: Mapping[str, Any]) -> TunedBest | None:
    """The fastest confirmed best over the tune entries (``None`` without one)."""
    bests = [_best(e) for e in _entries(results) if e.get("confirmed") and isinstance(e.get("best"), Mapping)]
    bests = [b for b in bests if b.label != "?"]
    return max(bests, key=lambda b: b.rate or 0.0) if bests else None


def tune_section(results: Mapping[str, Any]) -> list[str]:
    """Markdown lines for the ``tune`` entries (empty when there are none)."""
    entries = _entries(results)
    if not entries:
        return []
    rows = []
    for e in entries:
        b = _best(e)
        ties = ", ".join(entry_label(t) for t in e.get("ties") or []) or "—"
        tried = [t for t in e.get("tried") or [] if isinstance(t, Mapping)]
        passed = sum(1 for t in tried if t.get("videos_per_s") is not None)
        target = e.get("target_videos_per_s")
        rows.append([e.get("batch_size", "?"), b.label, rate(b.rate, b.interval),
                     "yes" if e.get("confirmed") else "**no**", ties, f"{len(tried)} ({passed} passed)",
                     f"{num(e.get('spent_s'))} of {num(e.get('budget_s'))}",
                     num(target) if target is not None else "—"])
    return (["Per batch size, the best configuration the search found (*videos/s* with its 95 % spread) and "
             "whether a second measurement confirmed it.", ""]
            + md_table(["batch size", "best", "videos/s", "confirmed", "tied with", "configs tried",
                        "time spent of budget (s)", "target videos/s"], rows))
