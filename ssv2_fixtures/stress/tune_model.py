"""Autotune's vocabulary (:mod:`.tune` and :mod:`.tune_search` are the search): what a probe and a
confirmation answer, the space searched, the search's estimates and trials, the results.json ``"tune"`` record
(exactly the issue's keys: :data:`TUNE_KEYS`), and the tie pick in tune's cost order."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..data.loader import SHARING_STRATEGIES, LoaderConfig
from ..run.schema import BestRecord, InterleavedDecision, TriedRecord, TuneRecord
from ..run.shm import shm_in_flight
from ..run.stats import RateInterval
from ..run.stats import ties as tie_rule

PREDICTED_UNFIT = "predicted_unfit"
CONFIRM_SHARE = 0.2  # of each batch size's budget, kept for the sustained confirmation
MAX_KEPT_WORKERS = 2  # worker counts carried from stage 1 into stage 3
MAX_FINALISTS = 4
MAX_HALVING_ROUNDS = 3
RAN_OUT = "ran_out"  # a confirm's answer when its shortest sustained run does not fit the time left
BOUND_FACTOR = 1.25  # a whole tune ends within BOUND_FACTOR × budget + BOUND_SLACK_S (bound_s)
BOUND_SLACK_S = 30.0


# --- what the search is given ---------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """One measurement. Passed: ``videos_per_s`` (+ ``interval`` when the run had enough batches);
    failed: ``kind`` (an outcome kind such as ``shm_exhausted``)."""

    videos_per_s: float | None = None
    interval: tuple[float, float] | None = None
    kind: str | None = None
    batches: int = 0
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.kind is None and self.videos_per_s is not None


@dataclass(frozen=True)
class ConfirmResult:
    ok: bool
    kind: str | None = None  # why it failed: an outcome kind, or the verdict (leak, degradation)
    detail: str = ""
    videos_per_s: float | None = None
    batches: int = 0
    seconds: float = 0.0


Measure = Callable[[LoaderConfig, float], Probe]
Confirm = Callable[[LoaderConfig, float], "ConfirmResult | bool"]
Clock = Callable[[], float]


@dataclass(frozen=True)
class Space:
    """What is tuned for one batch size; ``base`` carries everything else (shuffle, seed, timeout…)."""

    batch_size: int
    workers: tuple[int, ...]
    prefetch: tuple[int, ...] = (1, 2, 4, 8)
    strategies: tuple[str, ...] = SHARING_STRATEGIES
    persistent: tuple[bool, ...] = (False, True)
    pin_memory: tuple[bool, ...] = (False,)
    base: LoaderConfig = field(default_factory=LoaderConfig)

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"tune space: {name} {why}")

        if not self.workers or any(w < 1 for w in self.workers):
            raise bad("workers", f"must be worker counts >= 1, got {list(self.workers)} (--workers)")
        if not self.prefetch or any(p < 1 for p in self.prefetch):
            raise bad("prefetch", f"must be prefetch factors >= 1, got {list(self.prefetch)} (--prefetch)")
        for s in self.strategies:
            if s not in SHARING_STRATEGIES:
                raise bad("strategies", f"{s!r} is not one of {SHARING_STRATEGIES}")
        if not self.strategies or not self.persistent or not self.pin_memory:
            raise bad("strategies/persistent/pin_memory", "must each hold at least one value")
        object.__setattr__(self, "workers", tuple(sorted(set(self.workers))))
        object.__setattr__(self, "prefetch", tuple(sorted(set(self.prefetch))))

    @property
    def default_prefetch(self) -> int:
        return min(self.prefetch, key=lambda p: (abs(p - 2), p))  # torch's default, or the nearest

    def config(
        self,
        workers: int,
        prefetch: int | None = None,
        strategy: str | None = None,
        persistent: bool | None = None,
        pin: bool | None = None,
    ) -> LoaderConfig:
        return replace(
            self.base,
            batch_size=self.batch_size,
            num_workers=workers,
            prefetch_factor=self.default_prefetch if prefetch is None else prefetch,
            sharing_strategy=self.strategies[0] if strategy is None else strategy,
            persistent_workers=self.persistent[0] if persistent is None else persistent,
            pin_memory=self.pin_memory[0] if pin is None else pin,
        )

    def all_configs(self) -> Iterable[LoaderConfig]:
        for w in self.workers:
            for p in self.prefetch:
                for s in self.strategies:
                    for pw in self.persistent:
                        for pin in self.pin_memory:
                            yield self.config(w, p, s, pw, pin)


# --- what it returns ------------------------------------------------------------------------------


TUNE_KEYS = frozenset(TuneRecord.__annotations__)


@dataclass(frozen=True)
class Estimate:
    """A config's latest (longest) passed measurement."""

    config: LoaderConfig
    rate: float
    lo: float
    hi: float
    seconds: float = 0.0

    def interval(self) -> RateInterval:
        return RateInterval(self.rate, self.lo, self.hi, 0, 0)

    def ties(self, other: Estimate) -> bool:
        """The suite's one tie rule (:func:`~ssv2_fixtures.run.stats.ties`: the intervals overlap, or the
        slower is within the margin of the faster's lower bound) on two configs' latest measurements."""
        return tie_rule(self.rate, (self.lo, self.hi), other.rate, (other.lo, other.hi))

    def record(self) -> BestRecord:
        return {"config": self.config.to_dict(), "videos_per_s": self.rate, "interval": [self.lo, self.hi]}


