"""The full-queue hold: the worst-case shared memory of a loader, measured in every run.

NOTE [full-queue hold]
    Without a training step the main process takes each batch as soon as it lands, so the workers'
    prefetch slots are rarely full and a run's sampled /dev/shm peak is far below what training needs:
    where the step is slower than the loader, every worker finishes its ``prefetch_factor`` batches and
    they all wait in /dev/shm (``num_workers × prefetch_factor``) while the step holds one more (the
    ``+ 1`` of :func:`.shm.shm_slots`). A config that cannot hold that state dies in training (ENOSPC
    in a worker's collate, a bus error on a mapped write), whatever a loader-only run showed.

    So after its loop (after the measured window, so no rate includes it) the single-process child
    (:func:`ssv2_fixtures.run.loop.batch_loop`) takes one more batch and *holds* it, consuming nothing,
    until every batch in flight has landed (the iterator's own count: tasks sent and not yet yielded
    against results waiting in its queues and its out-of-order stash), then keeps the state for
    :data:`SETTLE_S` so the parent's monitor samples it too. Where the iterator's internals cannot be
    read, it waits until /dev/shm stops growing for longer than one worker's batch. Either way it never
    waits past a cap derived from the loop's own time per batch (twice the time all slots take to fill
    from empty, at least :data:`HOLD_MIN_S`, at most :data:`HOLD_MAX_S`). It then *drains* the batches in
    flight with ``next()``, exactly as training would take them: a batch whose worker could not allocate
    its shared memory re-raises there, and a worker killed meanwhile raises through torch's SIGCHLD
    handler, so the run fails as it would in training (``shm_exhausted``, ``bus_error``) under the real
    or emulated /dev/shm.

    Events: ``hold`` {in_flight, cap_s, batch_s} when it starts, ``held`` {seconds, landed, in_flight,
    stopped ("full" / "stable" / "cap"), shm_used_bytes (the child's largest /dev/shm reading during
    the hold, absolute), shm_start_bytes} before the drain. No ``batch`` event is written for the held
    and drained batches: they are no part of any rate. The record's metrics (:func:`hold_metrics`):
    ``shm_full_queue_bytes`` — /dev/shm in use with every slot full (the child's readings and the
    monitor's samples during the hold, over the monitor's baseline); ``full_queue_batches`` — the
    batches that were in /dev/shm then (landed + the held one); ``full_queue_s``, ``full_queue_stopped``.
    ``shm_peak_bytes`` stays the whole run's peak and so includes the hold: it is the worst case the
    report sizes /dev/shm from. A run that fails after ``hold`` has ``during: "full-queue hold"`` in its
    outcome's evidence.

This module imports only the standard library at module level: the child imports it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

HOLD_MAX_S = 20.0
"""Longest hold: well inside the watchdog's stall limit (30 s + 0.25 s per video), which the drain after
it is still under."""
HOLD_MIN_S = 2.0
"""Shortest cap: a fast loop's per-batch time says little about a worker filling its last slot."""
SETTLE_S = 0.6
"""How long the full state is kept once every batch has landed: two or more of the monitor's samples
(every 0.25 s by default) see it as well."""
POLL_S = 0.05
DURING = "full-queue hold"


class Emitter(Protocol):
    def emit(self, ev: str, /, **fields: Any) -> None: ...


def shm_used(path: str = "/dev/shm") -> int | None:
    """Bytes in use on the filesystem at ``path`` as this process sees it (an emulated /dev/shm in a
    private mount namespace is the child's own); None where there is none."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def landed(it: Any) -> tuple[int, int] | None:
    """(batches landed, batches in flight) of a torch multiprocessing DataLoader iterator: in flight are
    the tasks sent and not yet yielded; landed are those waiting in its result queue(s) or its
    out-of-order stash (a worker's exception counts: it waits there to be raised). None where the
    iterator's internals are not these (another torch, a user's own loader)."""
    try:
        in_flight = int(it._send_idx) - int(it._rcvd_idx)
        stashed = sum(1 for v in it._task_info.values() if len(v) == 2)
        waiting = int(it._worker_result_queue.qsize())
        if it._data_queue is not it._worker_result_queue:  # pin_memory: its thread's output queue too
            waiting += int(it._data_queue.qsize())
    except (AttributeError, NotImplementedError, TypeError, ValueError, OSError):
        return None
    return stashed + waiting, in_flight


def cap_for(batch_s: float, workers: int, prefetch: int) -> float:
    """The hold's bound: twice the time all ``workers × prefetch`` slots take to fill from empty at the
    loop's time per batch (``batch_s``), within [HOLD_MIN_S, HOLD_MAX_S]."""
    return min(HOLD_MAX_S, max(HOLD_MIN_S, 2.0 * workers * prefetch * max(batch_s, 0.0)))


