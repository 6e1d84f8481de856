"""The node-totals verdict of ``-m distributed`` on recorded rank rows (no processes)."""
from __future__ import annotations

from ssv2_fixtures.data.loader import LoaderConfig
from ssv2_fixtures.stress.distributed import node_totals

CFG = LoaderConfig(batch_size=4, num_workers=2)


def _rec(videos=(40, 40), total=80, peak=6, expected=6):
    return {"metrics": {"videos": total, "rank_procs_peak": peak, "procs_expected": expected},
            "ranks": [{"videos": v} for v in videos]}


def test_totals_that_add_up_pass() -> None:
    v = node_totals(_rec(), CFG, 2)
    assert v["name"] == "node_totals" and v["ok"] is True
    assert "80 videos (= 40 + 40)" in v["detail"]


def test_each_wrong_total_is_named() -> None:
    assert "videos" in node_totals(_rec(total=81), CFG, 2)["detail"]
    missing = node_totals(_rec(videos=(40,), total=40), CFG, 2)
    assert not missing["ok"] and "ranks reported" in missing["detail"]
    extra = node_totals(_rec(peak=7), CFG, 2)
    assert not extra["ok"] and "processes" in extra["detail"]
    assert not node_totals(_rec(peak=None), CFG, 2)["ok"]


def test_file_system_may_add_one_process_per_rank() -> None:
    fs = LoaderConfig(batch_size=4, num_workers=2, sharing_strategy="file_system")
    assert node_totals(_rec(peak=8), fs, 2)["ok"]
    assert not node_totals(_rec(peak=9), fs, 2)["ok"]
