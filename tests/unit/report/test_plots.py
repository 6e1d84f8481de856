"""ssv2_fixtures.report.plots: PNG files, throughput lines with 95 % error bars, sustained panels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from report_helpers import fixture, with_intervals

from ssv2_fixtures.report import plot_sustained, plot_throughput, runs_of
from ssv2_fixtures.run.outcome import KIND_NAMES

PNG = b"\x89PNG\r\n\x1a\n"


def _labelled(ax: Any) -> list[Any]:
    return [ln for ln in ax.lines if not str(ln.get_label()).startswith("_")]


def test_plot_files_are_png(healthy_summary: tuple[Path, str], spread_summary: tuple[Path, str]) -> None:
    for d in (healthy_summary[0], spread_summary[0]):
        for name in ("throughput.png", "sustained.png"):
            assert (d / name).read_bytes()[:8] == PNG


def test_throughput_figure_series() -> None:
    fig = plot_throughput(fixture("healthy"))
    ax = fig.axes[0]
    assert sorted(str(line.get_label()) for line in _labelled(ax)) == ["batch size 16", "batch size 8"]
    assert [np.asarray(line.get_xdata()).tolist() for line in _labelled(ax)] == [[2, 4], [2, 4]]
    assert not ax.collections and not ax.containers  # nothing failed; no interval recorded, no bars
    assert "videos/s" in ax.get_ylabel() and "workers" in ax.get_xlabel() and ax.get_title()

    fig = plot_throughput(fixture("failures"))
    ax = fig.axes[0]
    assert len(_labelled(ax)) == 1  # only batch size 4 has passing runs
    marks = [c for c in ax.collections if c.get_gid() == "failed"]
    assert len(marks) == 1 and len(np.asarray(marks[0].get_offsets())) == len(KIND_NAMES) + 1
    notes = "\n".join(t.get_text() for t in ax.texts)
    assert all(k in notes for k in KIND_NAMES)
    legend = ax.get_legend()
    assert legend is not None and "failed run" in " ".join(t.get_text() for t in legend.get_texts())


def test_throughput_error_bars_span_the_recorded_interval() -> None:
    data = with_intervals(fixture("healthy"))
    ax = plot_throughput(data).axes[0]
    assert len(ax.containers) == 2 and "95 % interval" in ax.get_ylabel()
    want = sorted(
        (r.interval[0], r.interval[1])
        for r in runs_of(data)  # best run per (bs, workers)
        if r.kind == "quick" and r.interval
    )
    segs = sorted(
        (float(min(s[:, 1])), float(max(s[:, 1]))) for cont in ax.containers for s in cont.lines[2][0].get_segments()
    )  # type: ignore[attr-defined]
    assert np.allclose(segs, want)


def test_sustained_figure_small_multiples() -> None:
    fig = plot_sustained(fixture("healthy"))
    assert fig is not None and len(fig.axes) == 6  # 2 sustained runs × (wait, RSS, shm)
    assert [len(a.lines) for a in fig.axes] == [2, 1, 1, 2, 1, 1]  # wait + its p95 line
    assert len(np.asarray(fig.axes[0].lines[0].get_ydata())) == 59  # 60 waits, the start-up batch not drawn
    assert fig.axes[1].get_ylabel() == "RSS (MiB)" and fig.axes[2].get_ylabel() == "/dev/shm (MiB)"
    assert "74.0 ±? videos/s" in fig.axes[3].get_title()
    assert plot_sustained(fixture("limits")) is None
