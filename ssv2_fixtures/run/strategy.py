"""How a run's child starts and is followed: :class:`LaunchStrategy` says how the child starts (argv, spec
fields), how its events arrive (a pipe fd or a FIFO: :class:`Channel`), how the watchdog follows it and how
its outcome folds into one record; :class:`SingleProcess` and :class:`Torchrun` are the two, so
``run_config`` has one path (NOTE [a torchrun child] in runner.py). What a torchrun launch is and what its
ranks' results mean is :mod:`.launch`; the torchrun record fold is :mod:`.ranks`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .launch import Launch
from .ranks import rank_record
from .record import single_record
from .watchdog import Finding, Limits, Progress, watch_ranks, watch_single

if TYPE_CHECKING:
    from .record import RunFacts
    from .schema import RunRecord


@dataclass
class Channel:
    """Where the child writes its events and the runner reads them (the read end is non-blocking).

    ``spec``: the child spec's fields naming the write side; ``pass_fds``: fds the child inherits.
    :meth:`spawned` closes what only the child needed; :meth:`close` everything else.
    """

    read_fd: int
    spec: dict[str, Any]
    pass_fds: tuple[int, ...] = ()
    child_only: list[int] = field(default_factory=list)  # closed once the child has them
    held: list[int] = field(default_factory=list)  # closed at the end
    fifo: Path | None = None

    def spawned(self) -> None:
        for fd in self.child_only:
            os.close(fd)
        self.child_only = []

    def close(self) -> None:
        for fd in [self.read_fd, *self.child_only, *self.held]:
            try:
                os.close(fd)
            except OSError:
                pass
        self.child_only, self.held = [], []
        if self.fifo is not None:
            self.fifo.unlink(missing_ok=True)


class LaunchStrategy(Protocol):
    """What differs between a single-process child and a torchrun job (NOTE [a torchrun child])."""

    @property
    def ranks(self) -> int:
        """Processes loading at once on this node: the watchdog's limits and the shm need scale with it."""

    @property
    def groups(self) -> bool:
        """The tree has processes leading their own process groups (each must be signalled)."""

    def channel(self, work: Path) -> Channel: ...

    def entry(self, work: Path, spec_path: Path) -> list[str]: ...

    def watch(self, progress: Progress, now: float, limits: Limits) -> Finding | None: ...

    def fold(self, run: RunFacts) -> RunRecord: ...


@dataclass(frozen=True)
class SingleProcess:
    """``python -m ssv2_fixtures.run.child``: events through an inherited pipe, one outcome."""

    ranks: int = 1
    groups: bool = False

    def channel(self, work: Path) -> Channel:
        r_fd, w_fd = os.pipe()
        os.set_blocking(r_fd, False)
        return Channel(r_fd, {"events_fd": w_fd}, pass_fds=(w_fd,), child_only=[w_fd])

    def entry(self, work: Path, spec_path: Path) -> list[str]:
        return [sys.executable, "-m", "ssv2_fixtures.run.child", str(spec_path)]

    def watch(self, progress: Progress, now: float, limits: Limits) -> Finding | None:
        return watch_single(progress, now, limits)

    def fold(self, run: RunFacts) -> RunRecord:
        return single_record(run)


@dataclass(frozen=True)
class Torchrun:
    """torchrun running ``ssv2_fixtures.run.rank_child``: events through a FIFO every rank opens (the
    runner holds a write end too, so reading never hits EOF while no rank has it open), the watchdog
    over each local rank, and the outcome of the failing rank (:mod:`.ranks`)."""

    launch: Launch

    @property
    def ranks(self) -> int:
        return self.launch.nproc_per_node

    @property
    def groups(self) -> bool:
        return True  # torchrun starts each rank in its own session

    def channel(self, work: Path) -> Channel:
        fifo = work / "events.fifo"
        os.mkfifo(fifo, 0o600)
        r_fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        w_fd = os.open(fifo, os.O_WRONLY)  # held by the runner, never passed on: no EOF between writers
        return Channel(
            r_fd, {"events_path": str(fifo), "indices_path": str(work / "indices.json")}, held=[w_fd], fifo=fifo
        )

    def entry(self, work: Path, spec_path: Path) -> list[str]:
        return [*self.launch.argv(str(work / "ranks")), "-m", "ssv2_fixtures.run.rank_child", str(spec_path)]

    def watch(self, progress: Progress, now: float, limits: Limits) -> Finding | None:
        return watch_ranks(progress, now, limits, self.launch.nproc_per_node)

    def fold(self, run: RunFacts) -> RunRecord:
        return rank_record(run, self.launch)


def strategy_for(launch: Launch | LaunchStrategy | None) -> LaunchStrategy:
    """``None``: a single process; a :class:`Launch`: torchrun; a strategy as it is."""
    if launch is None:
        return SingleProcess()
    if isinstance(launch, Launch):
        return Torchrun(launch)
    return launch


__all__ = ["LaunchStrategy", "Channel", "SingleProcess", "Torchrun", "strategy_for"]
