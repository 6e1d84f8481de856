"""The autotune's measure and confirm as isolated runs (the search itself is :mod:`.tune`).

``measure(config, seconds)`` turns a time into a batch count from the best rate guess for that worker
count (a measured neighbour, else 0.8 × the decode limit L), runs it in its own child through
:meth:`Stress.run` (so ``--dataset-factory``, ``--emulate*`` and ``--step-time`` apply), and reports the
rate with its batch-means interval. ``confirm(config, seconds)`` is one sustained run of up to 100
batches that fits in ``seconds`` of measuring time (the search has taken the start-up off), judged by
the leak and degradation verdicts; when not even the shortest run whose degradation is judged fits, it
runs nothing and answers :data:`~.tune.RAN_OUT`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..data.loader import SHARING_STRATEGIES, LoaderConfig
from . import drift
from .tune import tune_batch_sizes
from .tune_model import RAN_OUT, ConfirmResult, Probe, Space, Trial, TuneResult, tuned_label
from .verdicts import failed, fewest_batches

if TYPE_CHECKING:
    from ..run.runner import RunResult
    from .campaign import Stress

MIN_BATCHES = 16  # the first batch is warm-up; 15 after it give 5 batch-mean groups (t = 2.78, not 12.7 with 2)
MAX_BATCHES = 4000
CONFIRM_BATCHES = 100


def probe_of(result: RunResult) -> Probe:
    """A run's rate and the record's interval (none when the writer had too few batches for one)."""
    m = result.metrics
    secs = float(result.record.get("wall_s", 0.0))
    n = int(m.get("batches", 0))
    if not result.passed:
        return Probe(kind=result.kind or "failed", batches=n, seconds=secs)
    rate = m.get("videos_per_s")
    if rate is None:
        return Probe(kind="no_rate", batches=n, seconds=secs)
    iv = m.get("videos_per_s_interval")
    return Probe(
        videos_per_s=float(rate), interval=(float(iv[0]), float(iv[1])) if iv else None, batches=n, seconds=secs
    )


@dataclass
class RunMeasure:
    stress: Stress
    rates: dict[tuple[int, int], float] = field(default_factory=dict)  # (batch size, workers) → videos/s
    runs: list[RunResult] = field(default_factory=list)

    def guess(self, config: LoaderConfig) -> float | None:
        same = {w: r for (bs, w), r in self.rates.items() if bs == config.batch_size}
        if same:
            w = min(same, key=lambda w: abs(w - config.num_workers))
            return same[w]
        limit = self.stress.decode_limit(config, probe=True)
        return 0.8 * limit if limit else None

    def step_s(self) -> float:
        return float(self.stress.settings.step_time or 0.0)

    def batch_s(self, config: LoaderConfig) -> float | None:
        """Seconds per batch: the loader's wait at the guessed rate plus ``--step-time`` (the recorded
        rate is the data side's, measured on the waits alone; the step is slept on top of it)."""
        rate = self.guess(config)
        step = self.step_s()
        if not rate:
            return step or None
        return config.batch_size / rate + step

    def batches(self, config: LoaderConfig, seconds: float) -> int:
        per = self.batch_s(config)
        if not per:
            return MIN_BATCHES
        return max(MIN_BATCHES, min(MAX_BATCHES, 1 + math.ceil(seconds / per)))

    def __call__(self, config: LoaderConfig, seconds: float) -> Probe:
        result = self.stress.run(
            config, self.batches(config, seconds), kind="tune", phase=f"probe-{config.label}", train=True
        )
        self.runs.append(result)
        p = probe_of(result)
        if p.passed and p.videos_per_s:
            self.rates[(config.batch_size, config.num_workers)] = p.videos_per_s
        return p


