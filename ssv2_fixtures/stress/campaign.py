"""What the stress tests do with a config: run it isolated, judge it, record it, feed pytest-benchmark.

The pytest wiring (:mod:`plugin`) hands each test a :class:`Stress` bound to the session; the tests in
``tests/stress/`` read like the seed campaign: phase N of the ladder, config X for 100 batches, the
largest batch size that survives.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from .budget import Budget, predict
from ..run.child import DatasetSpec
from ..data.loader import LoaderConfig
from ..run.monitor import TreeMonitor
from ..options import Settings

from ..run.runner import RunResult, Watchdog, dataset_spec, run_config, run_distributed
from .session import StressSession
from . import verdicts


class BudgetWarning(UserWarning):
    """A config is predicted not to fit this (or the emulated) machine; it is run anyway, to show how."""


def prepare_dataset(settings: Settings) -> tuple[DatasetSpec, dict[str, Any]]:
    """The dataset every run of this session loads: ``--ssv2-root`` or the cached synthetic set."""
    from ..data.annotations import load_index

    missing = "skip" if settings.ssv2_skip_missing else "error"
    common = dict(num_frames=settings.frames, size=settings.size, decoder=settings.decoder)
    if settings.ssv2_root is not None:
        root = Path(settings.ssv2_root)
        index = load_index(root, settings.ssv2_split, list_file=settings.ssv2_list_file, missing=missing)
        info = {"root": str(root), "synthetic": False, "split": settings.ssv2_split, "videos": len(index),
                "skipped_missing": index.skipped_missing, "codec": _codec(index.path(0)), **common}
        spec = dataset_spec(root, settings.ssv2_split, list_file=str(settings.ssv2_list_file)
                            if settings.ssv2_list_file else None, missing=missing, **common)
        return spec, info
    from ..data.synth import SynthSpec, ensure_synthetic, read_manifest

    # Full-size annotations (168,913 train entries, hard links to the encoded pool): sustained runs never
    # wrap around a tiny epoch, and index, shuffle and temp-file behaviour are those of the real split.
    root = ensure_synthetic(SynthSpec(videos=settings.synthetic_videos, full_size=True), cache_dir=settings.ssv2_cache)
    man = read_manifest(root)
    split = settings.ssv2_split
    info = {"root": str(root), "synthetic": True, "split": split,
            "videos": int(man.get("splits", {}).get(split, 0)), "codec": man.get("spec", {}).get("codec", "vp9"),
            **common}
    return dataset_spec(root, split, **common), info


def _codec(path: str) -> str | None:
    try:
        import av

        with av.open(path) as c:
            return c.streams.video[0].codec_context.name
    except Exception:
        return None


def available_shm(settings: Settings, machine: dict[str, Any]) -> int:
    sb = settings.sandbox
    if sb is not None and sb.shm_bytes is not None:
        return sb.shm_bytes
    return int(machine.get("shm_free_bytes") or 0)


@dataclass
class Stress:
    """One test's access to the runner, bound to the session."""

    session: StressSession
    dataset: DatasetSpec
    test_id: str
    progress: Callable[[str], None] | None = None
    test_name: str = ""   # e.g. test_ladder[phase3-bs4-w2-pf2]: what --inject-fault's :TEST matches


    @property
    def settings(self) -> Settings:
        return self.session.settings

    def budget(self, config: LoaderConfig) -> Budget:
        return predict(config, frames=int(self.dataset.get("num_frames", 16)),
                       size=int(self.dataset.get("size", 224)), base_rss=self.session.base_rss)

    def watchdog(self) -> Watchdog:
        stall = self.settings.stall_timeout
        return Watchdog(stall_s=float(stall)) if stall else Watchdog()

    def run(self, config: LoaderConfig, batches: int, *, kind: str, phase: str | None = None,
            train: bool = False, fault_ok: bool = True, live: bool = False,
            run_base: str | os.PathLike[str] | None = None) -> RunResult:
        s = self.settings
        limit = self.decode_limit(config, probe=kind != "quick")  # also measures the RSS baseline
        fault = self._fault(fault_ok)
        budget = self.budget(config)
        shm_avail = available_shm(s, self.session.machine)
        fits = not config.num_workers or budget.shm_bytes <= shm_avail
        if not fits:
            warnings.warn(BudgetWarning(
                f"{config.label}: predicted shared memory {budget.shm_bytes / 2**20:.0f} MB exceeds the "
                f"{shm_avail / 2**20:.0f} MB available; running it to show the failure"))
        ds = dict(self.dataset, train=train)
        on_event = self._live(config, batches) if live and self.progress else None
        result = run_config(
            ds, config, batches, fault=fault, sandbox=s.sandbox, watchdog=self.watchdog(),
            run_dir=run_base or self.session.runs_dir, name=f"{kind}-{phase or config.label}", on_event=on_event,
            cuda=bool(self.session.machine.get("cuda")), step_s=float(s.step_time or 0.0),
            extra_facts={"shm_need_bytes": budget.shm_bytes, "shm_available_bytes": shm_avail},
        )
        rec = result.record
        if kind == "quick" and phase == "phase1" and result.passed and self.session.decode_rate is None:
            self.session.decode_rate = result.metrics.get("videos_per_s")  # BS=1 W=0 is the decode rate
            self.session.base_rss = result.metrics.get("rss_peak_bytes")
            limit = self.decode_limit(config, probe=False)
        if limit is not None:
            rec["metrics"]["decode_limit_videos_per_s"] = limit
        rec.update(id=self.test_id, kind=kind, budget={**budget.to_dict(), "base_rss_measured": self.session.base_rss is not None,
                                                       "shm_available_bytes": shm_avail,
                                                       "fits": fits})
        if phase:
            rec["phase"] = phase
        if not self.session.machine.get("cuda"):
            rec["gpu"] = "skipped: CUDA not available (pinned host-to-device copy and VRAM peak need a GPU)"
        return result

    def decode_limit(self, config: LoaderConfig, *, probe: bool) -> float | None:
        """L = single-process decode rate × min(workers, cores): the most any worker count can reach here.

        The rate is measured once per session, isolated like any run (BS=4, W=0, 64 clips), unless the quick
        ladder's phase 1 — the same measurement — already ran."""
        if self.session.decode_rate is None and probe:
            r = run_config(dict(self.dataset, train=False), LoaderConfig(batch_size=4, num_workers=0), 17,
                           run_dir=self.session.runs_dir, name="decode-rate-probe", watchdog=self.watchdog())
            self.session.decode_rate = r.metrics.get("videos_per_s") if r.passed else None
            self.session.base_rss = r.metrics.get("rss_peak_bytes") if r.passed else None
        if not self.session.decode_rate:
            return None
        cores = int(self.session.machine.get("cores") or 1)
        return float(self.session.decode_rate) * min(max(config.num_workers, 1), cores)

    def _fault(self, fault_ok: bool) -> Any:
        s = self.settings
        if fault_ok and s.fault and (not s.fault_target or s.fault_target in (self.test_name or self.test_id)):
            return s.fault
        return None

    def run_distributed(self, config: LoaderConfig, batches: int, *, nproc_per_node: int | None = None,
                        limit: int | None = None, fault_ok: bool = True, live: bool = False) -> RunResult:
        """``config`` in every rank of a torchrun job (``--nproc-per-node`` ranks, or ``nproc_per_node``;
        multi-node from the session's launch settings), ``limit`` items of the dataset, train sampling.

        The shared-memory budget is the node's: every rank's loader needs its own batches in flight.
        """
        s = self.settings
        launch = s.launch if nproc_per_node is None else replace(s.launch, nproc_per_node=nproc_per_node)
        n = launch.nproc_per_node
        per_rank = self.budget(config)
        need = per_rank.shm_bytes * n
        shm_avail = available_shm(s, self.session.machine)
        fits = not config.num_workers or need <= shm_avail
        if not fits:
            warnings.warn(BudgetWarning(
                f"{config.label} × {n} ranks: predicted shared memory {need / 2**20:.0f} MB exceeds the "
                f"{shm_avail / 2**20:.0f} MB available; running it to show the failure"))
        ds = dict(self.dataset, train=True)
        if limit is not None:
            ds["limit"] = limit
        phase = f"{n} rank{'s' if n != 1 else ''}" + (f" × {launch.nnodes} nodes" if launch.nnodes > 1 else "")
        on_event = self._live(config, batches) if live and self.progress else None
        result = run_distributed(
            ds, config, batches, nproc_per_node=n, nnodes=launch.nnodes, node_rank=launch.node_rank,
            rdzv_endpoint=launch.rdzv_endpoint, fault=self._fault(fault_ok), sandbox=s.sandbox,
            watchdog=self.watchdog(), run_dir=self.session.runs_dir,
            name=f"distributed-{config.label}-n{n}", on_event=on_event,
            cuda=bool(self.session.machine.get("cuda")), step_s=float(s.step_time or 0.0),
            extra_facts={"shm_need_bytes": need, "shm_available_bytes": shm_avail},
        )
        rec = result.record
        rec.update(id=self.test_id, kind="distributed", phase=phase,
                   budget={**per_rank.to_dict(), "shm_bytes": need, "rank_shm_bytes": per_rank.shm_bytes,
                           "rss_bytes": per_rank.rss_bytes * n, "ranks": n, "shm_available_bytes": shm_avail,
                           "fits": fits})
        if not self.session.machine.get("cuda"):
            rec["gpu"] = "skipped: CUDA not available (pinned host-to-device copy and VRAM peak need a GPU)"
        return result

    def judge(self, result: RunResult) -> list[dict[str, Any]]:
        """Leak and degradation verdicts for a passed sustained run (added to its record).

        Memory is judged on the batch loop only (not the torch import before it or the shutdown after)
        and on samples where the whole tree is up: non-persistent workers are re-forked at each epoch,
        and the dips while they restart are not a change in memory use.
        """
        rec = result.record
        series = rec.get("series", {})
        waits = rec.get("batch_waits_s", [])
        bt = series.get("batch_t", [])
        t, rss, procs = series.get("t", []), series.get("rss", []), series.get("procs", [])
        full = max(procs) if procs else 0
        keep = [i for i in range(len(t)) if bt and bt[0] <= t[i] <= bt[-1] and procs[i] == full]
        vids = [int(rec["config"]["batch_size"])] * len(waits)
        out = [verdicts.leak([t[i] for i in keep], [rss[i] for i in keep], len(waits)),
               verdicts.degradation(waits, vids)]
        rec["verdicts"] = rec.get("verdicts", []) + out
        return out

    def record(self, result: RunResult) -> None:
        self.session.record(result.record)

    def _live(self, config: LoaderConfig, batches: int) -> Callable[[dict[str, Any], TreeMonitor], None]:
        every = max(1, batches // 10)
        state: dict[str, Any] = {"t0": None, "v": 0, "rank": None, "followed": False}

        def on_event(ev: dict[str, Any], mon: TreeMonitor) -> None:
            if ev.get("ev") != "batch":
                return
            if not state["followed"]:  # ranks: follow the first rank that reports a batch
                state["rank"], state["followed"] = ev.get("rank"), True
            if ev.get("rank") != state["rank"]:
                return
            i = int(ev["i"])
            if state["t0"] is None:
                state["t0"] = ev["t"]
            else:
                state["v"] += int(ev["videos"])
            if (i + 1) % every and i + 1 != batches:
                return
            dt = ev["t"] - state["t0"]
            rate = state["v"] / dt if dt > 0 else 0.0
            last = mon.samples[-1] if mon.samples else None
            rss = f"{last.rss / 2**30:.2f} GB" if last else "?"
            shm = f"{last.shm_used / 2**20:.0f} MB" if last else "?"
            assert self.progress is not None
            who = f" rank {state['rank']}" if state["rank"] is not None else ""
            node = " (node)" if state["rank"] is not None else ""
            self.progress(f"  {config.label}{who}: batch {i + 1}/{batches}  {rate:.1f} videos/s  RSS{node} {rss}  "
                          f"shm{node} {shm}")
        return on_event


def bridge_benchmark(request: Any, result: RunResult, dataset_info: dict[str, Any]) -> bool:
    """Put a passed run's per-batch times (measured in the child) into pytest-benchmark's record.

    Uses the benchmark fixture's stats object directly: the times are the child's waits for each batch,
    not the parent's wall time of the whole process, which includes interpreter start-up.
    """
    bs = getattr(request.config, "_benchmarksession", None)
    if bs is None or bs.skip or bs.disabled or not result.passed:
        return False
    bench = request.getfixturevalue("benchmark")
    make = getattr(bench, "_make_stats", None)
    if make is None:  # pragma: no cover - a pytest-benchmark without the hook we rely on
        warnings.warn("this pytest-benchmark has no _make_stats; the child's timings are not bridged")
        return False
    bench._mode = "ssv2-stress: per-batch times from the child"
    stats = make(1)
    for w in result.batch_waits[1:] or result.batch_waits:
        stats.update(w)
    m = result.metrics
    bench.extra_info.update(
        config=result.record["config"], label=result.record["label"],
        videos_per_s=m.get("videos_per_s"), frames_per_s=m.get("frames_per_s"),
        first_batch_s=m.get("first_batch_s"), rss_peak_bytes=m.get("rss_peak_bytes"),
        shm_peak_bytes=m.get("shm_peak_bytes"), dataset=dataset_info,
    )
    return True


# --- collection: which configs each stress test runs, and how long pytest-timeout allows -------------

def parametrize(metafunc: Any, session: StressSession) -> None:
    from ..data.loader import ladder, matrix

    s = session.settings
    names = metafunc.fixturenames
    if "ladder_phase" in names:
        phases = ladder(s.max_workers, sharing_strategy=s.sharing_strategy)
        metafunc.parametrize("ladder_phase", phases, ids=[p.id for p in phases])
    if "sustained_config" in names:
        cfgs = matrix(s.batch_sizes, s.workers, s.prefetch, max_workers=s.max_workers,
                      sharing_strategy=s.sharing_strategy)
        metafunc.parametrize("sustained_config", cfgs, ids=[c.label for c, _ in cfgs])
    if "limits_workers" in names:
        ws = sorted({min(w, s.max_workers) for w in s.workers})
        metafunc.parametrize("limits_workers", ws, ids=[f"w{w}" for w in ws])
    if "distributed_config" in names:
        cfgs = matrix(s.batch_sizes, s.workers, s.prefetch, max_workers=s.max_workers,
                      sharing_strategy=s.sharing_strategy)
        n = s.launch.nproc_per_node
        metafunc.parametrize("distributed_config", cfgs, ids=[f"{c.label}-n{n}" for c, _ in cfgs])


def epoch_limit(batches: int, batch_size: int, world_size: int) -> int:
    """Dataset size for a ``-m distributed`` run: each rank's epoch is ``batches // 2`` batches (at least
    one), so every run crosses an epoch boundary (``set_epoch``, the workers' restart) and has complete
    epochs whose coverage can be checked; ``world_size - 1`` extra items make DistributedSampler's tail
    rule show (dropped with the matrix's ``drop_last=True``, padded without it)."""
    per_rank = max(1, batches // 2) * batch_size
    return world_size * per_rank + world_size - 1


_SETUP_MARGIN_S = 180.0  # building the synthetic set and importing torch in the first test's setup


def item_timeout(item: Any, settings: Settings) -> float | None:
    """pytest-timeout for a stress test: its runs' watchdog totals plus a margin, so the watchdog
    always fires first and the outcome is ``hang``, not a pytest-timeout kill."""
    params = getattr(item, "callspec", None)
    p = params.params if params else {}
    wd = Watchdog(stall_s=float(settings.stall_timeout)) if settings.stall_timeout else Watchdog()
    if "ladder_phase" in p:
        return wd.resolve(p["ladder_phase"].config, settings.quick_batches)["total_s"] + _SETUP_MARGIN_S
    if "sustained_config" in p:
        return wd.resolve(p["sustained_config"][0], settings.batches)["total_s"] + _SETUP_MARGIN_S
    if "distributed_config" in p:
        # the N-rank run, and a 1-rank baseline of the same config when it fails
        cfg, n = p["distributed_config"][0], settings.launch.nproc_per_node
        return (wd.resolve(cfg, settings.batches, n)["total_s"] + wd.resolve(cfg, settings.batches)["total_s"]
                + _SETUP_MARGIN_S)
    if "limits_workers" in p:
        # grow (log2 max) + bisect (log2 max) probes, each bounded by its own watchdog
        n = 2 * max(1, int(settings.max_batch_size).bit_length())
        worst = LoaderConfig(batch_size=settings.max_batch_size, num_workers=p["limits_workers"],
                             prefetch_factor=settings.prefetch[0] if p["limits_workers"] else None)
        return n * wd.resolve(worst, settings.limit_batches)["total_s"] + _SETUP_MARGIN_S
    if item.get_closest_marker("validate") and not item.get_closest_marker("quick"):
        return 6 * 3600.0  # bounded by the run's own watchdog, sized from the TOML at run time
    if any(item.get_closest_marker(m) for m in ("quick", "validate", "sustained", "limits", "distributed")):
        return _SETUP_MARGIN_S + 120.0  # pre-flight checks: each bounds its own subprocess at 120 s
    return None
