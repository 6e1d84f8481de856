"""Which configs each marker runs, and how long pytest-timeout gives each test.

The quick ladder (9 phases modelled on the seed campaign), the sustained/distributed matrix, the limits
worker counts, the dataset size that makes every ``-m distributed`` run cross epochs, and the per-test
timeouts sized from the runs' own watchdogs. Pure functions of the settings: no processes, no pytest
(``parametrize`` takes pytest's ``metafunc`` but only calls its ``parametrize``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..data.loader import LoaderConfig
from ..options import Settings

if TYPE_CHECKING:
    from ..run.runner import Watchdog


@dataclass(frozen=True)
class Phase:
    """One rung of the quick ladder; ``config`` is already capped to the machine."""

    number: int
    config: LoaderConfig
    requested_workers: int
    duplicate_of: int | None = None  # capped onto an earlier phase's config: skipped, and said so
    decode_rate: bool = False  # BS=1, W=0: its rate is the session's single-process decode rate

    @property
    def id(self) -> str:
        return f"phase{self.number}-{self.config.label}"

    @property
    def name(self) -> str:
        return f"phase{self.number}"


# Modelled on the seed campaign's 9 phases: single-process first, then workers, then batch size,
# then the many-worker settings where the seed saw crashes after ~20-30 batches.
LADDER: tuple[tuple[int, int, int | None], ...] = (
    (1, 0, None),
    (2, 0, None),
    (4, 2, 2),
    (8, 2, 2),
    (8, 4, 2),
    (16, 4, 2),
    (16, 8, 4),
    (16, 16, 4),
    (16, 24, 4),
)


def ladder(max_workers: int, *, sharing_strategy: str = "file_descriptor", seed: int = 0) -> list[Phase]:
    """The 9 quick phases with worker counts capped at ``max_workers``."""
    phases: list[Phase] = []
    seen: dict[LoaderConfig, int] = {}
    for n, (bs, w, pf) in enumerate(LADDER, start=1):
        capped = min(w, max_workers)
        cfg = LoaderConfig(
            batch_size=bs,
            num_workers=capped,
            prefetch_factor=pf if capped else None,
            sharing_strategy=sharing_strategy,
            seed=seed,
        )
        phases.append(Phase(n, cfg, w, seen.get(cfg), decode_rate=n == 1 and w == 0))
        seen.setdefault(cfg, n)
    return phases


def matrix(
    batch_sizes: list[int],
    workers: list[int],
    prefetch: list[int],
    *,
    max_workers: int,
    sharing_strategy: str = "file_descriptor",
    shuffle: bool = True,
    seed: int = 0,
) -> list[tuple[LoaderConfig, int]]:
    """``batch_sizes × workers × prefetch``, workers capped; returns (config, requested workers),
    first occurrence only (capping can map several requests onto one config)."""
    out: list[tuple[LoaderConfig, int]] = []
    seen: set[LoaderConfig] = set()
    for bs in batch_sizes:
        for w in workers:
            for pf in prefetch:
                capped = min(w, max_workers)
                cfg = LoaderConfig(
                    batch_size=bs,
                    num_workers=capped,
                    prefetch_factor=pf if capped else None,
                    shuffle=shuffle,
                    drop_last=True,
                    sharing_strategy=sharing_strategy,
                    seed=seed,
                )
                if cfg not in seen:
                    seen.add(cfg)
                    out.append((cfg, w))
    return out


def limits_workers(settings: Settings) -> list[int]:
    """The worker counts ``-m limits`` searches a boundary for (capped, each once)."""
    return sorted({min(w, settings.max_workers) for w in settings.workers})


def parametrize(metafunc: Any, settings: Settings) -> None:
    """Parametrize the stress tests' config fixtures from the session's settings."""
    s = settings
    names = metafunc.fixturenames
    if "ladder_phase" in names:
        phases = ladder(s.max_workers, sharing_strategy=s.sharing_strategy)
        metafunc.parametrize("ladder_phase", phases, ids=[p.id for p in phases])
    if "sustained_config" in names:
        cfgs = matrix(
            s.batch_sizes, s.workers, s.prefetch, max_workers=s.max_workers, sharing_strategy=s.sharing_strategy
        )
        metafunc.parametrize("sustained_config", cfgs, ids=[c.label for c, _ in cfgs])
    if "limits_workers" in names:
        ws = limits_workers(s)
        metafunc.parametrize("limits_workers", ws, ids=[f"w{w}" for w in ws])
    if "distributed_config" in names:
        cfgs = matrix(
            s.batch_sizes, s.workers, s.prefetch, max_workers=s.max_workers, sharing_strategy=s.sharing_strategy
        )
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


def watchdog_for(settings: Settings) -> Watchdog:
    """The watchdog every run of a session gets (``--stall-timeout``, else derived per config): the runs
    and :func:`item_timeout` use this one, so pytest-timeout is sized from what the runs really use."""
    from ..run.runner import Watchdog  # the runner pulls psutil: not at plugin import

    stall = settings.stall_timeout
    return Watchdog(stall_s=float(stall)) if stall else Watchdog()


def item_timeout(item: Any, settings: Settings) -> float | None:
    """pytest-timeout for a stress test: its runs' watchdog totals plus a margin, so the watchdog
    always fires first and the outcome is ``hang``, not a pytest-timeout kill."""
    params = getattr(item, "callspec", None)
    p = params.params if params else {}
    wd = watchdog_for(settings)
    if "ladder_phase" in p:
        return (
            wd.resolve(p["ladder_phase"].config, settings.quick_batches, measure=quick_measure(settings))["total_s"]
            + _SETUP_MARGIN_S
        )
    if "sustained_config" in p:
        return wd.resolve(p["sustained_config"][0], settings.batches)["total_s"] + _SETUP_MARGIN_S
    if "distributed_config" in p:
        # the N-rank run, and a 1-rank baseline of the same config when it fails
        cfg, n = p["distributed_config"][0], settings.launch.nproc_per_node
        return (
            wd.resolve(cfg, settings.batches, n)["total_s"]
            + wd.resolve(cfg, settings.batches)["total_s"]
            + _SETUP_MARGIN_S
        )
    if "limits_workers" in p:
        # grow (log2 max) + bisect (log2 max) probes, each bounded by its own watchdog
        n = 2 * max(1, int(settings.max_batch_size).bit_length())
        worst = LoaderConfig(
            batch_size=settings.max_batch_size,
            num_workers=p["limits_workers"],
            prefetch_factor=settings.prefetch[0] if p["limits_workers"] else None,
        )
        return n * wd.resolve(worst, settings.limit_batches)["total_s"] + _SETUP_MARGIN_S
    if item.get_closest_marker("tune") and not item.get_closest_marker("quick"):
        # the bound the search keeps (tune.bound_s) plus the setup margin, which also holds one
        # probe's stall watchdog (~30 s) firing past the deadline: the run's verdict then is hang, not a kill
        from .tune import bound_s

        return bound_s(float(settings.tune_budget)) + _SETUP_MARGIN_S
    if item.get_closest_marker("validate") and not item.get_closest_marker("quick"):
        return 6 * 3600.0  # bounded by the run's own watchdog, sized from the TOML at run time
    if any(item.get_closest_marker(m) for m in ("quick", "validate", "sustained", "limits", "distributed")):
        return _SETUP_MARGIN_S + 120.0  # pre-flight checks: each bounds its own subprocess at 120 s
    return None


QUICK_WARMUP = 3  # batches not measured: worker start-up, empty prefetch queues
QUICK_MIN_BATCHES = 12  # the interval needs a few batch means before "within ±5 %" means anything
QUICK_TARGET_REL = 0.05
# The interval only sees the noise inside its window: BS=1-4 phases converged in under 1.5 s and then
# moved 10-18 % between runs with the host's drift; a few seconds of window average the short swings out, the drift
# over minutes no window length does (docs/methodology.md "Quick windows"). The default --quick-seconds is the same
# 4 s, so the 7-phase ladder of 2 cores leaves the 2-minute session room for the interleaved comparison of its
# close configs (stress/drift.py), which is where drift cancels.
QUICK_MIN_S = 4.0


def quick_measure(settings: Settings) -> dict[str, Any]:
    """The measured window of a quick phase (``RunRequest(..., measure=...)``, NOTE [measured window] in
    :mod:`ssv2_fixtures.run.loop`): 3 warm-up batches, then batches until the rate's 95 % interval is
    within ±5 %, at least 12 batches, 5 groups (loop.MIN_GROUPS) and 4 s (or ``--quick-seconds`` if
    less), at most ``--quick-seconds`` of window or ``--quick-batches`` in all.
    A small ``--quick-batches`` (a smoke run) shrinks warm-up and minimum with it."""
    cap = settings.quick_batches  # most batches a phase loads, warm-up included
    warmup = min(QUICK_WARMUP, cap - 1)
    return {
        "warmup_batches": warmup,
        "min_batches": max(1, min(QUICK_MIN_BATCHES, cap - warmup)),
        "max_batches": cap,
        "max_s": float(settings.quick_seconds),
        "target_rel": QUICK_TARGET_REL,
        "min_s": min(QUICK_MIN_S, float(settings.quick_seconds)),
    }
