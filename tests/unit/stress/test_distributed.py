"""The node-totals verdict of ``-m distributed`` on recorded rank rows (no processes), and its lines."""

from __future__ import annotations

from typing import Any

from ssv2_fixtures.data.loader import LoaderConfig
from ssv2_fixtures.stress.distributed import DistributedResult, node_totals

CFG = LoaderConfig(batch_size=4, num_workers=2)


def _rec(videos=(40, 40), total=80, peak: int | None = 6, workers: Any = (2, 2)) -> dict[str, Any]:
    """Rank rows as ``rank_rows`` writes them: ``workers_started`` from each rank's ``workers`` events
    (absent when the rank sent none)."""
    rows: list[dict[str, Any]] = [{"videos": v} for v in videos]
    for row, w in zip(rows, workers):
        if w is not None:
            row["workers_started"] = w
    metrics: dict[str, Any] = {"videos": total}
    if peak is not None:
        metrics["rank_procs_peak"] = peak
    return {"metrics": metrics, "ranks": rows}


def test_totals_that_add_up_pass() -> None:
    v = node_totals(_rec(), CFG, 2)
    assert v["name"] == "node_totals" and v["ok"] is True
    assert "80 videos (= 40 + 40)" in v["detail"]
    assert "6 loader processes reported by 2 of 2 rank(s) ((1 + 2) + (1 + 2))" in v["detail"], v["detail"]


def test_each_wrong_total_is_named() -> None:
    assert "videos" in node_totals(_rec(total=81), CFG, 2)["detail"]
    missing = node_totals(_rec(videos=(40,), total=40, workers=(2,)), CFG, 2)
    assert not missing["ok"] and "ranks reported" in missing["detail"]
    short = node_totals(_rec(workers=(2, 1)), CFG, 2)  # a rank's loader started 1 worker of 2
    assert not short["ok"] and "'processes'" in short["detail"]
    extra = node_totals(_rec(peak=7), CFG, 2)  # more at once than can exist: a leaked worker
    assert not extra["ok"] and "processes at peak" in extra["detail"]


def test_a_sampled_count_below_the_expected_is_no_failure() -> None:
    """Sampling misses short-lived workers: a low (or absent) peak says nothing against the ranks' reports."""
    for peak in (0, 3, None):
        v = node_totals(_rec(peak=peak), CFG, 2)
        assert v["ok"], v["detail"]
    assert "not sampled" in node_totals(_rec(peak=None), CFG, 2)["detail"]


def test_ranks_that_did_not_report_their_workers_are_not_observed_not_failed() -> None:
    v = node_totals(_rec(workers=(None, None)), CFG, 2)
    assert v["ok"] and "loader processes not observed" in v["detail"], v["detail"]
    part = node_totals(_rec(workers=(2, None)), CFG, 2)
    assert part["ok"] and "reported by 1 of 2 rank(s)" in part["detail"], part["detail"]


def test_file_system_may_add_one_process_per_rank() -> None:
    fs = LoaderConfig(batch_size=4, num_workers=2, sharing_strategy="file_system")
    assert node_totals(_rec(peak=8), fs, 2)["ok"]
    assert not node_totals(_rec(peak=9), fs, 2)["ok"]


class _Result:
    """What DistributedResult reads of a RunResult."""

    def __init__(self, metrics: dict[str, Any], rows: list[dict[str, Any]], passed: bool = True) -> None:
        self.metrics, self.passed, self.kind = metrics, passed, None
        self.record = {
            "label": "bs4-w2-pf2",
            "ranks": rows,
            "verdicts": [{"name": "node_totals", "ok": False, "detail": "x"}],
        }


def test_rates_are_printed_with_their_interval_and_a_dash_when_missing() -> None:
    rows = [{"videos_per_s": 10.0, "videos_per_s_interval": [9.0, 11.5]}, {}]
    r = _Result({"videos_per_s": 20.0, "videos_per_s_interval": [18.0, 22.0]}, rows)
    s = DistributedResult(r, None, 2).summary  # type: ignore[arg-type]
    assert "20.0 ± 2.0 videos/s on this node (per rank 10.0 ± 1.5, —)" in s, s
    bad = _Result({}, [], passed=False)
    base = _Result({"videos_per_s": 5.0}, [])
    why = DistributedResult(bad, base, 2).failure  # type: ignore[arg-type]
    assert why is not None and "passes with 1 rank (5.0 ±? videos/s)" in why, why
