"""The drift control of a measuring session (issue #24; the rules are :mod:`ssv2_fixtures.run.drift`).

The reference measurement is the session pipeline's single-process item rate (BS=1, W=0, eval sampling: the
quick ladder's phase 1, whose rate is also the decode limit's base), measured isolated like every run, through the
same :func:`~ssv2_fixtures.run.runner.run_config` call as the decode-rate probe, with a fixed window of
:data:`CONTROL_S` seconds. The series: phase 1 itself at the start (the same config and quantity, so no extra run;
its window is the phase's, at least 6 s), one control after every :data:`CONTROL_EVERY` ladder phases and one at
the end of the session (:meth:`StressSession.finish`). A control costs a child's start-up plus its window (about
5 s on the 2-core VM), so two controls keep a quick session's added time under 15 s.

A control's ``t`` is the middle of its measured window (its end, from the run's start plus wall time, minus half
the window): the unix time the rate describes.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..data.loader import LoaderConfig
from ..run.drift import Control, controls_of, drift_record
from ..run.record import single_process_rate
from ..run.runner import run_config

if TYPE_CHECKING:
    from ..run.runner import RunResult
    from .campaign import Stress
    from .plans import Phase
    from .session import StressSession

CONTROL_S = 2.0
"""Seconds of a control's measured window: long enough for ~25 single-process items here, short enough that two
controls stay within the 15 s a quick session may spend on them."""

CONTROL_EVERY = 4
"""Ladder phases between two controls (7 phases run on 2 cores: phase 1, a control after phase 4, one at the end)."""

CONTROL_CONFIG = LoaderConfig(batch_size=1, num_workers=0)


def add(session: StressSession, control: Control) -> None:
    session.drift = drift_record([*controls_of(session.drift), control])
    session.flush()


def control_of(result: RunResult, window_s: float) -> Control | None:
    """The control a W=0 run gives: its single-process rate at the middle of its window (the window ended as the
    run returned, less the child's brief exit); None if it failed."""
    rate = single_process_rate(result.metrics) if result.passed else None
    return Control(t=time.time() - window_s / 2, videos_per_s=float(rate)) if rate else None


def control(stress: Stress, config: LoaderConfig = CONTROL_CONFIG) -> Control | None:
    """One control now: ``config`` (the reference: phase 1's) for :data:`CONTROL_S` seconds, isolated; recorded in
    the session."""
    s = stress.session
    n = len(controls_of(s.drift))
    r = run_config(
        stress._dataset(False),
        config,
        1_000_000,  # the window's time ends it
        run_dir=s.runs_dir,
        name=f"drift-control-{n}",
        watchdog=stress.watchdog(),
        measure={
            "warmup_batches": 2,
            "min_batches": 1,
            "max_batches": 1_000_000,
            "max_s": CONTROL_S,
            "target_rel": 1e-9,  # never "converged": every control is the same fixed window
            "min_s": CONTROL_S,
        },
        hold=False,
    )
    c = control_of(r, CONTROL_S)
    if c is not None:
        add(s, c)
    return c


def after_phase(stress: Stress, phase: Phase, result: RunResult | None) -> None:
    """The ladder's controls: phase 1's own rate starts the series (and arms the end-of-session control);
    every :data:`CONTROL_EVERY` phases that ran, a control."""
    s = stress.session
    if result is None:
        return
    if phase.decode_rate:
        m = result.metrics.get("loop_s")
        c = control_of(result, float(m) if m else CONTROL_S)
        if c is not None:
            add(s, c)
            s.finish_hooks.append(lambda: end(stress, phase.config))
        return
    if s.drift is not None and phase.number % CONTROL_EVERY == 0:
        control(stress, _reference(s))


def _reference(session: StressSession) -> LoaderConfig:
    """Phase 1's config, from its record (the controls repeat it exactly: sharing strategy and seed included)."""
    for r in session.results:
        if r.get("phase") == "phase1" and r.get("kind") == "quick":
            try:
                return LoaderConfig(**r["config"])
            except TypeError:
                break
    return CONTROL_CONFIG


def end(stress: Stress, config: LoaderConfig) -> None:
    """The last control, when the session's ladder started a series and pytest finishes the session."""
    try:
        control(stress, config)
    except Exception:  # a session's report must not fail on its control; the series then just lacks the end
        pass