@dataclass(frozen=True)
class Trial:
    config: LoaderConfig
    stage: str
    probe: Probe

    def record(self) -> TriedRecord:
        p = self.probe
        r: TriedRecord = {
            "config": self.config.to_dict(),
            "batches": p.batches,
            "seconds": p.seconds,
            "stage": self.stage,
        }
        if p.passed:
            assert p.videos_per_s is not None
            r["videos_per_s"] = p.videos_per_s
            if p.interval is not None:
                r["interval"] = [p.interval[0], p.interval[1]]
        else:
            r["kind"] = p.kind or "no_rate"
        return r


@dataclass
class TuneResult:
    batch_size: int
    best: Estimate | None
    confirmed: bool
    ties: list[Estimate]
    tried: list[Trial]
    budget_s: float
    spent_s: float
    target_videos_per_s: float | None = None
    met_target: bool | None = None  # None without a target
    limited_by: str = ""  # what kept the rate where it is (always said in target mode)
    confirmations: list[tuple[LoaderConfig, ConfirmResult]] = field(default_factory=list)
    interleaved: InterleavedDecision | None = None  # the final tie re-measured in interleaved rounds

    @property
    def ok(self) -> bool:
        return self.best is not None and self.confirmed and self.met_target is not False

    def failure(self) -> str:
        """Why this batch size has no usable pick (empty when :attr:`ok`)."""
        if self.ok:
            return ""
        bs = f"batch size {self.batch_size}"
        if self.best is None:
            kinds = sorted({t.probe.kind for t in self.tried if t.probe.kind})
            return f"{bs}: no config passed ({', '.join(kinds) or 'nothing was run'}); {self.limited_by}".rstrip("; ")
        if self.met_target is False:
            return (
                f"{bs}: no config reached {self.target_videos_per_s:g} videos/s (interval lower bound); best "
                f"{self.best.config.label} at {self.best.rate:.1f} [{self.best.lo:.1f}, {self.best.hi:.1f}] "
                f"videos/s; limited by: {self.limited_by}"
            )
        why = "; ".join(f"{c.label}: {r.kind or 'failed'} {r.detail}".strip() for c, r in self.confirmations)
        return f"{bs}: no candidate passed the sustained confirmation ({why or 'no time left to confirm'})"

    def record(self) -> TuneRecord:
        return {
            "batch_size": self.batch_size,
            "best": self.best.record() if self.best else None,
            "confirmed": self.confirmed,
            "ties": [t.record() for t in self.ties],
            "tried": [t.record() for t in self.tried],
            "budget_s": self.budget_s,
            "spent_s": self.spent_s,
            "target_videos_per_s": self.target_videos_per_s,
            "interleaved": self.interleaved,
        }


def tuned_label(config: LoaderConfig) -> str:
    """A config's label as tune names it: ``LoaderConfig.label`` plus ``-pw`` for persistent workers
    (one of the knobs tune varies that the label leaves out)."""
    return config.label + ("-pw" if config.persistent_workers else "")


def default_shm(config: LoaderConfig) -> float:
    """Batches in shared memory at once (× batch size): what ``less shm`` compares without a budget model."""
    return float(shm_in_flight(config, config.batch_size))


def cost_key(config: LoaderConfig, shm: Callable[[LoaderConfig], float] = default_shm) -> tuple[Any, ...]:
    """Cheaper first: fewer workers, then less prefetch, then less shm, then the plainer settings."""
    return (
        config.num_workers,
        config.effective_prefetch,
        shm(config),
        config.sharing_strategy != "file_descriptor",
        config.persistent_workers,
        config.pin_memory,
    )


def tie_pick(
    cands: Sequence[Estimate],
    key: Callable[[LoaderConfig], Any] = cost_key,
) -> tuple[Estimate, list[Estimate]]:
    """The fastest, unless cheaper ones (``key``, :func:`cost_key`) tie with it: then the cheapest of
    them; with the tie group (the fastest and what ties with it)."""
    lead = max(cands, key=lambda e: e.rate)
    group = [e for e in cands if e is lead or e.ties(lead)]
    return min(group, key=lambda e: key(e.config)), group
