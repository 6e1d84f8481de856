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
:meth:`ssv2_fixtures.stress.tune_model.TuneResult.record`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..data.loader import effective_prefetch
from ..run.units import rate
from .drift import decision_lines
from .fmt import md_table, num
from .model import extra, interval_of, label_of, parse_label
from .tie import Candidate, pick

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TUNE_PLOT = "tune.png"


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
    return TunedBest(
        e,
        config_label(b.get("config")),
        float(v) if isinstance(v, (int, float)) else None,
        interval_of(b.get("interval")),
    )


def confirmed_best(results: Mapping[str, Any]) -> TunedBest | None:
    """The confirmed best over the tune entries (one per batch size) by the tie rule
    (:func:`ssv2_fixtures.report.tie.pick`): of the confirmed bests whose intervals overlap the
    fastest's, the cheapest. ``None`` without one."""
    bests = [_best(e) for e in _entries(results) if e.get("confirmed") and isinstance(e.get("best"), Mapping)]
    bests = [b for b in bests if b.label != "?" and b.rate is not None]
    if not bests:
        return None
    cands: dict[Candidate, TunedBest] = {}
    for b in bests:
        sh = shape_of(b.entry["best"].get("config")) or (0, 0)
        shm = b.entry["best"].get("shm_peak_bytes")
        cands[
            Candidate(
                b.label,
                float(b.rate or 0.0),
                b.interval,
                sh[0],
                sh[1],
                float(shm) if isinstance(shm, (int, float)) else None,
            )
        ] = b
    return cands[pick(list(cands)).best]


def tune_section(results: Mapping[str, Any], plot: str | None = None) -> list[str]:
    """Markdown lines for the ``tune`` entries (empty when there are none); ``plot``: the search's PNG
    next to summary.md (:func:`plot_tune`), shown under the table."""
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
        rows.append(
            [
                e.get("batch_size", "?"),
                b.label,
                rate(b.rate, b.interval),
                "yes" if e.get("confirmed") else "**no**",
                ties,
                f"{len(tried)} ({passed} passed)",
                f"{num(e.get('spent_s'))} of {num(e.get('budget_s'))}",
                num(target) if target is not None else "—",
            ]
        )
    return (
        [
            "Per batch size, the best configuration the search found (*videos/s* with its 95 % spread) and "
            "whether a second measurement confirmed it.",
            "",
        ]
        + md_table(
            [
                "batch size",
                "best",
                "videos/s",
                "confirmed",
                "tied with",
                "configs tried",
                "time spent of budget (s)",
                "target videos/s",
            ],
            rows,
        )
        + _time_lines(entries)
        + _interleaved_lines(entries)
        + (
            [
                "",
                "The search: each probe's rate with its 95 % interval by worker count, one line per prefetch "
                "factor (a config's latest measurement); rejected configs marked with their failure kind; the "
                "pick starred.",
                "",
                f"![tune search]({plot})",
            ]
            if plot
            else []
        )
    )


def _interleaved_lines(entries: list[Mapping[str, Any]]) -> list[str]:
    """Each batch size's final tie re-measured in interleaved rounds (stress/tune.py stage 5), as recorded."""
    out: list[str] = []
    for e in entries:
        dec = e.get("interleaved")
        if isinstance(dec, Mapping):
            title = f"Batch size {e.get('batch_size', '?')}: the finalists' tie re-measured in alternating windows"
            out += ["", *decision_lines(dec, title, "the leader and the cheapest of its ties")]
    return out


def time_by_stage(entry: Mapping[str, Any]) -> dict[str, tuple[int, float]]:
    """Stage → (runs, seconds of the runs' own wall time), in the order the search went."""
    out: dict[str, tuple[int, float]] = {}
    for t in entry.get("tried") or []:
        if not isinstance(t, Mapping) or t.get("kind") == "predicted_unfit":
            continue  # never run
        sec = t.get("seconds")
        n, total = out.get(str(t.get("stage") or "?"), (0, 0.0))
        out[str(t.get("stage") or "?")] = (n + 1, total + (float(sec) if isinstance(sec, (int, float)) else 0.0))
    return out


def _time_lines(entries: list[Mapping[str, Any]]) -> list[str]:
    out = []
    for e in entries:
        st = time_by_stage(e)
        if not st:
            continue
        runs = sum(s for _, s in st.values())
        spent = e.get("spent_s")
        rest = (
            f"; {num(float(spent) - runs)} s between runs (start-up, the decode-rate probe)"
            if isinstance(spent, (int, float)) and spent >= runs
            else ""
        )
        out.append(
            f"- How batch size {e.get('batch_size', '?')}'s time went: "
            + ", ".join(f"{stage} {num(sec)} s ({n} run{'s' if n != 1 else ''})" for stage, (n, sec) in st.items())
            + rest
            + "."
        )
    return [""] + out if out else []


def shape_of(c: Any) -> tuple[int, int] | None:
    """(workers, prefetch) of a tried entry's config: LoaderConfig fields or a label such as bs8-w4-pf2."""
    if not isinstance(c, Mapping):
        c = parse_label(str(c or ""))
        if c is None:
            return None
    w = c.get("num_workers")
    if not isinstance(w, int) or isinstance(w, bool):
        return None
    pf = c.get("prefetch_factor")
    return w, effective_prefetch(w, pf if isinstance(pf, int) and not isinstance(pf, bool) else None)


