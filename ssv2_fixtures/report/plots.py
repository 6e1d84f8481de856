"""Plots (Agg, no pyplot: no global figure state, safe in a pytest session).

matplotlib is imported inside these functions only, so the plugin can import the report package
(for :func:`ssv2_fixtures.report.terminal_lines`) without paying for it. Rates are drawn with error
bars from their recorded 95 % interval; a point without an interval has no bar.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..run.record import write_atomic_bytes
from ..run.schema import ResultsFile, RunRecord
from ..run.units import MiB, rate
from .model import SUSTAINED_KINDS, Run, best_runs_by_workers, runs_of

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def new_figure(**kw: Any) -> Figure:
    """A matplotlib figure drawn off screen (Agg), for every report plot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(layout="constrained", **kw)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    write_atomic_bytes(path, buf.getvalue())


def _error_bars(ax: Axes, rs: Sequence[Run], color: str, bs: int) -> None:
    """Vertical bars from each run's interval (asymmetric: the rule clips lo at 0)."""
    with_iv = [r for r in rs if r.interval is not None and r.vps is not None]
    if not with_iv:
        return
    xs = [r.workers or 0 for r in with_iv]
    ys = [r.vps or 0.0 for r in with_iv]
    lo = [(r.vps or 0.0) - r.interval[0] for r in with_iv if r.interval]
    hi = [r.interval[1] - (r.vps or 0.0) for r in with_iv if r.interval]
    ax.errorbar(
        xs, ys, yerr=[lo, hi], fmt="none", ecolor=color, capsize=4, elinewidth=1, label=f"_bs{bs} 95 % interval"
    )


def _failed_marks(ax: Axes, runs: Sequence[Run], colors: Mapping[int, str]) -> bool:
    failed: dict[tuple[int, float], list[Run]] = {}
    for r in runs:
        if not r.ok and r.batch_size is not None:
            failed.setdefault((r.workers or 0, r.vps or 0.0), []).append(r)
    if not failed:
        return False
    xs, ys, cs = [], [], []
    for (w, y), rs in failed.items():
        for r in rs:
            xs.append(w)
            ys.append(y)
            cs.append(colors.get(r.batch_size or 0, "k"))
        text = "\n".join(sorted({f"bs{r.batch_size}: {r.result}" for r in rs}))
        ax.annotate(text, (w, y), xytext=(6, 4), textcoords="offset points", fontsize=7, color="dimgray")
    sc = ax.scatter(xs, ys, marker="x", s=60, c=cs, linewidths=2, zorder=3, clip_on=False)
    sc.set_gid("failed")
    return True


def plot_throughput(data: ResultsFile | Sequence[RunRecord]) -> Figure:
    """videos/s vs workers, one line per batch size (best passing run per point) with 95 % error bars;
    failed runs as x, annotated with their failure kind (at the rate they reached, or 0 if none)."""
    runs = [r for r in runs_of(data) if r.kind != "distributed" and r.workers is not None]
    mach = data.get("machine") or {} if isinstance(data, Mapping) else {}
    fig = new_figure(figsize=(8, 5))
    ax = fig.add_subplot()
    sizes = sorted({r.batch_size for r in runs if r.batch_size is not None})
    colors = {bs: f"C{i % 10}" for i, bs in enumerate(sizes)}
    spread = False
    for bs, rs in best_runs_by_workers(runs).items():
        ax.plot(
            [r.workers or 0 for r in rs],
            [r.vps or 0.0 for r in rs],
            marker="o",
            color=colors[bs],
            label=f"batch size {bs}",
        )
        _error_bars(ax, rs, colors[bs], bs)
        spread = spread or any(r.interval is not None for r in rs)
    failed = _failed_marks(ax, runs, colors)
    if not runs:
        ax.text(0.5, 0.5, "no run recorded", ha="center", va="center", transform=ax.transAxes)
    ws = sorted({r.workers for r in runs if r.workers is not None})
    if ws:
        ax.set_xticks(ws)
        span = max(ws) - min(ws) or 1
        ax.set_xlim(min(ws) - 0.1 * span, max(ws) + 0.2 * span)  # room for the annotations on the right
    top = max(ax.get_ylim()[1], 1.0)
    ax.set_ylim(-0.03 * top, top * 1.05)  # failures at 0 stay visible above the axis line
    host = f" — {mach.get('hostname')} ({mach.get('cores', '?')} cores)" if mach.get("hostname") else ""
    ax.set_title(f"DataLoader throughput vs workers{host}")
    ax.set_xlabel("num_workers (DataLoader worker processes)")
    ax.set_ylabel("throughput (videos/s, steady state" + (", bars: 95 % interval)" if spread else ")"))
    ax.grid(True, alpha=0.3)
    handles, _ = ax.get_legend_handles_labels()
    if failed:  # a neutral proxy: the x marks themselves take their batch size's colour
        from matplotlib.lines import Line2D

        handles.append(
            Line2D(
                [],
                [],
                marker="x",
                color="black",
                linestyle="none",
                markersize=8,
                label="failed run: at its rate, or 0 if none (kind annotated)",
            )
        )
    if handles:
        ax.legend(handles=handles, loc="best", fontsize=8)
    return fig


