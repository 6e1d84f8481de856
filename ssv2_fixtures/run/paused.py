"""Candidates kept alive and paused: short alternating windows without a child's start-up in each.

An interleaved comparison (:mod:`.drift`) needs many short windows of a few configs, A B C, C B A, …. A fresh
isolated child per window pays the interpreter, torch import, dataset and worker start-up every time (~3–5 s
here, more than the 2 s window). :class:`PausedRuns` starts each candidate's isolated child once
(:func:`~.runner.run_config` in a thread, the same isolation, watchdog and clean-up as every run), lets it load its
first batch, and stops its whole process group (the child and its DataLoader workers) with ``SIGSTOP``.
:meth:`PausedRuns.window` resumes one group, measures, and stops it again, so only one candidate loads at a time.

NOTE [paused windows]
    A stopped tree does nothing: no decoding, no prefetching, so its queue holds after ``SIGCONT`` what it held
    at ``SIGSTOP`` and the loader goes on from the state it was in. The first batch received after a resume was
    partly loaded before the pause: it opens the window and is not counted. The window's rate is videos ÷ wall
    time from that receipt to the last, over whole worker rounds (as the ladder's windows,
    :func:`.stats.whole_rounds`), ending at the first whole round at least ``seconds`` after it opened. What
    differs from a fresh window: the decoders' caches and the page cache saw the other candidates in between —
    alike for every candidate of a round. Each group is only ever signalled while its child's run is in flight
    (its pgid is the one the child reported in ``started``, never the suite's own group), and at the end it is
    resumed and sent ``SIGTERM``: the runner then ends and cleans its tree as after any run.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .monitor import TreeMonitor
from .request import RunRequest
from .runner import RunResult, run_config

WINDOW_TIMEOUT_S = 30.0
"""A window that has not ended this long after its ``seconds`` failed (the runner's own stall limit is longer)."""


@dataclass
class _Child:
    request: RunRequest
    workers: int
    cond: threading.Condition = field(default_factory=threading.Condition)
    pgid: int | None = None
    receipts: list[tuple[float, int]] = field(default_factory=list)  # (t, videos) of every batch event
    result: RunResult | None = None
    done: bool = False
    thread: threading.Thread | None = None

    def on_event(self, ev: dict[str, Any], monitor: TreeMonitor) -> None:
        with self.cond:
            if ev.get("ev") == "started" and isinstance(ev.get("pgid"), int):
                self.pgid = int(ev["pgid"])
            elif ev.get("ev") == "batch":
                self.receipts.append((float(ev.get("t") or time.time()), int(ev.get("videos") or 0)))
            self.cond.notify_all()

    def run(self) -> None:
        try:
            self.result = run_config(replace(self.request, on_event=self.on_event))
        finally:
            with self.cond:
                self.done = True
                self.cond.notify_all()

    def send(self, sig: signal.Signals) -> bool:
        """``sig`` to the child's process group while its run is in flight (never the suite's own group)."""
        with self.cond:
            pgid, done = self.pgid, self.done
        if done or pgid is None or pgid <= 1 or pgid == os.getpgrp():
            return False
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return False
        return True

    def wait_for(self, count: int, deadline: float) -> bool:
        """Until ``count`` batches have been received, the run ended or ``deadline`` (monotonic) passed."""
        with self.cond:
            while len(self.receipts) < count and not self.done:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(timeout=left)
            return len(self.receipts) >= count


class PausedRuns:
    """``requests`` (name → :class:`~.request.RunRequest`), each an isolated child started once and paused
    between its windows (NOTE [paused windows]). A context manager: entering starts the children one at a time
    (each stopped after its first batch, so the next starts alone); leaving ends them all. ``started`` names the
    children that reached their first batch; ``results`` holds each run's :class:`~.record.RunResult` after
    leaving. Each request should load far more batches, and for far longer, than the comparison takes: the
    comparison ends the children, not their own plan."""

    def __init__(self, requests: Mapping[str, RunRequest], startup_timeout_s: float = 120.0) -> None:
        self._children = {name: _Child(req, req.config.num_workers) for name, req in requests.items()}
        self._startup_timeout_s = startup_timeout_s
        self.started: list[str] = []
        self.startup_s: dict[str, float] = {}
        self.results: dict[str, RunResult | None] = {}

    def __enter__(self) -> PausedRuns:
        try:
            for name, child in self._children.items():
                t0 = time.monotonic()
                child.thread = threading.Thread(target=child.run, name=f"paused-{name}", daemon=True)
                child.thread.start()
                if not child.wait_for(1, t0 + self._startup_timeout_s) or not child.send(signal.SIGSTOP):
                    break  # the caller sees it missing from ``started``
                self.startup_s[name] = time.monotonic() - t0
                self.started.append(name)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def window(self, name: str, seconds: float) -> float | None:
        """Resume ``name``, measure its videos/s over about ``seconds`` (NOTE [paused windows]), pause it again.
        None when its run ended or stalled meanwhile (a failed window)."""
        child = self._children[name]
        with child.cond:
            first = len(child.receipts)
        if not child.send(signal.SIGCONT):
            return None
        try:
            deadline = time.monotonic() + seconds + WINDOW_TIMEOUT_S
            if not child.wait_for(first + 1, deadline):
                return None
            rounds = max(1, child.workers)
            with child.cond:
                t_open = child.receipts[first][0]
            end = first + rounds
            while True:
                if not child.wait_for(end + 1, deadline):
                    return None
                with child.cond:
                    t_end = child.receipts[end][0]
                    if t_end >= t_open + seconds:
                        videos = sum(v for _, v in child.receipts[first + 1 : end + 1])
                        break
                end += rounds
        finally:
            child.send(signal.SIGSTOP)
        return videos / (t_end - t_open) if t_end > t_open else None

    def close(self) -> None:
        """Resume and end every child still running, then wait for its run's record."""
        for child in self._children.values():
            child.send(signal.SIGCONT)
            child.send(signal.SIGTERM)
        for name, child in self._children.items():
            if child.thread is not None:
                child.thread.join(timeout=120.0)
            self.results[name] = child.result


__all__ = ["PausedRuns", "WINDOW_TIMEOUT_S"]
