"""``-m distributed``: one config in every rank of a torchrun job, the node-totals check, and the 1-rank
baseline that says whether a failure is a multi-rank effect.

:func:`node_totals` is the pure check (the node's totals are the sum of its ranks); :func:`run` runs
the job through :class:`~ssv2_fixtures.stress.campaign.Stress`, with the check as one of its verdicts,
and the baseline when the N-rank run failed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..data.loader import LoaderConfig
from .plans import epoch_limit

if TYPE_CHECKING:
    from ..run.runner import RunResult
    from .campaign import Stress


def node_totals(rec: Any, config: LoaderConfig, nproc_per_node: int) -> dict[str, Any]:
    """Verdict ``node_totals``: every local rank reported, the node's videos are the ranks' sum, and the
    loader processes at peak are ``ranks × (1 + workers)`` (``file_system`` may add one resource-sharing
    process per rank)."""
    n = nproc_per_node
    m = rec["metrics"]
    rows = rec.get("ranks", [])
    peak = m.get("rank_procs_peak")
    expected = m.get("procs_expected")
    extra = n if config.sharing_strategy == "file_system" else 0
    sums = {"videos": sum(r["videos"] for r in rows) == m.get("videos"),
            "ranks reported": len(rows) == n,
            "processes": peak is not None and expected == n * (1 + config.num_workers) <= peak <= expected + extra}
    ok = all(sums.values())
    return {"name": "node_totals", "ok": ok,
            "detail": f"{len(rows)} of {n} ranks reported, {m.get('videos')} videos "
                      f"(= {' + '.join(str(r['videos']) for r in rows)}), {peak} loader "
                      f"processes at peak for {n} × (1 + {config.num_workers}) = {expected}"
                      + ("" if ok else f"; wrong: {[k for k, good in sums.items() if not good]}")}


@dataclass
class DistributedResult:
    result: RunResult
    baseline: RunResult | None
    nproc_per_node: int

    @property
    def failure(self) -> str | None:
        """Why the test fails (``None``: it passes)."""
        r, n = self.result, self.nproc_per_node
        if r.passed:
            return None
        if r.kind is None:  # every batch loaded, but a check failed
            bad = [v for v in r.record.get("verdicts", []) if not v["ok"]]
            why = f"{r.record['label']} × {n} ranks: " + "; ".join(f"{v['name']}: {v['detail']}" for v in bad)
        else:
            why = r.describe()
        b = self.baseline
        if b is not None:
            why += ("\n  the same config passes with 1 rank "
                    f"({b.metrics.get('videos_per_s', 0):.1f} videos/s): it fails because of the "
                    f"{n} ranks sharing this node" if b.passed else
                    f"\n  it fails with 1 rank too ({b.kind}): not a multi-rank effect")
        return why

    @property
    def summary(self) -> str:
        m, rows = self.result.metrics, self.result.record.get("ranks", [])
        return (f"{self.result.record['label']} × {self.nproc_per_node} ranks: {m.get('videos_per_s', 0):.1f} "
                f"videos/s on this node (per rank {', '.join(format(r.get('videos_per_s', 0), '.1f') for r in rows)}), "
                f"RSS peak {m.get('rss_peak_bytes', 0) / 2**30:.2f} GB, "
                f"shm peak {m.get('shm_peak_bytes', 0) / 2**20:.0f} MB")


def run(stress: Stress, config: LoaderConfig, requested_workers: int) -> DistributedResult:
    s = stress.settings
    launch = s.launch
    n = launch.nproc_per_node
    result = stress.run_distributed(
        config, s.batches, limit=epoch_limit(s.batches, config.batch_size, launch.world_size), live=True,
        requested_workers=requested_workers, checks=[lambda r: [node_totals(r.record, config, n)]])
    stress.record(result)
    baseline = None
    # not after an injected drill (its cause is known) nor on several nodes (the runs pair up test by test)
    if not result.passed and n > 1 and launch.nnodes == 1 and result.record.get("fault") is None:
        baseline = stress.run_distributed(config, s.batches, nproc_per_node=1,
                                          limit=epoch_limit(s.batches, config.batch_size, 1),
                                          requested_workers=requested_workers)
        stress.record(baseline)
    return DistributedResult(result, baseline, n)