def hold_full_queues(
    events: Emitter,
    it: Any,
    *,
    workers: int,
    prefetch: int,
    batch_s: float,
    now: Callable[[], float] = time.perf_counter,
    sleep: Callable[[float], None] = time.sleep,
    read_shm: Callable[[], int | None] = shm_used,
    count: Callable[[Any], tuple[int, int] | None] = landed,
) -> dict[str, Any] | None:
    """NOTE [full-queue hold]: hold one batch until every batch in flight has landed, record the state,
    then drain them with ``next()`` (which raises what training would meet). Returns the ``held``
    fields; None when the loader ended instead (a finite epoch)."""
    cap = cap_for(batch_s, workers, prefetch)
    events.emit("hold", in_flight=workers * prefetch, cap_s=cap, batch_s=batch_s)
    try:
        held = next(it)  # the batch a slow training step would be working on meanwhile
    except StopIteration:
        return None
    t0 = now()
    start = read_shm()
    peak, last, grew = start, start, 0.0
    full_at: float | None = None
    stable_s = max(SETTLE_S, 1.5 * workers * max(batch_s, 0.0))  # one worker's batch, with slack
    stopped, got = "cap", count(it)
    while True:
        t = now() - t0
        u = read_shm()
        if u is not None:
            peak = u if peak is None else max(peak, u)
            if last is None or u > last:
                grew = t
            last = u
        got = count(it)
        if got is not None:
            if got[0] >= got[1]:
                full_at = t if full_at is None else full_at
                if t - full_at >= SETTLE_S:
                    stopped = "full"
                    break
            else:
                full_at = None
        elif u is not None and t - grew >= stable_s:
            stopped = "stable"
            break
        if t >= cap:
            break
        sleep(POLL_S)
    fields: dict[str, Any] = {
        "seconds": now() - t0,
        "landed": got[0] if got else None,
        "in_flight": got[1] if got else workers * prefetch,
        "stopped": stopped,
        "shm_used_bytes": peak,
        "shm_start_bytes": start,
    }
    events.emit("held", **fields)
    for _ in range(int(fields["in_flight"])):
        next(it)  # the queued batches, in order: a worker's failed allocation is re-raised here
    del held
    return fields


def hold_metrics(events: Sequence[Mapping[str, Any]], samples: Sequence[Any], baseline: int) -> dict[str, Any]:
    """The record's full-queue metrics (NOTE [full-queue hold]) from the child's ``hold``/``held``
    events and the monitor's samples (``t``: time.time(), ``shm_used``: over ``baseline``)."""
    start = next((e for e in events if e.get("ev") == "hold"), None)
    held = next((e for e in events if e.get("ev") == "held"), None)
    if start is None or held is None:
        return {}
    t0, t1 = float(start.get("t") or 0.0), float(held.get("t") or 0.0)
    sampled = [int(s.shm_used) for s in samples if t0 <= float(s.t) <= t1]
    own = held.get("shm_used_bytes")
    seen = [*sampled, *([max(0, int(own) - int(baseline))] if own is not None else [])]
    out: dict[str, Any] = {
        "full_queue_s": float(held.get("seconds") or 0.0),
        "full_queue_stopped": str(held.get("stopped")),
    }
    if held.get("landed") is not None:
        out["full_queue_batches"] = int(held["landed"]) + 1  # + the batch the hold itself kept
    if seen:
        out["shm_full_queue_bytes"] = max(seen)
    return out


def hold_evidence(events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Evidence for a failed run's outcome: the failure came during the hold (or its drain)."""
    if any(e.get("ev") == "hold" for e in events):
        return {"during": DURING}
    return {}


__all__ = [
    "DURING",
    "HOLD_MAX_S",
    "cap_for",
    "hold_evidence",
    "hold_full_queues",
    "hold_metrics",
    "landed",
    "shm_used",
]
