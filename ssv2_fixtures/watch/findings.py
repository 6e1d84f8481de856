"""What the watch concludes from its samples: each finding kind, its threshold and its remedy, defined once.

Pure functions over plain series (steps and values), so that every rule is tested without processes.
Remedies for resources running out are the stress outcomes' own texts
(:func:`ssv2_fixtures.run.outcome.kind` ``(...).remedy``), and the memory-growth rule is the
stress leak verdict's (:func:`ssv2_fixtures.run.growth.leaks`, its floors and its warm-up share):
a watch and a stress run of the same config say the same thing in the same words. A loader failure is
classified by :func:`ssv2_fixtures.run.outcome.classify`, as a stress run's child would be.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

from ..data.loader import effective_prefetch
from ..run.growth import LEAK_MIN_BYTES, LEAK_MIN_FRACTION, WARMUP_FRACTION, leaks
from ..run.outcome import Evidence, classify, kind
from ..run.record import STEP_BOUND_WAIT_FRACTION
from ..run.shm import shm_slots_for
from ..run.units import MiB, fmt_bytes

WATCH_KINDS = ("data_bound", "rss_growth", "shm_headroom", "fd_growth", "tmp_growth")

# the loop waits for data more than this share of its time: the GPU is starved (the step-bound rule's other side)
DATA_BOUND_FRACTION = STEP_BOUND_WAIT_FRACTION
DATA_BOUND_WINDOW = 50  # ... over the last 50 steps
DATA_BOUND_MIN_STEPS = 10  # fewer steps (after the first batch) say nothing yet
SHM_HEADROOM_BATCHES = 3  # free /dev/shm below ~3 batches: the next allocations in flight fail
TREND_MIN_SAMPLES = 6  # a growth trend needs this many samples after warm-up ...
TREND_MIN_STEPS = 10  # ... spread over at least this many steps
FD_GROWTH_MIN = 16  # fds per process: below this a growth is prefetch noise
TMP_GROWTH_MIN_FILES = 16  # TMPDIR growth below 16 files and ...
TMP_GROWTH_MIN_BYTES = 64 * MiB  # ... 64 MiB is noise (anything may write a few temp files)


class Finding(TypedDict, total=False):
    kind: str  # one of WATCH_KINDS, or an outcome kind (KIND_NAMES) when the loader raised
    step: int  # steps received when it was found (for a failure: batches received before it)
    detail: str
    remedy: str
    failure: bool  # True: the loader raised; the kind is the stress outcome's classification


@dataclass(frozen=True)
class Trend:
    slope: float  # value per step (least squares over the samples after warm-up)
    growth: float  # slope × the steps spanned
    first: float  # mean of the first third of the samples
    last: float  # the last value
    start_step: int
    end_step: int


SERIES_POINTS = 600  # a trend's series holds at most this many points (the whole run, decimated)


@dataclass
class Series:
    """One sampled quantity over the whole run in at most ``limit`` points, kept as readings arrive.

    The trend rules run every reading, in the training process: over the full history their cost
    would grow with the run (about 29 ms a reading at 4 h of 1 s readings). When full, every other
    point is dropped and from then on only every ``stride``-th reading is kept, so the points stay
    evenly spaced over the run and the trend sees all of it, coarser, at a bounded cost."""

    limit: int = SERIES_POINTS
    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    stride: int = 1
    _since: int = 0  # readings since the last kept point

    def add(self, step: int, value: float) -> None:
        if self._since + 1 < self.stride:
            self._since += 1
            return
        self._since = 0
        self.steps.append(int(step))
        self.values.append(float(value))
        if len(self.steps) > self.limit:
            newest_dropped = len(self.steps) % 2 == 0  # odd last index: [1::2] takes it
            del self.steps[1::2], self.values[1::2]
            if newest_dropped:  # the last kept point is one old stride back
                self._since = self.stride
            self.stride *= 2


def trend(steps: Sequence[int], values: Sequence[float]) -> Trend | None:
    """A steady rise of ``values`` over ``steps``: the means of the three thirds (after the warm-up
    fraction of the stress verdicts) strictly increase and the least-squares slope is positive. A
    sawtooth (workers restarting per epoch) or a plateau is no trend."""
    n = len(steps)
    skip = int(n * WARMUP_FRACTION) + 1 if n > TREND_MIN_SAMPLES else 0
    s, v = [float(x) for x in steps[skip:]], [float(x) for x in values[skip:]]
    if len(s) < TREND_MIN_SAMPLES or s[-1] - s[0] < TREND_MIN_STEPS:
        return None
    k = len(v) // 3
    a, b, c = (sum(p) / len(p) for p in (v[:k], v[k : len(v) - k], v[len(v) - k :]))
    if not a < b < c:
        return None
    ms, mv = sum(s) / len(s), sum(v) / len(v)
    den = sum((x - ms) ** 2 for x in s)
    slope = sum((x - ms) * (y - mv) for x, y in zip(s, v)) / den if den > 0 else 0.0
    if slope <= 0:
        return None
    return Trend(slope, slope * (s[-1] - s[0]), a, v[-1], int(s[0]), int(s[-1]))


def window_wait_fraction(
    starts: Sequence[float], ends: Sequence[float], window: int = DATA_BOUND_WINDOW, n: int | None = None
) -> tuple[float, int] | None:
    """(wait fraction, steps) over the last ``window`` steps after the first batch: time blocked in
    ``next()`` over the loop time from the end of the batch before the window to the last batch.
    ``starts[i]``/``ends[i]``: when ``next()`` was called / returned batch ``i``; only the first ``n``
    count (the lists may grow in another thread while this reads them)."""
    n = min(len(starts), len(ends), n if n is not None else len(ends))
    k = min(window, n - 1)  # the first batch (worker start-up) is never in the window
    if k < DATA_BOUND_MIN_STEPS:
        return None
    loop = ends[n - 1] - ends[n - 1 - k]
    if loop <= 0:
        return None
    wait = sum(ends[i] - starts[i] for i in range(n - k, n))
    return wait / loop, k


def data_bound(
    starts: Sequence[float], ends: Sequence[float], *, num_workers: int, cores: int | None = None, n: int | None = None
) -> Finding | None:
    w = window_wait_fraction(starts, ends, n=n)
    if w is None or w[0] <= DATA_BOUND_FRACTION:
        return None
    frac, k = w
    cores = cores or len(os.sched_getaffinity(0))
    more = (
        f"raise num_workers (now {num_workers}) toward the {cores} cores"
        if num_workers < cores
        else f"num_workers ({num_workers}) already reaches the {cores} cores: more will not help"
    )
    return Finding(
        kind="data_bound",
        step=min(len(ends), n if n is not None else len(ends)),
        detail=(
            f"the loop waited for data {frac:.0%} of the time over the last {k} steps "
            f"(threshold {DATA_BOUND_FRACTION:.0%}): the accelerator is starved"
        ),
        remedy=(
            f"{more}; find the fastest setting with `pytest -m tune`; make the transforms lighter "
            "(decode at the target size, no float conversion in the workers); pass uint8 clips through "
            "shared memory and normalise on the GPU (float32 is 4× the bytes)"
        ),
    )


def _eta(steps_left: float, step_s: float | None) -> str:
    t = f" (~{steps_left * step_s / 60:.0f} min at {step_s * 1000:.0f} ms/step)" if step_s else ""
    return f"~{steps_left:.0f} steps{t}"


def rss_growth(
    steps: Sequence[int],
    rss: Sequence[float],
    *,
    available_bytes: int | None,
    step_s: float | None = None,
    what: str = "worker tree",
) -> Finding | None:
    """The stress leak rule (growth past both :data:`LEAK_MIN_BYTES` and :data:`LEAK_MIN_FRACTION` of
    the start), on a steady trend."""
    tr = trend(steps, rss)
    if tr is None or not leaks(tr.growth, tr.first):
        return None
    left = (
        f"; at this rate the {fmt_bytes(available_bytes)} of RAM available run out in "
        f"{_eta(available_bytes / tr.slope, step_s)}"
        if available_bytes
        else ""
    )
    ev = Evidence(facts={"rss_peak_bytes": int(tr.last)})
    return Finding(
        kind="rss_growth",
        step=tr.end_step,
        detail=(
            f"{what} RSS grows steadily: +{fmt_bytes(tr.growth)} over steps {tr.start_step}–{tr.end_step} "
            f"({fmt_bytes(tr.slope)}/step, now {fmt_bytes(tr.last)}; threshold > {fmt_bytes(LEAK_MIN_BYTES)} and > "
            f"{LEAK_MIN_FRACTION:.0%}){left}"
        ),
        remedy=(
            "a Python list or dict index in the dataset is copied page by page into every worker "
            "(copy-on-write, pytorch#13246): keep it in numpy arrays; otherwise the dataset code leaks. "
            "Before it runs out: " + kind("oom_killed").remedy(ev)
        ),
    )


def shm_headroom(
    free_bytes: int | None,
    batch_bytes: int,
    *,
    step: int,
    num_workers: int,
    prefetch_factor: int | None,
    batch_size: int | None,
    ranks: int = 1,
) -> Finding | None:
    """Free /dev/shm below :data:`SHM_HEADROOM_BATCHES` batches; with no workers nothing is shared."""
    if free_bytes is None or num_workers < 1 or batch_bytes <= 0:
        return None
    if free_bytes >= SHM_HEADROOM_BATCHES * batch_bytes:
        return None
    need = shm_slots_for(num_workers, prefetch_factor) * batch_bytes  # run.shm's slots, the rule the runs are judged by
    ev = Evidence(
        facts={"shm_need_bytes": need, "shm_free_bytes": free_bytes, "ranks": ranks},
        config={
            "num_workers": num_workers,
            "prefetch_factor": effective_prefetch(num_workers, prefetch_factor),
            "batch_size": batch_size,
        },
    )
    return Finding(
        kind="shm_headroom",
        step=step,
        detail=(
            f"/dev/shm has {fmt_bytes(free_bytes)} free, less than {SHM_HEADROOM_BATCHES} batches of "
            f"{fmt_bytes(batch_bytes)}: shm_exhausted (or a bus error) is ahead"
        ),
        remedy=kind("shm_exhausted").remedy(ev),
    )


def fd_growth(
    steps: Sequence[int], fds: Sequence[float], *, nofile: int | None, step_s: float | None = None
) -> Finding | None:
    """Open fds of one process (the most of any in the tree) rising toward ``ulimit -n``."""
    tr = trend(steps, fds)
    if tr is None or tr.growth < FD_GROWTH_MIN:
        return None
    at = (
        f"; EMFILE (ulimit -n {nofile}) at step ~{tr.end_step + max(0.0, nofile - tr.last) / tr.slope:.0f}, "
        f"{_eta(max(0.0, nofile - tr.last) / tr.slope, step_s)} from now"
        if nofile
        else ""
    )
    return Finding(
        kind="fd_growth",
        step=tr.end_step,
        detail=(
            f"open fds grow steadily: +{tr.growth:.0f} over steps {tr.start_step}–{tr.end_step} "
            f"({tr.slope:.2f}/step, now {tr.last:.0f}; threshold {FD_GROWTH_MIN}){at}"
        ),
        remedy=kind("fd_exhausted").remedy(Evidence(facts={"nofile": nofile}))
        + "; if the dataset opens files, close them (a `with` block per item)",
    )


def tmp_growth(
    steps: Sequence[int],
    files: Sequence[float],
    nbytes: Sequence[float],
    *,
    tmpdir: str,
    free_bytes: int | None,
    step_s: float | None = None,
    strategy: str | None = None,
) -> Finding | None:
    """TMPDIR files or bytes (multiprocessing's own folders left out) rising steadily."""
    tb, tf = trend(steps, nbytes), trend(steps, files)
    by_bytes = tb is not None and tb.growth >= TMP_GROWTH_MIN_BYTES
    by_files = tf is not None and tf.growth >= TMP_GROWTH_MIN_FILES
    if not (by_bytes or by_files):
        return None
    parts = []
    if tf is not None and by_files:
        parts.append(f"+{tf.growth:.0f} files over steps {tf.start_step}–{tf.end_step} ({tf.slope:.2f}/step)")
    if tb is not None and (by_bytes or tb.growth > 0):
        parts.append(f"+{fmt_bytes(tb.growth)} ({fmt_bytes(tb.slope)}/step)")
    end = tb or tf
    assert end is not None
    fill = (
        f"; the {fmt_bytes(free_bytes)} free there fill in {_eta(free_bytes / tb.slope, step_s)}"
        if tb is not None and free_bytes is not None and tb.slope > 0
        else ""
    )
    other = {"file_system": "file_descriptor", "file_descriptor": "file_system"}.get(strategy or "")
    alt = (
        f"; if they are the sharing strategy's files ({strategy}), try "
        f"torch.multiprocessing.set_sharing_strategy('{other}')"
        if other
        else ""
    )
    ev = Evidence(facts={"tmpdir": tmpdir, "tmp_free_bytes": free_bytes})
    return Finding(
        kind="tmp_growth",
        step=end.end_step,
        detail=(
            f"TMPDIR ({tmpdir}) grows steadily: {', '.join(parts)}; threshold {TMP_GROWTH_MIN_FILES} files "
            f"or {fmt_bytes(TMP_GROWTH_MIN_BYTES)}{fill}"
        ),
        remedy=kind("tmp_full").remedy(ev) + alt,
    )


def failure(error: Mapping[str, Any], *, step: int, config: Mapping[str, Any], facts: Mapping[str, Any]) -> Finding:
    """The loader raised: the stress outcome rules name the kind and the remedy."""
    rec = classify(Evidence(error=error, batches_done=step, config=config, facts=dict(facts)))
    return Finding(kind=rec["kind"], step=step, detail=rec["message"], remedy=rec["remedy"], failure=True)