def _wait_panel(a: Axes, r: Run) -> None:
    waits = [x * 1000 for x in r.rec.get("batch_waits_s") or []]
    if waits:
        # The first batch includes worker start-up (seconds): drawn, it would flatten the steady waits.
        a.plot(range(2, len(waits) + 1), waits[1:], lw=1, color="C0", label="wait per batch")
        p95 = r.metrics.get("wait_ms_p95")
        if p95 is not None:
            a.axhline(p95, color="C3", ls=":", lw=1, label=f"p95 {p95:.0f} ms")
        a.set_ylim(0, max(waits[1:] or waits) * 1.3)  # headroom for the legend
        a.legend(fontsize=7, loc="upper right")
    status = "passed" if r.ok else r.result
    a.set_title(f"{r.label} ({r.kind}): {status}, {rate(r.vps, r.interval)} videos/s", fontsize=9)
    a.set_xlabel(f"batch (first: {waits[0] / 1000:.2f} s start-up, not drawn)" if waits else "batch")
    a.set_ylabel("wait (ms)")


def plot_sustained(data: ResultsFile | Sequence[RunRecord]) -> Figure | None:
    """Small multiples, one row per sustained/validate run: per-batch wait (ms) vs batch, RSS (MiB) and
    /dev/shm used (MiB) vs time. ``None`` when there is no such run."""
    runs = sorted((r for r in runs_of(data) if r.kind in SUSTAINED_KINDS), key=lambda r: r.sort_key)
    if not runs:
        return None
    fig = new_figure(figsize=(13, 2.8 * len(runs) + 0.8))
    fig.suptitle("Sustained runs: batch wait per batch, process-tree memory (RSS) and /dev/shm over time")
    axes = fig.subplots(len(runs), 3, squeeze=False)
    for row, r in zip(axes, runs):
        series = r.rec.get("series") or {}
        _wait_panel(row[0], r)
        t = series.get("t") or []
        for a, key, what, color in (
            (row[1], "rss", "RSS (all processes)", "C2"),
            (row[2], "shm_used", "/dev/shm used", "C4"),
        ):
            ys = series.get(key) or []
            if t and ys:
                n = min(len(t), len(ys))
                a.plot(t[:n], [y / MiB for y in ys[:n]], lw=1, color=color, label=what)
                a.legend(fontsize=7, loc="lower right")
            else:
                a.text(0.5, 0.5, "no samples", ha="center", va="center", transform=a.transAxes)
            a.set_title(f"{r.label}: {what}", fontsize=9)
            a.set_xlabel("time since start (s)")
            a.set_ylabel(f"{what.split(' ')[0]} (MiB)")
        for a in row:
            a.grid(True, alpha=0.3)
    return fig
