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
from ..run.units import GiB, MiB, rate
from .plans import epoch_limit

if TYPE_CHECKING:
    from ..run.runner import RunResult
    from .campaign import Stress


def node_totals(rec: Any, config: LoaderConfig, nproc_per_node: int) -> dict[str, Any]:
    """Verdict ``node_totals``: every local rank reported, the node's videos are the ranks' sum, and the
    loader processes are ``ranks × (1 + workers)``.

    The processes are counted from what each rank reports of itself (its ``workers`` events: the worker
    pids of each DataLoader iterator), not from the monitor's samples, which miss a worker that lives
    shorter than the sampling interval. A rank that sent no such report leaves the count "not observed",
    which is no failure. The sampled peak can only miss processes, never invent them, so it is checked as
    an upper bound only: at most ``ranks × (1 + workers)``, plus one resource-sharing process per rank
    under ``file_system``."""
    n = nproc_per_node
    m = rec["metrics"]
    rows = rec.get("ranks", [])
    w = config.num_workers
    expected = n * (1 + w)
    started = [r.get("workers_started") for r in rows]
    told = [int(x) for x in started if x is not None]
    peak = m.get("rank_procs_peak")
    extra = n if config.sharing_strategy == "file_system" else 0
    sums = {
        "videos": sum(r["videos"] for r in rows) == m.get("videos"),
        "ranks reported": len(rows) == n,
        "processes": all(x == w for x in told),
        "processes at peak": peak is None or peak <= expected + extra,
    }
    ok = all(sums.values())
    if not told:
        procs = "loader processes not observed (no rank reported its workers)"
    else:
        procs = (
            f"{sum(1 + x for x in told)} loader processes reported by {len(told)} of {len(rows)} rank(s) "
            f"({' + '.join(f'(1 + {x})' for x in told)})"
        )
    return {
        "name": "node_totals",
        "ok": ok,
        "detail": f"{len(rows)} of {n} ranks reported, {m.get('videos')} videos "
        f"(= {' + '.join(str(r['videos']) for r in rows)}), {procs} for {n} × (1 + {w}) = "
        f"{expected}; {'not sampled' if peak is None else f'the samples caught {peak} at once'}"
        + ("" if ok else f"; wrong: {[k for k, good in sums.items() if not good]}"),
    }


def _rate(m: Any) -> str:
    """A record's (or rank row's) videos/s with its interval (``run.units.rate``: ``—`` without a rate)."""
    iv = m.get("videos_per_s_interval")
    return rate(m.get("videos_per_s"), (float(iv[0]), float(iv[1])) if iv else None)


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
            why += (
                "\n  the same config passes with 1 rank "
                f"({_rate(b.metrics)} videos/s): it fails because of the "
                f"{n} ranks sharing this node"
                if b.passed
                else f"\n  it fails with 1 rank too ({b.kind}): not a multi-rank effect"
            )
        return why

    @property
    def summary(self) -> str:
        m, rows = self.result.metrics, self.result.record.get("ranks", [])
        return (
            f"{self.result.record['label']} × {self.nproc_per_node} ranks: {_rate(m)} "
            f"videos/s on this node (per rank {', '.join(_rate(r) for r in rows)}), "
            f"RSS peak {m.get('rss_peak_bytes', 0) / GiB:.2f} GiB, "
            f"shm peak {m.get('shm_peak_bytes', 0) / MiB:.0f} MiB"
        )


def run(stress: Stress, config: LoaderConfig, requested_workers: int) -> DistributedResult:
    s = stress.settings
    launch = s.launch
    n = launch.nproc_per_node
    result = stress.run_distributed(
        config,
        s.batches,
        limit=epoch_limit(s.batches, config.batch_size, launch.world_size),
        live=True,
        requested_workers=requested_workers,
        checks=[lambda r: [node_totals(r.record, config, n)]],
    )
    stress.record(result)
    baseline = None
    # not after an injected drill (its cause is known) nor on several nodes (the runs pair up test by test)
    if not result.passed and n > 1 and launch.nnodes == 1 and result.record.get("fault") is None:
        baseline = stress.run_distributed(
            config,
            s.batches,
            nproc_per_node=1,
            limit=epoch_limit(s.batches, config.batch_size, 1),
            requested_workers=requested_workers,
        )
        stress.record(baseline)
    return DistributedResult(result, baseline, n)
