"""A watch log as a report: a markdown section and a plot, and a comparison with a stress run (the watch
package records the log; this module renders it).

``python -m ssv2_fixtures.report watch LOG`` and ``report compare`` call :func:`render` and
:func:`compare_with_run`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from ..data.loader import effective_prefetch
from ..run.record import ResultsError, read_results, write_atomic_bytes
from ..run.schema import RunRecord
from ..run.units import GiB, MiB, fmt_bytes
from ..watch.findings import DATA_BOUND_FRACTION
from ..watch.log import LogError, read_log
from .breakdown import breakdown_line
from .model import Run, interval_of, short_ok, sustained_ok
from .plots import new_figure, save_png

# the settings a stress result and a watched loader must share to be "the same config"
MATCH_KEYS = ("batch_size", "num_workers", "prefetch_factor", "sharing_strategy")
FASTER_THAN_STRESS = 1.5  # training above 1.5× the stress rate of its own config: not the same data


def _by_rank(events: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    for e in events:
        out.setdefault(int(e["rank"]), []).append(e)
    return dict(sorted(out.items()))


def _summary(path: Path, events: list[dict[str, Any]]) -> dict[str, Any]:
    """The last summary line; a run killed before it wrote one is summed up from its last sample."""
    sums = [e for e in events if e["ev"] == "summary"]
    if sums:
        return sums[-1]
    samples = [e for e in events if e["ev"] == "sample"]
    if not samples:
        raise LogError(f"{path}: rank {events[0]['rank']} has neither a summary nor a sample line: nothing to report")
    s = samples[-1]
    # the summary's own rule (after the first batch), from the steady figures each sample carries;
    # no interval: a sample line holds totals, not the per-batch times the rule needs
    loop = float(s.get("steady_s") or 0)
    return {
        "steps": s.get("step", 0),
        "videos": s.get("videos", 0),
        "videos_per_s": (float(s.get("steady_videos") or 0) / loop) if loop > 0 else None,
        "wait_fraction": (float(s.get("steady_wait_s") or 0) / loop) if loop > 0 else None,
        "findings": [e for e in events if e["ev"] == "finding"],
        "partial": True,
    }


def _pct(x: Any) -> str:
    return "?" if x is None else f"{float(x):.0%}"


def _rate(vps: Any, interval: Any) -> str:
    """A rate with its 95 % interval as recorded: ``81.6 [78.3, 82.1]`` (the batch-means interval need
    not be symmetric about the rate); ``81.6 [no interval]`` when the run was too short for one."""
    if vps is None:
        return "—"
    iv = interval_of(interval)
    return f"{float(vps):.1f} [{iv[0]:.1f}, {iv[1]:.1f}]" if iv else f"{float(vps):.1f} [no interval]"


def _start_line(s: dict[str, Any]) -> str | None:
    """What the loop's first batch cost, the watch's share of it, and the TMPDIR baseline's cost."""
    first = s.get("first_batch_s")
    if first is None:
        return None
    text = f"first batch: {first:.2f} s from the loop's first next()"
    if s.get("watch_start_s") is not None:
        text += f", of which the watch's start-up {s['watch_start_s'] * 1000:.1f} ms"
    if s.get("tmp_baseline_entries") is not None:
        text += (
            f"; TMPDIR baseline: {s['tmp_baseline_entries']} entries walked in {s.get('tmp_baseline_s') or 0:.2f} s "
            f"by the {s.get('tmp_baseline_thread', '?')} thread"
        )
        cut = s.get("tmp_baseline_cut")
        if cut:
            text += f", cut off ({cut}): TMPDIR growth not measured"
    return text


