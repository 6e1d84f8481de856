"""What one isolated run is asked to do: :class:`RunRequest`, the one argument of
:func:`~ssv2_fixtures.run.runner.run_config`.

A frozen record, so a caller builds a request once and derives variants with :func:`dataclasses.replace`
(a torchrun launch of the same run, another name, a wrapped event hook) instead of re-passing every keyword.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..data.loader import LoaderConfig
from .child import DatasetSpec
from .faults import FaultSpec
from .launch import Launch
from .monitor import TreeMonitor
from .sandbox import Sandbox
from .strategy import LaunchStrategy
from .watchdog import Watchdog

OnEvent = Callable[[dict[str, Any], TreeMonitor], None]
"""A caller's hook, called in the runner's process for each event the child writes, with the live monitor."""


@dataclass(frozen=True)
class RunRequest:
    """Load ``batches`` batches of ``dataset`` with ``config`` in an isolated child.

    - ``dataset``: a :func:`~ssv2_fixtures.run.runner.dataset_spec`, or a dataset root (the train split);
    - ``fault``: a fault drill, a :class:`~.faults.FaultSpec` or its ``KIND@BATCH`` text; it must fire
      before the last batch;
    - ``sandbox``: the emulated limits (a private /dev/shm, open files, address space, CPUs);
    - ``watchdog``: the start-up, stall and exit limits (defaults scaled to ``config`` and ``batches``);
    - ``run_dir``/``name``: the run folder is ``run_dir/name`` (``$TMPDIR/ssv2-stress-runs`` and the
      config's label by default; a taken name gets a ``.N`` suffix);
    - ``sample_interval``: seconds between the monitor's samples of the process tree;
    - ``on_event``: :data:`OnEvent`, a hook that raises is counted in the record, never stops the run;
    - ``cuda``: the child copies each batch to the GPU (pinned host-to-device copy, VRAM peak);
    - ``step_s``: a simulated training step after each batch, seconds;
    - ``extra_facts``: evidence the caller knows (the campaign's shm budget), it wins over the runner's own;
    - ``launch``: a torchrun job (:class:`~.launch.Launch`, see NOTE [a torchrun child] in runner.py);
      ``None`` is one process;
    - ``measure``: the child's time-window measurement plan, passed on unchanged as ``spec["measure"]``;
    - ``hold``: after the loop, measure the worst-case shared memory with every prefetch slot full
      (NOTE [full-queue hold] in run/hold.py; a single-process child with workers).
    """

    dataset: DatasetSpec | str | os.PathLike[str]
    config: LoaderConfig
    batches: int = 10
    fault: FaultSpec | str | None = None
    sandbox: Sandbox | None = None
    watchdog: Watchdog | None = None
    run_dir: str | os.PathLike[str] | None = None
    name: str | None = None
    sample_interval: float = 0.25
    on_event: OnEvent | None = None
    cuda: bool = False
    step_s: float = 0.0
    extra_facts: Mapping[str, Any] | None = None
    launch: Launch | LaunchStrategy | None = None
    measure: Mapping[str, Any] | None = None
    hold: bool = True


__all__ = ["OnEvent", "RunRequest"]
