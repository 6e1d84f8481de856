"""The *Distributed runs* section of ``summary.md``: ``-m distributed`` runs (torchrun ranks × DataLoader
workers on one node), node totals per run and one row per rank, as the ranks recorded them."""

from __future__ import annotations

from collections.abc import Sequence

from ..run.units import fmt_bytes, rate
from .fmt import md_table, num, one_line, verdict_ok
from .model import Run, interval_of


def _reported_procs(r: Run) -> str:
    """Loader processes the ranks reported themselves (each rank + the workers it started); the sampled
    peak (``rank_procs_peak``, which a short run can undercount) only where no rank reported."""
    rows = r.rec.get("ranks") or []
    if rows and all("workers_started" in x for x in rows):
        return str(sum(1 + int(x["workers_started"]) for x in rows))
    peak = r.metrics.get("rank_procs_peak")
    return f"{peak} (sampled)" if peak is not None else "?"


def distributed_section(runs: Sequence[Run]) -> list[str]:
    """``-m distributed`` runs: node totals per run, then one row per rank."""
    out = [
        "Each rank is a training process with its own DataLoader workers, started by torchrun; the ranks of "
        "a node share its cores, RAM, /dev/shm and open files. *videos/s (node)* is the sum of the ranks' "
        "steady rates; processes count each rank and its workers (ranks × (1 + workers)).",
        "",
        "Node totals:",
        "",
    ]
    rows = []
    for r in runs:
        m, d = r.metrics, r.rec.get("distributed") or {}
        lo, hi = m.get("rank_videos_per_s_min"), m.get("rank_videos_per_s_max")
        cov = next((v for v in r.verdicts if v.get("name") == "epoch_coverage"), None)
        epochs = (
            "—"
            if cov is None
            else f"{cov.get('complete_epochs', '?')} complete of {cov.get('epochs', '?')}, "
            + ("rule holds" if verdict_ok(cov) else "**rule broken**")
        )
        finished = sum(1 for x in r.rec.get("ranks") or [] if x.get("state") == "finished")
        nodes = f" × {d['nnodes']} nodes (node {d.get('node_rank', '?')})" if (d.get("nnodes") or 1) > 1 else ""
        rows.append(
            [
                r.label,
                f"{r.ranks}{nodes}",
                f"{finished} of {r.ranks}",
                r.result,
                rate(r.vps, r.interval),
                f"{num(lo)}–{num(hi)}" if lo is not None else "—",
                f"{_reported_procs(r)} / {m.get('procs_expected', '?')}",
                fmt_bytes(m.get("rss_peak_bytes")),
                fmt_bytes(m.get("pss_peak_bytes")),
                fmt_bytes(m.get("shm_peak_bytes")),
                m.get("fds_peak", "?"),
                epochs,
            ]
        )
    out += md_table(
        [
            "config",
            "ranks",
            "finished",
            "result",
            "videos/s (node)",
            "videos/s per rank",
            "processes reported / expected",
            "RSS peak",
            "PSS peak",
            "shm peak",
            "fds peak",
            "epochs",
        ],
        rows,
    )
    out += ["", "Per rank:", ""]
    rows = []
    for r in runs:
        for x in r.rec.get("ranks") or []:
            what = x.get("outcome") or ("—" if x.get("state") == "finished" else one_line(x.get("note"), 120) or "—")
            v = x.get("videos_per_s")
            rows.append(
                [
                    r.label,
                    f"{r.ranks}",
                    x.get("rank", "?"),
                    x.get("state", "?"),
                    x.get("batches", "?"),
                    x.get("videos", "?"),
                    rate(v, interval_of(x.get("videos_per_s_interval"))) if v is not None else "—",
                    num(x.get("wait_ms_p50")),
                    fmt_bytes(x.get("rss_peak_bytes")),
                    what,
                ]
            )
    out += md_table(
        [
            "config",
            "ranks",
            "rank",
            "state",
            "batches",
            "videos",
            "videos/s",
            "wait p50 ms",
            "RSS peak (rank + its workers)",
            "outcome",
        ],
        rows,
    )
    return out