@dataclass
class RunConfirm:
    stress: Stress
    measure: RunMeasure
    record: bool = True  # the confirmation is a real sustained run: keep it in results.json

    def least(self, config: LoaderConfig) -> int:
        """The shortest confirmation: one whose degradation is judged (whole worker rounds per fifth),
        capped at :data:`CONFIRM_BATCHES` (a run of more workers than that allows is judged on leaks)."""
        return max(MIN_BATCHES, min(CONFIRM_BATCHES, fewest_batches(config.num_workers)))

    def __call__(self, config: LoaderConfig, seconds: float) -> ConfirmResult:
        per = self.measure.batch_s(config)
        n = CONFIRM_BATCHES if not per else min(CONFIRM_BATCHES, 1 + int(seconds / per))  # + the warm-up batch
        if n < self.least(config):  # the time left would cut it short of a judged run: start nothing
            assert per is not None
            return ConfirmResult(
                False,
                RAN_OUT,
                f"{self.least(config)} batches need ~{self.least(config) * per:.0f} s "
                f"of the {max(seconds, 0.0):.0f} s left",
            )
        # the leak/degradation verdicts are judged where every record's pass/fail is decided (stamp);
        # series_verdicts counts --step-time into the loop's time per batch
        from .campaign import series

        result = self.stress.run(config, n, kind="tune", phase=f"confirm-{config.label}", train=True, checks=[series])
        secs = float(result.record.get("wall_s", 0.0))
        batches = int(result.metrics.get("batches", 0))
        bad = failed(result.record)
        if result.record.get("outcome"):  # the run itself failed (a failure kind), not a verdict
            out = ConfirmResult(False, result.kind or "failed", result.describe(), batches=batches, seconds=secs)
        else:
            out = ConfirmResult(
                not bad,
                "+".join(str(v["name"]) for v in bad) or None,
                "; ".join(str(v.get("detail", "")) for v in bad),
                result.metrics.get("videos_per_s"),
                batches,
                secs,
            )
        if self.record:
            self.stress.record(result)
        return out


def spaces_for(stress: Stress) -> list[Space]:
    """One space per ``--batch-sizes`` entry: workers 1 … 2 × cores (capped by --max-workers) unless
    ``--workers`` was given, prefetch 1, 2, 4, 8 unless ``--prefetch`` was given, both sharing
    strategies, persistent workers on and off, pin memory on and off where CUDA is present."""
    s = stress.settings
    given = lambda name: s.sources.get(name, "default") != "default"  # noqa: E731
    workers = (
        tuple(sorted({min(max(w, 1), s.max_workers) for w in s.workers}))
        if given("workers")
        else tuple(range(1, max(1, s.max_workers) + 1))
    )
    prefetch = tuple(s.prefetch) if given("prefetch") else (1, 2, 4, 8)
    machine = stress.session.machine
    if machine.get("cuda") is None:  # no run has said yet: ask a fresh interpreter, not this one
        from .probe import cuda_in_child

        machine["cuda"] = cuda_in_child()
    pin = (False, True) if machine.get("cuda") else (False,)
    base = LoaderConfig(shuffle=True, drop_last=True)
    return [
        Space(
            batch_size=bs,
            workers=workers,
            prefetch=prefetch,
            strategies=SHARING_STRATEGIES,
            persistent=(False, True),
            pin_memory=pin,
            base=base,
        )
        for bs in s.batch_sizes
    ]


def probe_line(bs: int, t: Trial) -> str:
    """The live terminal line for one probe."""
    p = t.probe
    what = (
        f"{p.videos_per_s:.1f}" + (f" ± {(p.interval[1] - p.interval[0]) / 2:.1f}" if p.interval else "") + " videos/s"
        if p.passed and p.videos_per_s is not None
        else (p.kind or "failed")
    )
    return (
        f"  tune bs{bs} [{t.stage}] {tuned_label(t.config)}"
        f"{'-pin' if t.config.pin_memory else ''}: {what} ({p.batches} batches, {p.seconds:.1f} s)"
    )


def run_tune(
    stress: Stress,
    *,
    budget_s: float,
    target: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    spaces: list[Space] | None = None,
    record_confirm: bool = True,
    predict_fits: Callable[[LoaderConfig], bool] | None = None,
) -> list[TuneResult]:
    """Tune every batch size of the session within ``budget_s`` seconds, with isolated runs.
    ``predict_fits``: instead of the shared-memory prediction against what is available (a test that
    must see real failures lets everything through)."""
    from .campaign import available_shm
    from .campaign import fits as shm_fits

    shm_avail = available_shm(stress.settings, stress.session.machine)

    def predicted(c: LoaderConfig) -> bool:
        return shm_fits(stress.budget(c).shm_bytes, c.num_workers, shm_avail)

    fits = predict_fits or predicted

    measure = RunMeasure(stress)
    confirm = RunConfirm(stress, measure, record=record_confirm)
    progress = stress.progress

    def on_probe(t: Trial) -> None:
        if progress is not None:
            progress(probe_line(t.config.batch_size, t))

    kw: dict[str, Any] = dict(
        confirm=confirm,
        predict_fits=fits,
        target=target,
        on_probe=on_probe,
        shm=lambda c: float(stress.budget(c).shm_bytes),
    )
    return tune_batch_sizes(
        spaces or spaces_for(stress),
        measure,
        budget_s=budget_s,
        clock=clock,
        between=lambda: drift.group_control(stress),  # a control between batch sizes (groups of configs)
        **kw,
    )


