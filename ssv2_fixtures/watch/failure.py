"""A loader failure, seen by the watch: classified by the stress outcome rules, logged after a last sample,
and passed on — the caller re-raises the same object; nothing here may raise instead of it.

torch raises a dead worker's error from its SIGCHLD handler, in the main thread, wherever it is (often
inside the training step, not in ``next()``): while the watch iterates, :meth:`FailureRecord.chain_sigchld`
wraps that handler, keeps what it raises (``pending``) and raises it on; it is recorded as the loop ends.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from ..run.child import error_fields
from ..run.shm import shm_slots_for
from . import findings
from .readings import Readings, local_ranks
from .steps import StepRecorder


class FailureRecord:
    """The first loader failure of a watch: the exception (``exc``), its finding and a SIGCHLD handler's
    exception not yet seen leaving the loop (``pending``)."""

    def __init__(
        self,
        steps: StepRecorder,
        readings: Readings,
        *,
        write: Callable[[str, dict[str, Any]], None],
    ) -> None:
        self.steps, self.readings, self.write = steps, readings, write
        self.exc: BaseException | None = None
        self.finding: findings.Finding | None = None
        self.pending: BaseException | None = None  # raised by torch's SIGCHLD handler
        self._previous_handler: Any = None
        self._handler: Callable[[int, FrameType | None], Any] | None = None

    def record(self, exc: BaseException) -> None:
        """Classify and log ``exc`` (once): the iterator is no longer live, a last light sample (marked
        ``final``), then the failure finding with the facts its remedy needs."""
        if exc is self.exc:  # seen in the SIGCHLD handler, now passing through next()
            return
        self.exc = exc
        readings = self.readings
        readings.iterating = False
        try:
            last = readings.take(final=True, light=True)
            step = len(self.steps.ends)
            error = error_fields(exc)
            error["batch"] = step
            config = readings.config
            facts: dict[str, Any] = {"nofile": readings.nofile, "tmpdir": readings.tmpdir, "ranks": local_ranks()}
            if last is not None:
                facts.update(
                    shm_free_bytes=last.get("shm_free"),
                    shm_total_bytes=last.get("shm_total"),
                    tmp_free_bytes=last.get("tmp_free"),
                    rss_peak_bytes=readings.peak("rss"),
                )
            if readings.batch_bytes:
                facts["shm_need_bytes"] = readings.batch_bytes * shm_slots_for(
                    readings.num_workers, config.get("prefetch_factor")
                )
            found = findings.failure(error, step=step, config=config, facts=facts)
            with readings.lock:
                self.finding = found
            self.write("finding", dict(found))
        except Exception:  # the watch must never hide the loader's own error
            pass

    def record_pending(self) -> None:
        """As the loop ends: a SIGCHLD handler's exception raised inside the training step (it never
        passed through next()), unless a failure is recorded already."""
        if self.pending is not None and self.exc is None:
            self.record(self.pending)

    def chain_sigchld(self) -> None:
        """Wrap the SIGCHLD handler torch installed for its workers, to see what it raises."""
        if threading.current_thread() is not threading.main_thread():
            return
        previous = signal.getsignal(signal.SIGCHLD)
        if not callable(previous):
            return

        def handler(signum: int, frame: FrameType | None) -> Any:
            try:
                return previous(signum, frame)
            except Exception as exc:
                # Recorded when it leaves the loop: through next() it arrives wrapped ("exited
                # unexpectedly", chained to this one), elsewhere it closes the watch (record_pending).
                self.pending = exc
                raise

        self._previous_handler, self._handler = previous, handler
        signal.signal(signal.SIGCHLD, handler)

    def unchain_sigchld(self) -> None:
        if self._handler is None or threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGCHLD) is self._handler:
            signal.signal(signal.SIGCHLD, self._previous_handler)
        self._previous_handler = self._handler = None
