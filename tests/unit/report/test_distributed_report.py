"""ssv2_fixtures.report.distributed: the *Distributed runs* section."""

from __future__ import annotations

from typing import Any


def test_distributed_processes_are_the_ranks_reports_not_the_sampled_peak() -> None:
    from ssv2_fixtures.report.distributed import _reported_procs
    from ssv2_fixtures.report.model import runs_of

    rec: dict[str, Any] = {
        "kind": "distributed",
        "label": "bs4-w2-pf2",
        "status": "passed",
        "config": {"num_workers": 2},
        "metrics": {"rank_procs_peak": 4, "procs_expected": 6},
        "ranks": [{"rank": 0, "workers_started": 2}, {"rank": 1, "workers_started": 2}],
    }
    (run,) = runs_of([rec])  # type: ignore[list-item]
    assert _reported_procs(run) == "6"  # 2 × (1 + 2), though the sampler saw only 4
    del rec["ranks"][1]["workers_started"]
    (run,) = runs_of([rec])  # type: ignore[list-item]
    assert _reported_procs(run) == "4 (sampled)"
