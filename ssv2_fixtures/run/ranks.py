"""The record of a torchrun child: the metrics core of :mod:`.record`, extended with one row per local
rank, node totals, the failing rank (:func:`~.watchdog.failing_rank`) and the epoch coverage checks
(DistributedSampler's rule, :func:`~.launch.coverage`). See NOTE [a torchrun child] in runner.py.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from .launch import Launch, coverage, rank_rows, subtree, subtree_peaks, torchrun_failures
from .outcome import Evidence, classify, signame
from .record import TAIL_CHARS, RunFacts, base_record, core_metrics, json_safe, read_tail
from .schema import Metrics, OutcomeRecord, RunRecord
from .stats import NODE_METHOD, sum_intervals
from .watchdog import Culprit, failing_rank, rank_state, run_passed, split_exit

Row = dict[str, Any]


def rank_log(work: Path, local_rank: int | None, stream: str = "stderr") -> Path | None:
    """A rank's own stdout/stderr file (torchrun ``--log-dir``/``--redirects``), the latest attempt."""
    if local_rank is None:
        return None
    found = sorted((work / "ranks").glob(f"*/attempt_*/{int(local_rank)}/{stream}.log"))
    return found[-1] if found else None


def _rows(run: RunFacts, launch: Launch, failures: Sequence[dict[str, Any]]) -> list[Row]:
    """One row per local rank that reported, and one for each rank torchrun says failed before it
    could report anything."""
    rows = rank_rows(run.events, run.monitor.samples, run.monitor.parents, run.config.num_workers)
    by_rank = {row["rank"]: row for row in rows}
    for f in failures:
        if f["rank"] not in by_rank and f["host"] and len(by_rank) < launch.nproc_per_node:
            by_rank[f["rank"]] = {
                "rank": f["rank"],
                "local_rank": f["local_rank"],
                "node_rank": launch.node_rank,
                "pid": f["pid"],
                "finished": False,
                "batches": 0,
                "videos": 0,
                "waits_s": [],
            }
    return [by_rank[r] for r in sorted(by_rank)]


def _outcome(
    run: RunFacts,
    launch: Launch,
    culprit: Culprit,
    rows: Sequence[Row],
    failures: Sequence[dict[str, Any]],
    agent_err: str,
) -> OutcomeRecord:
    err = run.of("error")
    ev = Evidence(
        exit_code=culprit.exit_code,
        exit_signal=culprit.exit_signal,
        batches_done=culprit.batches_done,
        watchdog=run.fired if culprit.source == "watchdog" else None,
        error=err[0] if culprit.source == "error" else None,
        config=run.config.to_dict(),
        facts=run.facts,
    )
    row = next((r for r in rows if r["rank"] == culprit.rank), None)
    log = rank_log(run.work, row.get("local_rank") if row else None)
    ev.stderr_tail = (read_tail(log, TAIL_CHARS) if log else "") + "\n" + agent_err[-2000:]
    outcome = classify(ev)
    if culprit.rank is not None:
        outcome["evidence"].update(
            rank=culprit.rank,
            local_rank=row.get("local_rank") if row else None,
            node_rank=row.get("node_rank") if row else launch.node_rank,
        )
        outcome["message"] = f"rank {culprit.rank}: {outcome['message']}"
    if failures:
        outcome["evidence"]["failed_ranks"] = list(failures)
    if culprit.source == "agent" and run.returncode not in (0, None):
        outcome["message"] = f"torchrun: {outcome['message']}"
    return outcome


def _finish_rows(
    run: RunFacts,
    rows: Sequence[Row],
    failures: Sequence[dict[str, Any]],
    culprit: Culprit | None,
    outcome: OutcomeRecord | None,
) -> None:
    """Each row's exit (torchrun's summary), state, outcome and note; the stderr of a rank that did
    not finish."""
    fail_of = {f["rank"]: f for f in failures}
    err = run.of("error")
    failed_rank = culprit.rank if culprit else None
    for row in rows:
        r = row["rank"]
        f = fail_of.get(r)
        if f is not None:
            code, sig = split_exit(int(f["exitcode"]))
            row["exit"] = {"code": code, "signal": signame(sig) if sig is not None else None}
        state, kind, note = rank_state(
            r,
            bool(row.get("finished")),
            [e for e in err if e.get("rank") == r],
            failed_rank,
            outcome["kind"] if outcome else None,
        )
        row["state"], row["outcome"] = state, kind
        if note is not None:
            row["note"] = note
        if state != "finished":
            log = rank_log(run.work, row.get("local_rank"))
            if log is not None:
                row["stderr_tail"] = read_tail(log, TAIL_CHARS)[-1500:]


