"""ranks.py: the torchrun fold as pure functions over recorded events — one row per rank, node totals, the
failing rank and the coverage verdicts, from a RunFacts built by hand (no torchrun, no processes)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssv2_fixtures.data.loader import LoaderConfig
from ssv2_fixtures.run.launch import Launch
from ssv2_fixtures.run.monitor import Peaks, Sample
from ssv2_fixtures.run.ranks import node_metrics, rank_log, rank_record
from ssv2_fixtures.run.record import RunFacts

PID = {0: 1000, 1: 2000}


@dataclass
class FakeMonitor:
    """What the fold reads of a TreeMonitor: its samples, the parents it saw, its peaks."""

    samples: list[Sample] = field(default_factory=list)
    parents: dict[int, int] = field(default_factory=dict)
    peaks: Peaks = field(default_factory=Peaks)
    seen: dict[int, float] = field(default_factory=dict)
    shm_baseline: int = 0  # /dev/shm in use before the run (the full-queue hold counts above it)

    def series(self) -> dict[str, list[Any]]:
        return {}


def _rank_events(
    rank: int,
    waits: list[float],
    *,
    videos: int = 2,
    finished: bool = True,
    t0: float = 100.0,
    workers: list[list[int]] | None = None,
) -> list[dict[str, Any]]:
    """A rank's events; ``workers``: the pids of each iterator's workers, reported before batch 0, 2, ...
    (one iterator per epoch of 2 batches)."""
    out: list[dict[str, Any]] = [
        {"ev": "started", "rank": rank, "local_rank": rank, "node_rank": 0, "pid": PID[rank], "t": t0},
        {"ev": "ready", "rank": rank, "dataset_len": 8, "epoch_batches": 2, "epoch_samples": 4, "t": t0 + 0.5},
    ]
    t = t0 + 1.0
    for i, w in enumerate(waits):
        t += w
        out.append({"ev": "batch", "rank": rank, "i": i, "t": t, "wait_s": w, "videos": videos})
        if workers and i % 2 == 0 and i // 2 < len(workers):
            out.append({"ev": "workers", "rank": rank, "pids": workers[i // 2], "t": t})
    if finished:
        out.append({"ev": "finished", "rank": rank, "loop_s": t - t0, "epochs": 1, "t": t})
    return out


def _facts(
    work: Path,
    events: list[dict[str, Any]],
    *,
    returncode: int | None = 0,
    batches: int = 4,
    monitor: FakeMonitor | None = None,
    config: LoaderConfig | None = None,
) -> RunFacts:
    return RunFacts(
        config=config or LoaderConfig(batch_size=2, num_workers=0),
        dataset={"num_frames": 4},
        batches=batches,
        fault=None,
        sandbox=None,
        mem_mode=None,
        limits={},
        events=events,
        fired=None,
        stuck=None,
        returncode=returncode,
        monitor=monitor or FakeMonitor(),
        work=work,
        leaked={},
        facts={},
        started_at="2026-01-01T00:00:00+00:00",
        wall_s=5.0,
        name="t",
        t_exit=110.0,
    )


def _indices(work: Path, per_rank: dict[int, list[int]]) -> None:
    (work / "indices.json").write_text(
        json.dumps({"world_size": len(per_rank), "ranks": [{"rank": r, "epochs": [v]} for r, v in per_rank.items()]})
    )


def test_two_finished_ranks_fold_into_node_totals(tmp_path: Path) -> None:
    events = _rank_events(0, [0.5, 0.1, 0.1, 0.1]) + _rank_events(1, [0.4, 0.2, 0.2, 0.2, 0.2])
    _indices(tmp_path, {0: [0, 2, 4, 6], 1: [1, 3, 5, 7]})
    rec = rank_record(_facts(tmp_path, events), Launch(nproc_per_node=2))
    assert rec["status"] == "passed" and rec["outcome"] is None
    rows = rec["ranks"]
    assert [r["rank"] for r in rows] == [0, 1] and all(r["state"] == "finished" for r in rows)
    m = rec["metrics"]
    assert m["batches"] == 4 and m["batches_total"] == 9  # the least any rank received; and all of them
    assert m["videos"] == 18 and m["ranks"] == 2 and m["world_size"] == 2
    # the ranks load at once: the node's rate is the sum of the ranks' own rates
    assert m["videos_per_s"] == pytest.approx(sum(r["videos_per_s"] for r in rows))
    assert m["rank_videos_per_s_min"] <= m["rank_videos_per_s_max"]
    verdicts = {v["name"]: v for v in rec["verdicts"]}
    assert verdicts["ranks_finished"]["ok"] and verdicts["epoch_coverage"]["ok"]
    assert rec["distributed"]["dataset_len"] == 8


def test_a_rank_missing_from_the_gathered_indices_fails_coverage(tmp_path: Path) -> None:
    events = _rank_events(0, [0.1] * 4) + _rank_events(1, [0.1] * 4)
    _indices(tmp_path, {0: [0, 2, 4, 6], 1: [1, 3, 5, 5]})  # a repeat where the rule wants index 7
    rec = rank_record(_facts(tmp_path, events), Launch(nproc_per_node=2))
    cov = next(v for v in rec["verdicts"] if v["name"] == "epoch_coverage")
    assert not cov["ok"] and "rule says" in cov["detail"]


def test_no_indices_file_is_a_failed_coverage_verdict_that_says_so(tmp_path: Path) -> None:
    events = _rank_events(0, [0.1] * 4) + _rank_events(1, [0.1] * 4)
    rec = rank_record(_facts(tmp_path, events), Launch(nproc_per_node=2))
    cov = next(v for v in rec["verdicts"] if v["name"] == "epoch_coverage")
    assert not cov["ok"] and "indices.json" in cov["detail"]


def test_the_first_rank_to_report_an_error_is_charged_and_the_other_is_ended(tmp_path: Path) -> None:
    err = {
        "ev": "error",
        "rank": 1,
        "batch": 2,
        "t": 105.0,
        "type": "RuntimeError",
        "message": "injected fault at batch 2",
    }
    events = _rank_events(0, [0.1] * 3, finished=False) + _rank_events(1, [0.1] * 2, finished=False) + [err]
    rec = rank_record(_facts(tmp_path, events, returncode=1), Launch(nproc_per_node=2))
    assert rec["status"] == "failed" and rec["verdicts"] == []
    assert rec["outcome"] is not None and rec["outcome"]["message"].startswith("rank 1: ")
    assert rec["outcome"]["evidence"]["rank"] == 1
    states = {r["rank"]: (r["state"], r.get("note")) for r in rec["ranks"]}
    assert states[1][0] == "failed"
    assert states[0][0] == "ended" and "after rank 1 failed" in states[0][1]
    assert rec["metrics"]["teardown_s"] == pytest.approx(110.0 - 105.0)  # first error → torchrun gone


def test_a_rank_killed_before_it_reported_gets_a_row_from_torchruns_summary(tmp_path: Path) -> None:
    (tmp_path / "stderr.txt").write_text(
        "Root Cause (first observed failure):\n[0]:\n  time      : 2026-11-29_08:49:22\n"
        "  host      : node\n  rank      : 1 (local_rank: 1)\n  exitcode  : -9 (pid: 2000)\n"
    )
    events = _rank_events(0, [0.1] * 2, finished=False)
    rec = rank_record(_facts(tmp_path, events, returncode=1), Launch(nproc_per_node=2))
    rows = {r["rank"]: r for r in rec["ranks"]}
    assert set(rows) == {0, 1}
    assert rows[1]["batches"] == 0 and rows[1]["exit"] == {"code": None, "signal": "SIGKILL"}
    assert rows[1]["state"] == "failed" and rec["outcome"]["message"].startswith("rank 1: ")
    assert rec["distributed"]["failed_ranks"][0]["rank"] == 1


@settings(max_examples=30, deadline=None)
@given(
    rss=st.lists(st.tuples(st.integers(1, 10**9), st.integers(1, 10**9), st.integers(1, 10**9)), min_size=1, max_size=6)
)
def test_rank_peaks_count_only_the_ranks_subtrees(rss: list[tuple[int, int, int]]) -> None:
    """Per sample: rank 0's main (1000), its worker (1001) and an unrelated process (9999)."""
    samples = [
        Sample(
            t=float(i),
            rss=0,
            pss=0,
            uss=0,
            shm_used=0,
            shm_files=0,
            fds=0,
            threads=0,
            procs=3,
            tmp_files=0,
            tmp_bytes=0,
            per_process=[(1000, "python", a), (1001, "pt_worker", b), (9999, "other", c)],
        )
        for i, (a, b, c) in enumerate(rss)
    ]
    mon = FakeMonitor(samples=samples, parents={1000: 1, 1001: 1000, 9999: 1})
    run = _facts(Path("/nonexistent"), _rank_events(0, [0.1, 0.1]), monitor=mon)
    rows = [{"rank": 0, "pid": 1000, "batches": 2, "videos": 4}]
    m = node_metrics(run, Launch(nproc_per_node=1), rows)
    assert m["rank_procs_peak"] == 2
    assert m["rank_rss_peak_bytes"] == max(a + b for a, b, _ in rss)