def render(log_path: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> Path:
    """Write ``watch.md`` (a summary section) and ``watch.png`` into ``out_dir``; returns the .md path."""
    path = Path(log_path)
    events = read_log(path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ranks = _by_rank(events)
    lines = [f"## Watched training run: `{path.name}`", ""]
    for rank, evs in ranks.items():
        s = _summary(path, evs)
        start = next((e for e in evs if e["ev"] == "start"), {})
        cfg = start.get("config", s.get("config", {}))
        head = f"### rank {rank}" + (f" — {start.get('name')}" if start.get("name") else "")
        lines += [head, ""]
        if cfg:
            lines.append(
                "config: "
                + ", ".join(
                    f"{k}={cfg.get(k)}"
                    for k in ("batch_size", "num_workers", "prefetch_factor", "sharing_strategy")
                    if k in cfg
                )
            )
            lines.append("")
        vps = s.get("videos_per_s")
        lines += [
            "| steps | videos/s | wait fraction | RSS peak | /dev/shm peak | fds peak |",
            "|---|---|---|---|---|---|",
            f"| {s.get('steps')} | {_rate(vps, s.get('videos_per_s_interval'))} | "
            f"{_pct(s.get('wait_fraction'))} | "
            f"{fmt_bytes(s.get('rss_peak_bytes'))} | {fmt_bytes(s.get('shm_peak_bytes'))} | "
            f"{s.get('fds_peak', '?')} |",
            "",
        ]
        start_line = _start_line(s)
        if start_line:
            lines += [start_line, ""]
        if s.get("partial"):
            lines += ["(no summary line: the run ended before the watch did; figures from the last sample)", ""]
        found = s.get("findings") or []
        if not found:
            lines += ["No findings: the data side kept up and no resource grew.", ""]
        for f in found:
            tag = " (the loader raised)" if f.get("failure") else ""
            lines += [
                f"- **{f.get('kind')}** at step {f.get('step')}{tag}: {f.get('detail')}",
                f"  - remedy: {f.get('remedy')}",
            ]
        lines.append("")
    png = out / "watch.png"
    _plot(ranks, png)
    lines += [f"![watch]({png.name})", ""]
    md = out / "watch.md"
    write_atomic_bytes(md, ("\n".join(lines) + "\n").encode())
    return md


def _plot(ranks: dict[int, list[dict[str, Any]]], png: Path) -> None:
    # the report's own figure (Agg canvas, no pyplot): the caller's backend and figures are untouched
    fig = new_figure(figsize=(8, 7))
    axes = fig.subplots(3, 1, sharex=True)
    for rank, evs in ranks.items():
        smp = [e for e in evs if e["ev"] == "sample"]
        x = [e.get("step", 0) for e in smp]
        lab = f"rank {rank}"
        axes[0].plot(
            x, [e.get("wait_fraction") if e.get("wait_fraction") is not None else float("nan") for e in smp], label=lab
        )
        axes[1].plot(x, [(e.get("rss") or 0) / GiB for e in smp], label=lab)
        axes[2].plot(x, [(e.get("shm_used") or 0) / MiB for e in smp], label=lab)
        for f in (e for e in evs if e["ev"] == "finding"):
            for ax in axes:
                ax.axvline(f.get("step", 0), color="red" if f.get("failure") else "orange", ls="--", lw=0.8)
            axes[0].annotate(str(f.get("kind")), (f.get("step", 0), 1.0), rotation=90, fontsize=7, va="top")
    axes[0].axhline(DATA_BOUND_FRACTION, color="grey", lw=0.6, ls=":")
    axes[0].set_ylabel("wait fraction")
    axes[0].set_ylim(0, 1.05)
    axes[1].set_ylabel("RSS (GiB)")
    axes[2].set_ylabel("/dev/shm used (MiB)")
    axes[2].set_xlabel("step")
    if len(ranks) > 1:
        axes[0].legend(fontsize=7)
    save_png(fig, png)


def _norm(cfg: dict[str, Any]) -> dict[str, Any]:
    c = dict(cfg)
    w = int(c.get("num_workers") or 0)
    c["prefetch_factor"] = effective_prefetch(w, c.get("prefetch_factor")) or None  # as the watch records it
    return c


def _match(path: Path, cfg: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, Any]:
    """The stress run of the watched config to compare one rank with: a single loader (a
    ``distributed`` record's rate is the node's, the sum over its ranks), the sustained or validate
    run first, else a short one (quick, tune, limits)."""
    want = _norm(cfg)
    same = [
        Run(cast(RunRecord, r))
        for r in results
        if all(
            _norm(r.get("config") or {}).get(k) == want.get(k)
            for k in MATCH_KEYS
            if k in want and k in (r.get("config") or {})
        )
    ]
    hits = [r.rec for r in sustained_ok(same) or short_ok(same)]
    if not hits:
        seen = sorted({", ".join(f"{k}={(r.get('config') or {}).get(k)}" for k in MATCH_KEYS) for r in results})
        raise ResultsError(
            f"{path}: no passed stress run has the watched config ("
            + ", ".join(f"{k}={want.get(k)}" for k in MATCH_KEYS)
            + f"); runs there: {seen or 'none'}. "
            "Stress-test the training's config first (e.g. pytest -m sustained with the same batch size and "
            "workers), or pass the run folder that holds it"
        )
    return dict(hits[-1])


def _quantity(run: Mapping[str, Any]) -> str:
    """What the two rates are: the watch's is videos over the watched loop's wall time; so is a stress run's
    that records ``wait_fraction`` (report.compare.rate_definition's rule, for one record). An older record's
    is videos over its summed waits: not the same quantity, and said so."""
    if "wait_fraction" in (run.get("metrics") or {}):
        return "both are videos over the loop's wall time, the rate the loop received"
    return (
        "not like with like: the watch's is videos over the loop's wall time, the stress run's videos over its "
        "summed waits (its records carry no wait_fraction); rerun the stress test to compare"
    )


def compare_with_run(log_path: str | os.PathLike[str], run_dir: str | os.PathLike[str]) -> str:
    """One line per rank: the rate training received against the stress run of the same config."""
    path = Path(log_path)
    results_file = read_results(run_dir)
    rpath = Path(run_dir) / "results.json" if Path(run_dir).is_dir() else Path(run_dir)
    out = []
    for rank, evs in _by_rank(read_log(path)).items():
        s = _summary(path, evs)
        start = next((e for e in evs if e["ev"] == "start"), {})
        cfg = start.get("config") or s.get("config") or {}
        run = _match(rpath, cfg, [dict(r) for r in results_file.get("results") or []])
        stress = float(run["metrics"]["videos_per_s"])
        stress_iv = run["metrics"].get("videos_per_s_interval")
        got, wf = s.get("videos_per_s"), s.get("wait_fraction")
        if got is None:
            out.append(f"rank {rank}: too few steps to compare (the watched loop received {s.get('steps')} batches)")
            continue
        bound = (
            "data-bound: the loop waited for data "
            if wf is not None and wf > DATA_BOUND_FRACTION
            else "step-bound: the loop waited for data only "
        )
        step = float(run.get("step_s") or 0.0)
        line = (
            f"rank {rank}: training received {got / stress * 100:.0f} % of the stress-test rate "
            f"({_rate(got, s.get('videos_per_s_interval'))} of {_rate(stress, stress_iv)} videos/s, "
            f"stress run {run.get('label') or run.get('id')}, {run.get('kind', '?')}"
            + (f" with --step-time {step * 1000:.0f} ms" if step else "")
            + f"; {_quantity(run)}): it is {bound}{_pct(wf)} of the time (threshold {DATA_BOUND_FRACTION:.0%})"
        )
        if got > stress * FASTER_THAN_STRESS:
            # the same loader settings cannot outrun their own stress rate by this much: other data
            # (smaller clips, fewer videos) or another machine was measured on one side
            line += (
                "; more than the stress run measured: check that it decoded the training's dataset "
                "(same clips and transforms) on this machine"
            )
        out.append(line)
    if (bd := breakdown_line(results_file)) is not None:  # why the stress run's rate is what it is
        out.append(bd)
    return "\n".join(out)
