"""The drift control of a measuring session (issue #24; the rules are :mod:`ssv2_fixtures.run.drift`).

The reference measurement is the session pipeline's single-process item rate (BS=1, W=0, eval sampling: the
quick ladder's phase 1, whose rate is also the decode limit's base), measured isolated like every run, through the
same :func:`~ssv2_fixtures.run.runner.run_config` call as the decode-rate probe, with a fixed window of
:data:`CONTROL_S` seconds. The series: phase 1 itself at the start (the same config and quantity, so no extra run;
its window is the phase's, at least 4 s), one control after every :data:`CONTROL_EVERY` ladder phases when at least
as many phases follow (else the end control is as near), and one at the end of the session
(:meth:`StressSession.finish`). A control costs a child's start-up plus its window: about 5 s on the quiet 2-core
VM, 13–14 s with other jobs holding 1.65 of its 2 cores (2026-12-07). So the 7-phase ladder of 2 cores pays for
one control (the end's), 9-phase ladders for two.

A control's ``t`` is the middle of its measured window (its end, from the run's start plus wall time, minus half
the window): the unix time the rate describes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from ..data.loader import LoaderConfig
from ..run.drift import Control, Plan, controls_of, decide, drift_record, not_measured
from ..run.paused import PausedRuns
from ..run.record import single_process_rate
from ..run.request import RunRequest
from ..run.runner import run_config
from ..run.schema import InterleavedDecision, RunRecord
from ..run.stats import tie_cost, ties
from .plans import QUICK_MIN_BATCHES, QUICK_WARMUP, ladder

if TYPE_CHECKING:
    from ..run.runner import RunResult
    from .campaign import Stress
    from .plans import Phase
    from .session import StressSession

CONTROL_S = 2.0
"""Seconds of a control's measured window: long enough for ~25 single-process items here, short enough that two
controls stay within the 15 s a quick session may spend on them."""

CONTROL_EVERY = 4
"""Ladder phases between two controls (7 phases run on 2 cores: phase 1 and one at the end; 9 phases: one after
phase 4 too)."""

CONTROL_CONFIG = LoaderConfig(batch_size=1, num_workers=0)


def add(session: StressSession, control: Control) -> None:
    session.drift = drift_record([*controls_of(session.drift), control])
    session.flush()


def control_of(result: RunResult, window_s: float) -> Control | None:
    """The control a W=0 run gives: its single-process rate at the middle of its window (the window ended as the
    run returned, less the child's brief exit); None if it failed."""
    rate = single_process_rate(result.metrics) if result.passed else None
    return Control(t=time.time() - window_s / 2, videos_per_s=float(rate)) if rate else None


def window_request(stress: Stress, config: LoaderConfig, seconds: float, name: str, warmup: int = 2) -> RunRequest:
    """``config`` isolated for a fixed measured window of ``seconds`` (no convergence test, no full-queue hold),
    under the session's emulated limits and step time as its ladder phases: the drift controls' and the
    interleaved comparison's one kind of run."""
    s = stress.settings
    return RunRequest(
        stress._dataset(False),
        config,
        1_000_000,  # the window's time ends it
        run_dir=stress.session.runs_dir,
        name=name,
        sandbox=s.sandbox,
        watchdog=stress.watchdog(),
        step_s=float(s.step_time or 0.0),
        measure={
            "warmup_batches": warmup,
            "min_batches": 1,
            "max_batches": 1_000_000,
            "max_s": seconds,
            "target_rel": 1e-9,  # never "converged": every window is the same fixed length
            "min_s": seconds,
        },
        hold=False,
    )


def window(stress: Stress, config: LoaderConfig, seconds: float, name: str, warmup: int = 2) -> RunResult:
    """One fixed window of ``config`` in a fresh isolated child (:func:`window_request`)."""
    return run_config(window_request(stress, config, seconds, name, warmup))


def control(stress: Stress, config: LoaderConfig = CONTROL_CONFIG) -> Control | None:
    """One control now: ``config`` (the reference: phase 1's) for :data:`CONTROL_S` seconds, isolated; recorded in
    the session."""
    s = stress.session
    n = len(controls_of(s.drift))
    c = control_of(window(stress, config, CONTROL_S, f"drift-control-{n}"), CONTROL_S)
    if c is not None:
        add(s, c)
    return c


def after_phase(stress: Stress, phase: Phase, result: RunResult | None) -> None:
    """The ladder's controls: phase 1's own rate starts the series (and arms the end-of-session control);
    every :data:`CONTROL_EVERY` phases that ran, a control. ``--no-drift``: none of these."""
    s = stress.session
    if result is None or stress.settings.no_drift:
        return
    if phase.decode_rate:
        m = result.metrics.get("loop_s")
        c = control_of(result, float(m) if m else CONTROL_S)
        if c is not None:
            first = s.drift is None
            add(s, c)
            s.finish_hooks.insert(0, lambda: interleave_or_say(stress))  # before the last control: bracketed
            if first:
                s.finish_hooks.append(lambda: end(stress, phase.config))
        return
    if s.drift is not None and phase.number % CONTROL_EVERY == 0 and _following(stress, phase) >= CONTROL_EVERY:
        control(stress, _reference(s))


def _following(stress: Stress, phase: Phase) -> int:
    """The ladder phases that run after ``phase`` (capped duplicates do not run)."""
    return sum(1 for p in ladder(stress.settings.max_workers) if p.duplicate_of is None and p.number > phase.number)


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


# --- the interleaved final comparison of the quick ladder's fastest and its close configs -----------------------

QUICK_BUDGET_S = 120.0
"""What a whole ``pytest -m quick`` session may take warm on a quiet machine (issue #24): the interleaved
comparison gets what the ladder left of it."""

INTERLEAVED_MAX_S = 30.0
"""The most the interleaved comparison takes, whatever the budget leaves: four rounds of three paused candidates
(each started once, ~2.5 s here) or three rounds of two fresh ones (a child's start-up in every window)."""

ROUND_S = 1.5
"""Seconds of one candidate's window in a round: seconds apart, so the machine's drift (autocorrelated over
~6–30 s here, benchmarks/host_drift.py) moves the candidates of one round alike; 1.5 s holds 6–20 full-size batches
of the ladder's tied configs here and lets three rounds of two fit what the 2 minutes leave after the ladder."""

ROUND_MIN_S = 1.0
"""The shortest paused window the comparison shortens to when the budget is tight: per-round ratios of two W=2
configs varied by 14 % (sd) at 1.25 s windows and 8.5 % at 2.5 s here, so shorter ones could tell apart little
more than what the ladder already did not tie."""

MAX_ROUNDS = 4
MIN_ROUNDS = 3
"""Fewer rounds are not run: with two, Student's t is 12.7 and only near-identical ratios could decide anything."""
MAX_CANDIDATES = 3
END_RESERVE_S = 8.0
"""Kept back from the budget for what follows the comparison (the last drift control and the report) when the
session has no phase 1 record to size it from (:func:`end_reserve_s`)."""
REPORT_S = 2.0
"""After the last control: the report (summary.md, plots, results.json: ~0.5 s here) and pytest's own exit, and
its start before the session's clock (a warm session measured 119.5 s by pytest, 120.4 s by the shell)."""


def end_reserve_s(results: Sequence[RunRecord]) -> float:
    """What follows the comparison: the end control (phase 1's config again: its start-up and exit as that phase
    recorded them, plus :data:`CONTROL_S`) and the report."""
    for r in results:
        if r.get("phase") == "phase1" and r.get("kind") == "quick" and r.get("status") == "passed":
            m = r.get("metrics") or {}
            overhead = float(r.get("wall_s") or 0.0) - float(m.get("loop_s") or 0.0)
            if overhead > 0:
                return overhead + CONTROL_S + REPORT_S
    return END_RESERVE_S


@dataclass(frozen=True)
class Candidate:
    label: str
    config: LoaderConfig
    rate: float
    span: tuple[float, float]
    startup_s: float  # the phase's wall time less its measured window: a fresh window's expected overhead
    first_batch_s: float = 0.0  # spawn → first batch as the phase recorded it: a paused child's start-up
    batch_s: float = 0.0  # one batch at the phase's rate
    shm_bytes: float | None = None  # as the recommendation sizes it: the run's shm peak, else its prediction

    @property
    def paused_extra_s(self) -> float:
        """What a paused window costs beyond its seconds: the opening batch and half a worker round past it (the
        window ends at a whole round: measured 1.47 s per 1.25 s window of bs4/bs8-w2 here)."""
        return (1 + max(1, self.config.num_workers) / 2) * self.batch_s

    @property
    def cost(self) -> tuple[object, ...]:
        """The tie rule's own order (:func:`~ssv2_fixtures.run.stats.tie_cost`): the cheapest is what it
        recommends."""
        return tie_cost(self.config.num_workers, self.config.effective_prefetch, self.shm_bytes, self.rate, self.label)


def _candidate(rec: RunRecord) -> Candidate | None:
    m = rec.get("metrics") or {}
    v = m.get("videos_per_s")
    if rec.get("status") != "passed" or rec.get("kind") != "quick" or not v:
        return None
    if (rec.get("budget") or {}).get("fits") is False:  # the recommendation leaves these out too
        return None
    try:
        config = LoaderConfig.from_dict(rec.get("config") or {})
    except ValueError:
        return None
    iv = m.get("videos_per_s_interval")
    span = (float(iv[0]), float(iv[1])) if isinstance(iv, (list, tuple)) and len(iv) == 2 else (float(v), float(v))
    wall, loop = float(rec.get("wall_s") or 0.0), float(m.get("loop_s") or 0.0)
    label = str(rec.get("label") or config.label)  # the report's name for it (report/model.Run.label)
    first = float(m.get("startup_s") or 0.0) or max(0.0, wall - loop)
    shm = m.get("shm_peak_bytes") or (rec.get("budget") or {}).get("shm_bytes")
    batch_s = config.batch_size / float(v)
    return Candidate(label, config, float(v), span, max(0.0, wall - loop), first, batch_s, shm)


DRIFT_ALLOWANCE = 0.15
"""How far apart sequential windows can put two equal configs on a drifting machine: the development VM's speed moved
±15 % over minutes (benchmarks/host_drift.py), and the single-process controls do not see every such minute (a
warm session's bs4-w2-pf2 read 53.0 and 70.9 videos/s with controls within 8 % and 13 %)."""


def tie_set(results: Sequence[RunRecord], cap: int = MAX_CANDIDATES, allowance: float = 0.0) -> list[Candidate]:
    """The configs the interleaved comparison re-measures: the quick ladder's fastest, then, cheapest first (the
    tie rule's own order, the one it would recommend first), those that tie with it by the tie rule
    (:func:`ssv2_fixtures.run.stats.ties`; one run per config, its fastest) or would, had the machine's drift
    (``allowance``, relative) slowed their window: rate × (1 + allowance) ties. At most ``cap``; empty when
    nothing is that close to the fastest."""
    best: dict[str, Candidate] = {}
    for rec in results:
        c = _candidate(rec)
        if c is not None and (c.label not in best or c.rate > best[c.label].rate):
            best[c.label] = c
    if len(best) < 2:
        return []
    fastest = min(best.values(), key=lambda c: (-c.rate, c.cost))
    up = 1.0 + allowance
    close = [
        c
        for c in best.values()
        if c is not fastest and ties(fastest.rate, fastest.span, c.rate * up, (c.span[0] * up, c.span[1] * up))
    ]
    return [fastest, *sorted(close, key=lambda c: c.cost)][:cap] if close else []


def session_elapsed(session: StressSession, now: float) -> float:
    """Seconds since the session's stress part began (the first stress test's dataset), else since the session was
    created (its results.json ``created``): a plain ``pytest`` runs other tests before the ladder, and those are
    not the quick session's 2 minutes."""
    if session.stress_started is not None:
        return now - session.stress_started
    try:
        return now - datetime.fromisoformat(session.file()["created"]).timestamp()
    except (KeyError, ValueError):
        return 0.0


def _left_out(rec: InterleavedDecision, left: Sequence[Candidate]) -> InterleavedDecision:
    """``rec`` with the candidates cut for time named in its ``stopped`` (they stay in the tie, not re-measured)."""
    if left:
        why = f"not re-measured for time: {', '.join(c.label for c in left)}"
        rec["stopped"] = f"{rec.get('stopped', '')}; {why}".lstrip("; ")
    return rec


def plan_for(cands: Sequence[Candidate], left_s: float) -> Plan:
    """The comparison's plan: :data:`ROUND_S` windows, each expected to cost its phase's start-up on top."""
    cost = sum(c.startup_s for c in cands) / len(cands) + ROUND_S if cands else ROUND_S
    return Plan(
        round_s=ROUND_S,
        max_rounds=MAX_ROUNDS,
        budget_s=max(0.0, min(INTERLEAVED_MAX_S, left_s)),
        window_cost_s=cost,
        min_rounds=MIN_ROUNDS,
    )


def compare(
    cands: Sequence[Candidate], window_of: Callable[[Candidate, float], float | None], left_s: float
) -> InterleavedDecision:
    """The tie re-measured in alternating windows (:func:`ssv2_fixtures.run.drift.decide`) within ``left_s``:
    the candidates in order (the fastest, then the cheapest), as many as :data:`MIN_ROUNDS` rounds of them fit
    (at least two; those left out stay in the tie, not re-measured, and the record says so)."""
    n = len(cands)
    while n > 2:
        p = plan_for(cands[:n], left_s)
        if p.min_rounds * n * p.window_cost_s <= p.budget_s:
            break
        n -= 1
    by = {c.label: c for c in cands[:n]}
    rec = decide(list(by), lambda name, secs: window_of(by[name], secs), plan_for(cands[:n], left_s), time.monotonic)
    return _left_out(rec, cands[n:])


def paused_fit(stress: Stress, cands: Sequence[Candidate]) -> bool:
    """Paused children hold their prefetch queues at once. Under an emulated /dev/shm each child mounts its own;
    on the host's, the candidates' predicted shared memory together must fit (the one fit rule, ``fits``)."""
    from .campaign import available_shm, fits

    sandbox = stress.settings.sandbox
    if sandbox is not None and sandbox.shm_bytes is not None:
        return True
    need = sum(stress.budget(c.config).shm_bytes for c in cands if c.config.num_workers)
    return fits(need, 1, available_shm(stress.settings, stress.session.machine))


def compare_paused(stress: Stress, cands: Sequence[Candidate], left_s: float) -> InterleavedDecision:
    """The tie re-measured in alternating windows of children started once each and paused in between
    (:class:`~ssv2_fixtures.run.paused.PausedRuns`): each candidate pays its start-up once (its phase's, as
    recorded) instead of once per window. As many candidates as :data:`MIN_ROUNDS` rounds fit for (at least two),
    in windows of :data:`ROUND_S`, shortened to what the budget leaves but never below :data:`ROUND_MIN_S`."""
    budget = max(0.0, min(INTERLEAVED_MAX_S, left_s))

    def round_s(k: int) -> float:
        """The longest window up to :data:`ROUND_S` with which the start-ups and :data:`MIN_ROUNDS` rounds of the
        first ``k`` candidates fit the budget."""
        fixed = sum(c.first_batch_s + MIN_ROUNDS * c.paused_extra_s for c in cands[:k])
        return min(ROUND_S, (budget - fixed) / (MIN_ROUNDS * k))

    def needs(k: int, secs: float) -> float:
        return sum(c.first_batch_s + MIN_ROUNDS * (secs + c.paused_extra_s) for c in cands[:k])

    n = len(cands)
    while n > 2 and round_s(n) < ROUND_MIN_S:
        n -= 1
    secs = round_s(n)
    t0 = time.monotonic()
    names = [c.label for c in cands[:n]]
    if secs < ROUND_MIN_S:
        why = (
            f"skipped: {n} start-ups and {MIN_ROUNDS} rounds of {n} windows of {ROUND_MIN_S:.0f} s would take "
            f"about {needs(n, ROUND_MIN_S):.0f} s, more than the {budget:.0f} s left for them"
        )
        rec = not_measured(names, why)
        rec["stopped"] = why
    else:
        requests = {
            c.label: window_request(stress, c.config, PAUSED_CHILD_S, f"interleaved-{c.label}", warmup=1)
            for c in cands[:n]
        }
        with PausedRuns(requests) as runs:
            started = time.monotonic() - t0
            missing = [x for x in names if x not in runs.started]
            if missing:
                rec = not_measured(names, f"{', '.join(missing)} did not start")
                rec["stopped"] = f"{', '.join(missing)} did not start"
            else:
                cost = secs + sum(c.paused_extra_s for c in cands[:n]) / n
                plan = Plan(secs, MAX_ROUNDS, budget - started, cost, MIN_ROUNDS)
                rec = decide(names, runs.window, plan, time.monotonic)
        rec["startup_s"] = started
    rec["round_s"] = round(max(secs, 0.0), 2)
    rec["seconds"] = time.monotonic() - t0
    rec["windows"] = "paused"
    return _left_out(rec, cands[n:])


PAUSED_CHILD_S = 600.0
"""A paused child's own window: far longer than any comparison, which ends the children itself."""


def interleave(stress: Stress) -> InterleavedDecision | None:
    """After the quick ladder: its tie (:func:`tie_set`) re-measured in alternating windows with the time the
    session's 2 minutes leave, recorded in the session (results.json ``"interleaved"``); None without a tie.
    Paused children (:func:`compare_paused`) where their queues fit in shared memory together, else a fresh child
    per window (:func:`compare`)."""
    s = stress.session
    cands = tie_set(s.results, allowance=max(DRIFT_ALLOWANCE, float((s.drift or {}).get("max_change") or 0.0)))
    if not cands:
        return None
    smoke = stress.settings.quick_batches < QUICK_WARMUP + QUICK_MIN_BATCHES
    if smoke:  # the phases measured no window of their own: their tie says nothing worth re-measuring
        why = f"smoke run: --quick-batches {stress.settings.quick_batches} leaves the phases no measured window"
        s.interleaved = {**not_measured([c.label for c in cands], why), "stopped": why}
        s.flush()
        return s.interleaved
    left = QUICK_BUDGET_S - session_elapsed(s, time.time()) - end_reserve_s(s.results)
    n = [0]

    def run_window(c: Candidate, secs: float) -> float | None:
        n[0] += 1
        r = window(stress, c.config, secs, f"interleaved-{n[0]}-{c.label}", warmup=QUICK_WARMUP)  # the ladder's
        v = r.metrics.get("videos_per_s") if r.passed else None
        return float(v) if v else None

    if paused_fit(stress, cands):
        rec = compare_paused(stress, cands, left)
    else:
        rec = compare(cands, run_window, left)
        rec["windows"] = "fresh"
    s.interleaved = rec
    s.flush()
    return rec


def interleave_or_say(stress: Stress) -> None:
    """At the session's end, before the last drift control (so the controls bracket its windows too): the
    interleaved comparison of the ladder's tie."""
    try:
        interleave(stress)
    except Exception as exc:  # the report must not fail on it; say why it is missing
        stress.session.interleaved = {"candidates": [], "rounds": [], "text": f"not re-measured: {exc}"}


def group_control(stress: Stress) -> None:
    """Sustained, validate and tune sessions: a control before each group of configs (a sustained config, a
    validate run, a tune). The first one starts the series and arms the control at the session's end, so the
    series is a control at the start, one between groups, one at the end. A control that fails adds nothing;
    ``--no-drift`` takes none."""
    s = stress.session
    if stress.settings.no_drift:
        return
    first = s.drift is None
    config = _reference(s)
    try:
        control(stress, config)
    except Exception:  # a control never fails the session's own tests
        return
    if first and s.drift is not None:
        s.finish_hooks.append(lambda: end(stress, config))
