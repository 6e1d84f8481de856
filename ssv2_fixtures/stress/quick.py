"""``-m quick`` and ``-m sustained`` test steps: one ladder phase, one sustained config.

Each returns a :class:`Step`: the run (if one ran) and why the test skips or fails, so the test only
selects, calls and asserts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..data.loader import LoaderConfig
from . import drift
from .plans import Phase, quick_measure
from .verdicts import failed_text

if TYPE_CHECKING:
    from ..run.runner import RunResult
    from .campaign import Stress


@dataclass
class Step:
    result: RunResult | None
    skip: str | None = None
    failure: str | None = None


def ladder_phase(stress: Stress, phase: Phase) -> Step:
    """Run one quick phase, unless it is a capped duplicate of an earlier one or an earlier phase failed
    (the ladder stops at its first failure: later phases only add load)."""
    session, s = stress.session, stress.settings
    cap = s.max_workers
    if phase.duplicate_of is not None:
        note = (
            f"phase{phase.number}: W={phase.requested_workers} capped to {cap} (--max-workers, default "
            f"2 × cores) is the same config as phase{phase.duplicate_of}; raise --max-workers to run it"
        )
        session.capped.append(note)
        return Step(None, skip=note)
    if session.ladder_failure is not None:
        n, kind = session.ladder_failure
        return Step(None, skip=f"phase {n} failed: {kind}")
    measure = quick_measure(s)
    result = stress.run(
        phase.config,
        measure["max_batches"],
        kind="quick",
        phase=phase.name,
        requested_workers=phase.requested_workers,
        measure=measure,
        decode_rate=phase.decode_rate,
    )
    if phase.requested_workers != phase.config.num_workers:
        session.capped.append(f"phase{phase.number}: W={phase.requested_workers} capped to {cap}")
    stress.record(result)
    drift.after_phase(stress, phase, result)
    if not result.passed:
        session.ladder_failure = (phase.number, result.kind or "unknown")
        return Step(result, failure=f"phase{phase.number} {result.describe()}")
    return Step(result)


def sustained(stress: Stress, config: LoaderConfig, requested_workers: int) -> Step:
    """``--batches`` batches of ``config``; fails on a failure outcome, memory growth or throughput decay."""
    from .campaign import series

    drift.group_control(stress)  # the machine's pace before this config (and, the first time, the series' start)
    result = stress.run(
        config,
        stress.settings.batches,
        kind="sustained",
        train=True,
        live=True,
        requested_workers=requested_workers,
        checks=[series],
    )
    stress.record(result)
    if result.kind is not None:
        return Step(result, failure=result.describe())
    bad = failed_text(result.record)
    return Step(result, failure=f"{config.label}: {bad}") if bad else Step(result)