def tuned_toml(r: TuneResult) -> str:
    """A ``train.toml`` for ``-m validate`` (``[loader]``, and ``[target]`` in target mode) of one pick."""
    if r.best is None:
        return f"# ssv2-stress -m tune: batch size {r.batch_size} has no pick: {r.failure()}\n"
    c = r.best.config
    out = [
        f"# ssv2-stress -m tune, batch size {r.batch_size}: {r.best.rate:.1f} videos/s "
        f"[{r.best.lo:.1f}, {r.best.hi:.1f}], {'confirmed' if r.confirmed else 'NOT confirmed'} by a sustained run",
        "[loader]",
    ]
    for k in ("batch_size", "num_workers", "prefetch_factor", "persistent_workers", "pin_memory", "sharing_strategy"):
        v = getattr(c, k)
        out.append(
            f"{k} = "
            + (("true" if v else "false") if isinstance(v, bool) else f'"{v}"' if isinstance(v, str) else str(v))
        )
    if r.target_videos_per_s is not None:
        out += ["", "[target]", f"min_videos_per_s = {r.target_videos_per_s:g}"]
    return "\n".join(out) + "\n"


def outcome_line(r: TuneResult) -> str:
    """The terminal line after a batch size's probes: its pick (or none), confirmation and time spent."""
    b = r.best
    pick = (
        f"{tuned_label(b.config)} {b.rate:.1f} [{b.lo:.1f}, {b.hi:.1f}] "
        f"videos/s, {'confirmed' if r.confirmed else 'NOT confirmed'}"
        if b
        else "no pick"
    )
    return f"  tune bs{r.batch_size}: {pick}; {len(r.tried)} probes, spent {r.spent_s:.0f} of {r.budget_s:.0f} s"


def tune_session(stress: Stress) -> list[str]:
    """What ``-m tune`` does: tune every batch size, say each outcome, write results.json's ``"tune"``
    and ``tuned.toml`` in ``stress.session``; returns the failures (empty when every batch size got a
    confirmed pick)."""
    session = stress.session
    s = session.settings
    drift.group_control(stress)  # the machine's pace before the search; the session's end takes the last one
    results = run_tune(stress, budget_s=float(s.tune_budget), target=s.target_videos_per_s)
    if stress.progress is not None:  # after the live line per probe, the outcome per batch size
        for r in results:
            stress.progress(outcome_line(r))
    session.tune = [dict(r.record()) for r in results]
    session.flush()
    write_tuned(session.run_dir, results)
    return [r.failure() for r in results if not r.ok]


def write_tuned(run_dir: Path, results: list[TuneResult]) -> list[Path]:
    """``tuned.toml`` (the first batch size's pick) and, with several batch sizes, ``tuned-bsN.toml`` each."""
    from ..run.record import write_atomic_bytes

    paths = []
    if results:
        paths.append(run_dir / "tuned.toml")
        write_atomic_bytes(paths[-1], tuned_toml(results[0]).encode())
    if len(results) > 1:
        for r in results:
            paths.append(run_dir / f"tuned-bs{r.batch_size}.toml")
            write_atomic_bytes(paths[-1], tuned_toml(r).encode())
    return paths


def api_stress(reports: Path, progress: Callable[[str], None] | None = None, **options: str) -> Stress:
    """A :class:`Stress` outside pytest (benchmarks, the suite's own real-tune test): options by their
    dest name as command-line text (``batch_sizes="8"``), everything else at its default."""
    from ..options import resolve
    from .campaign import Stress, prepare_dataset
    from .probe import machine_facts
    from .session import StressSession

    cli = dict(options, reports=str(reports))
    settings = resolve(lambda name: cli.get(name), lambda name: None, None)
    session = StressSession(settings)
    session.machine = machine_facts(sharing_strategy=settings.sharing_strategy)
    spec, info = prepare_dataset(settings)
    session.dataset = info
    return Stress(session, spec, "tune-api", progress, "tune")
