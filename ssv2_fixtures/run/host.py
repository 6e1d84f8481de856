"""How busy the host was while a run ran: CPU used outside the run, and CPU the hypervisor stole.

A rate measured while other processes share the cores (another pytest session, a build, a
neighbour VM) is not this machine's rate, and will not reproduce on the next run. The suite cannot
remove that noise, but it can say when it was there: two marks, before the child is spawned and after
it is reaped, give the CPU seconds in use on the CPUs this process may run on (``psutil.cpu_times``
per CPU, summed over ``os.sched_getaffinity``: user + nice + system + irq + softirq) and this process's
own and reaped children's CPU seconds (``os.times``). What is in use and not ours is *foreign*;
``steal`` is time the hypervisor gave those vCPUs to someone else. The figures are means over the whole
run (start-up and teardown included), so a neighbour busy only during the measured window shows
diluted. A container's CPU quota is not seen (its /proc/stat is the host's).

The child's CPU reaches ``os.times`` only once it is waited for, and its DataLoader workers only if
it joined them: true for a run that finished by itself, not for one the runner killed (its workers'
CPU would count as foreign). So :func:`host_load` is recorded for finished runs only (the caller's
choice, :func:`ssv2_fixtures.run.record.base_record`). Both counters tick at USER_HZ (10 ms per core),
so on a 10 s run the figure is good to about 0.01 cores.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psutil

from .schema import HostLoad

BUSY_FOREIGN_CORES = 0.25  # a quarter of a core used by others, over the whole run: on 2 cores ~ 10 % of them
BUSY_STEAL_FRAC = 0.05  # 5 % of the vCPUs' time taken by the hypervisor


@dataclass(frozen=True)
class CpuMark:
    t: float  # time.monotonic()
    busy_s: float  # CPU seconds in use on the usable CPUs (:func:`usable_cpus`)
    steal_s: float  # CPU seconds the hypervisor stole from them
    own_s: float  # this process and its reaped children, user + system


def usable_cpus() -> list[int]:
    """The CPUs this process may run on (``taskset``, a cpuset): the cores the runs share."""
    return sorted(os.sched_getaffinity(0))


def mark() -> CpuMark:
    """The counters now, over :func:`usable_cpus` (work on CPUs the runs cannot use is not foreign)."""
    per = psutil.cpu_times(percpu=True)
    cts = [per[i] for i in usable_cpus() if i < len(per)] or per
    busy = sum(c.user + c.nice + c.system + getattr(c, "irq", 0.0) + getattr(c, "softirq", 0.0) for c in cts)
    own = os.times()
    return CpuMark(
        t=time.monotonic(),
        busy_s=busy,
        steal_s=sum(float(getattr(c, "steal", 0.0)) for c in cts),
        own_s=own.user + own.system + own.children_user + own.children_system,
    )


def host_load(a: CpuMark, b: CpuMark, cores: int | None = None) -> HostLoad | None:
    """The load between two marks; ``None`` when no time passed. Tick rounding can make our own CPU
    exceed the system's by a few ticks: clamped at 0."""
    dt = b.t - a.t
    if dt <= 0:
        return None
    n = cores or len(usable_cpus()) or 1
    foreign = max(0.0, (b.busy_s - a.busy_s) - (b.own_s - a.own_s)) / dt
    steal = max(0.0, b.steal_s - a.steal_s) / (dt * n)
    return {
        "foreign_cores": round(foreign, 3),
        "steal_frac": round(min(1.0, steal), 4),
        "seconds": round(dt, 3),
        "cores": n,
    }


def load_field(load: Mapping[str, Any], key: str) -> float:
    """A recorded figure; a hand-edited record's missing or non-numeric field counts as 0."""
    v = load.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0.0


def busy_reasons(load: Mapping[str, Any]) -> set[str]:
    """The one rule for "the host was not idle": ``"foreign"`` and/or ``"steal"`` past the thresholds
    above; empty when the host was idle enough."""
    out = set()
    if load_field(load, "foreign_cores") >= BUSY_FOREIGN_CORES:
        out.add("foreign")
    if load_field(load, "steal_frac") >= BUSY_STEAL_FRAC:
        out.add("steal")
    return out


def is_busy(load: Mapping[str, Any]) -> bool:
    """:func:`busy_reasons` has one."""
    return bool(busy_reasons(load))


__all__ = [
    "CpuMark",
    "mark",
    "host_load",
    "is_busy",
    "busy_reasons",
    "load_field",
    "usable_cpus",
    "BUSY_FOREIGN_CORES",
    "BUSY_STEAL_FRAC",
]