def node_metrics(run: RunFacts, launch: Launch, rows: Sequence[Row]) -> Metrics:
    """The metrics core over every rank's batches, with node totals: ``batches`` is the least any
    local rank received, ``videos`` and ``videos_per_s`` are summed (the ranks load at once), start-up
    and loop time are the slowest rank's. The node's interval is :func:`~.stats.sum_intervals` of the ranks'
    (each rank's from its own batches; absent unless every rank has one)."""
    m: dict[str, Any] = dict(core_metrics(run))
    for k in (
        "videos_per_s",
        "frames_per_s",
        "videos_per_s_interval",
        "interval_batches",
        "interval_method",
        "startup_s",
        "first_batch_s",
        "loop_s",
    ):
        m.pop(k, None)  # the merged stream's values: replaced by node totals below
    m["batches"] = min((int(r.get("batches", 0)) for r in rows), default=0)
    m["videos"] = sum(int(r.get("videos", 0)) for r in rows)
    m.update(
        batches_total=sum(int(r.get("batches", 0)) for r in rows),
        ranks=launch.nproc_per_node,
        world_size=launch.world_size,
        procs_expected=launch.nproc_per_node * (1 + run.config.num_workers),
    )
    rates = [float(r["videos_per_s"]) for r in rows if r.get("videos_per_s")]
    if rates:
        m["videos_per_s"] = sum(rates)
        m["frames_per_s"] = m["videos_per_s"] * int(run.dataset.get("num_frames", 16))
        m.update(rank_videos_per_s_min=min(rates), rank_videos_per_s_max=max(rates))
    ivs = [r["videos_per_s_interval"] for r in rows if r.get("videos_per_s_interval")]
    if rows and len(ivs) == len(rows) == len(rates):
        m["videos_per_s_interval"] = list(sum_intervals(rates, [(float(a), float(b)) for a, b in ivs]))
        m["interval_batches"] = sum(int(r.get("interval_batches", 0)) for r in rows)
        m["interval_method"] = NODE_METHOD
    for key in ("startup_s", "first_batch_s", "loop_s"):
        vals = [float(r[key]) for r in rows if r.get(key) is not None]
        if vals:
            m[key] = max(vals)
    rank_pids: set[int] = set()
    for row in rows:
        if row.get("pid") is not None:
            rank_pids |= subtree(run.monitor.parents, int(row["pid"]))
    peaks = subtree_peaks(run.monitor.samples, rank_pids)
    if peaks is not None:
        m["rank_rss_peak_bytes"], m["rank_procs_peak"] = peaks
    err = run.of("error")
    if err:
        m["teardown_s"] = max(0.0, run.t_exit - float(err[0]["t"]))  # first error → torchrun gone
    return cast(Metrics, m)


def coverage_verdicts(run: RunFacts, rows: Sequence[Row], dist: dict[str, Any]) -> list[dict[str, Any]]:
    """``ranks_finished`` and ``epoch_coverage`` (DistributedSampler's rule on the gathered indices);
    adds ``coverage`` and ``dataset_len`` to ``dist``."""
    local = len(rows) if rows else 0
    done = [r for r in rows if r.get("finished")]
    out: list[dict[str, Any]] = [
        {
            "name": "ranks_finished",
            "ok": len(done) == local,
            "detail": f"{len(done)} of {local} local rank(s) finished {run.batches} batches each",
        }
    ]
    ready = run.of("ready")
    n = int(ready[0]["dataset_len"]) if ready else 0
    try:
        indices = json.loads((run.work / "indices.json").read_text())
    except (OSError, ValueError):
        indices = None
    if indices is None or not n:
        out.append(
            {
                "name": "epoch_coverage",
                "ok": False,
                "detail": "no gathered indices were written (local rank 0 writes indices.json)",
            }
        )
        return out
    checks = coverage(indices, n, run.config.batch_size, run.config.drop_last)
    dist["coverage"], dist["dataset_len"] = checks, n
    complete = [c for c in checks if c["complete"]]
    bad = [c for c in checks if not c["ok"]]
    out.append(
        {
            "name": "epoch_coverage",
            "ok": not bad and bool(checks),
            "complete_epochs": len(complete),
            "epochs": len(checks),
            "detail": "; ".join(c["detail"] for c in (bad or checks))[:1500],
        }
    )
    return out


def rank_record(run: RunFacts, launch: Launch) -> RunRecord:
    """The record of a torchrun child (NOTE [a torchrun child] in runner.py)."""
    agent_err = read_tail(run.work / "stderr.txt")
    failures = torchrun_failures(agent_err)
    rows = _rows(run, launch, failures)
    err = run.of("error")
    all_finished = len(rows) == launch.nproc_per_node and all(r.get("finished") for r in rows)
    passed = run_passed(
        fired=run.fired,
        returncode=run.returncode,
        finished=all_finished,
        errors=len(err),
        batches=[int(r.get("batches", 0)) for r in rows],
        wanted=run.batches,
    )
    culprit: Culprit | None = None
    outcome: OutcomeRecord | None = None
    if not passed:
        culprit = failing_rank(
            run.fired, err, failures, {r["rank"]: int(r.get("batches", 0)) for r in rows}, run.returncode
        )
        outcome = _outcome(run, launch, culprit, rows, failures, agent_err)
    _finish_rows(run, rows, failures, culprit, outcome)
    dist: dict[str, Any] = {**launch.to_dict(), "failed_ranks": failures}
    verdicts = coverage_verdicts(run, rows, dist) if passed else []
    rec = base_record(
        run,
        passed=passed,
        outcome=outcome,
        metrics=node_metrics(run, launch, rows),
        waits=[float(w) for w in (rows[0].get("waits_s", []) if rows else [])],
        verdicts=verdicts,
    )
    rec["ranks"] = json_safe(rows)
    rec["distributed"] = json_safe(dist)
    return rec


__all__ = ["rank_record", "node_metrics", "coverage_verdicts", "rank_log"]