def test_rank_log_is_the_latest_attempt_of_that_local_rank(tmp_path: Path) -> None:
    for attempt in (0, 1):
        d = tmp_path / "ranks" / "job" / f"attempt_{attempt}" / "1"
        d.mkdir(parents=True)
        (d / "stderr.log").write_text(f"attempt {attempt}")
    log = rank_log(tmp_path, 1)
    assert log is not None and log.read_text() == "attempt 1"
    assert rank_log(tmp_path, 0) is None and rank_log(tmp_path, None) is None


def test_rows_carry_the_workers_each_rank_reported_and_the_node_check_counts_them(tmp_path: Path) -> None:
    """Rank 0 reports two iterators (two epochs, new workers each), rank 1 one; no monitor samples at all:
    the node-totals check still counts 2 × (1 + 1) from the ranks' own reports."""
    from ssv2_fixtures.stress.distributed import node_totals

    events = _rank_events(0, [0.1] * 4, workers=[[1001], [1002]]) + _rank_events(1, [0.1] * 4, workers=[[2001]])
    _indices(tmp_path, {0: [0, 2, 4, 6], 1: [1, 3, 5, 7]})
    cfg = LoaderConfig(batch_size=2, num_workers=1)
    rec = rank_record(_facts(tmp_path, events, config=cfg), Launch(nproc_per_node=2))
    rows = {r["rank"]: r for r in rec["ranks"]}
    assert rows[0]["worker_pids"] == [1002] and rows[0]["workers_started"] == 1  # the latest iterator's
    assert rows[1]["worker_pids"] == [2001] and rows[1]["workers_started"] == 1
    assert "rank_procs_peak" not in rec["metrics"]  # nothing sampled
    v = node_totals(rec, cfg, 2)
    assert v["ok"] and "4 loader processes reported by 2 of 2 rank(s)" in v["detail"], v["detail"]
    # a rank whose loader started fewer workers than the config asks is caught from its own report
    short = _rank_events(0, [0.1] * 4, workers=[[]]) + _rank_events(1, [0.1] * 4, workers=[[2001]])
    bad = node_totals(rank_record(_facts(tmp_path, short, config=cfg), Launch(nproc_per_node=2)), cfg, 2)
    assert not bad["ok"] and "(1 + 0) + (1 + 1)" in bad["detail"], bad["detail"]


def test_subtree_peaks_is_the_most_one_sample_held_and_none_without_samples() -> None:
    from ssv2_fixtures.run.launch import subtree_peaks

    def sample(per: list[tuple[int, str, int]]) -> Sample:
        return Sample(
            t=0.0,
            rss=0,
            pss=0,
            uss=0,
            shm_used=0,
            shm_files=0,
            fds=0,
            threads=0,
            procs=len(per),
            tmp_files=0,
            tmp_bytes=0,
            per_process=per,
        )

    samples = [sample([(1, "a", 5), (2, "b", 7), (3, "c", 100)]), sample([(1, "a", 9)])]
    assert subtree_peaks(samples, {1, 2}) == (12, 2)  # (5 + 7) beats 9; two processes in the first
    assert subtree_peaks([], {1}) is None and subtree_peaks(samples, set()) is None