@dataclass(frozen=True)
class _Point:
    workers: int
    prefetch: int
    rate: float | None
    interval: tuple[float, float] | None
    kind: str | None


def search_points(entry: Mapping[str, Any]) -> list[_Point]:
    """One point per config the search tried (its latest probe; confirmations aside), in trial order."""
    latest: dict[str, Mapping[str, Any]] = {}
    for t in entry.get("tried") or []:
        if isinstance(t, Mapping) and t.get("stage") != "confirm":
            c = t.get("config")
            latest[repr(sorted(c.items())) if isinstance(c, Mapping) else str(c)] = t
    out = []
    for t in latest.values():
        sh = shape_of(t.get("config"))
        if sh is None:
            continue
        v = t.get("videos_per_s")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out.append(_Point(sh[0], sh[1], float(v), interval_of(t.get("interval")), None))
        else:
            out.append(_Point(sh[0], sh[1], None, None, str(t.get("kind") or "failed")))
    return out


def plot_tune(results: Mapping[str, Any]) -> Figure | None:
    """The search per batch size: videos/s (± its interval) vs workers, one line per prefetch factor
    through each worker count's fastest variant; rejected configs as x at 0 annotated with their kind
    (``predicted_unfit``: hollow, never run); the pick as a star. ``None`` without tune entries."""
    from .plots import new_figure

    entries = _entries(results)
    if not entries:
        return None
    fig = new_figure(figsize=(8, 4.2 * len(entries)))
    axes = fig.subplots(len(entries), 1, squeeze=False)
    for (ax,), e in zip(axes, entries):
        pts = search_points(e)
        pfs = sorted({p.prefetch for p in pts})
        for i, pf in enumerate(pfs):
            best: dict[int, _Point] = {}
            for p in pts:
                if (
                    p.prefetch == pf
                    and p.rate is not None
                    and (p.workers not in best or p.rate > (best[p.workers].rate or 0))
                ):
                    best[p.workers] = p
            if not best:
                continue
            line = [best[w] for w in sorted(best)]
            ys = [p.rate or 0.0 for p in line]
            ax.plot([p.workers for p in line], ys, marker="o", color=f"C{i % 10}", label=f"prefetch {pf}")
            iv = [p for p in line if p.interval is not None]
            if iv:
                ax.errorbar(
                    [p.workers for p in iv],
                    [p.rate or 0.0 for p in iv],
                    yerr=[
                        [(p.rate or 0.0) - p.interval[0] for p in iv if p.interval],
                        [p.interval[1] - (p.rate or 0.0) for p in iv if p.interval],
                    ],
                    fmt="none",
                    ecolor=f"C{i % 10}",
                    capsize=4,
                    elinewidth=1,
                )
        rejected = [p for p in pts if p.rate is None]
        for unfit in (False, True):
            rs = [p for p in rejected if (p.kind == "predicted_unfit") == unfit]
            if rs:
                sc = ax.scatter(
                    [p.workers for p in rs],
                    [0.0] * len(rs),
                    marker="o" if unfit else "x",
                    s=60,
                    facecolors="none" if unfit else None,
                    edgecolors="gray" if unfit else None,
                    c=None if unfit else "black",
                    linewidths=1.5,
                    zorder=3,
                    clip_on=False,
                    label="predicted not to fit (not run)" if unfit else "rejected (kind annotated)",
                )
                sc.set_gid("predicted_unfit" if unfit else "rejected")
        for (w, kind), n in _count((p.workers, f"pf{p.prefetch}: {p.kind}") for p in rejected).items():
            ax.annotate(
                kind + (f" ×{n}" if n > 1 else ""),
                (w, 0.0),
                xytext=(6, 6),
                textcoords="offset points",
                fontsize=7,
                color="dimgray",
                rotation=30,
            )
        b = _best(e)
        sh = shape_of((e.get("best") or {}).get("config") if isinstance(e.get("best"), Mapping) else None)
        if sh is not None and b.rate is not None:
            star = ax.scatter(
                [sh[0]],
                [b.rate],
                marker="*",
                s=220,
                color="gold",
                edgecolors="black",
                zorder=4,
                label=f"pick {b.label} ({'confirmed' if e.get('confirmed') else 'NOT confirmed'})",
            )
            star.set_gid("pick")
        ws = sorted({p.workers for p in pts})
        if ws:
            ax.set_xticks(ws)
            span = max(ws) - min(ws) or 1
            ax.set_xlim(min(ws) - 0.1 * span, max(ws) + 0.3 * span)  # room for the rejected kinds' notes
        top = max(ax.get_ylim()[1], 1.0)
        ax.set_ylim(-0.03 * top, top * 1.1)
        ax.set_title(
            f"Tune search, batch size {e.get('batch_size', '?')}: {len(pts)} configs, "
            f"{num(e.get('spent_s'))} of {num(e.get('budget_s'))} s",
            fontsize=10,
        )
        ax.set_xlabel("num_workers")
        ax.set_ylabel("videos/s (bars: 95 % interval)")
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="best")
    return fig


def _count(xs: Any) -> dict[Any, int]:
    out: dict[Any, int] = {}
    for x in xs:
        out[x] = out.get(x, 0) + 1
    return out
