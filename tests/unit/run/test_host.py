"""ssv2_fixtures.run.host: CPU used outside the run, and stolen, between two marks."""

from __future__ import annotations

import subprocess
import sys

from hypothesis import given
from hypothesis import strategies as st

from ssv2_fixtures.run.host import BUSY_FOREIGN_CORES, BUSY_STEAL_FRAC, CpuMark, host_load, is_busy, mark


def _m(t: float, busy: float, steal: float = 0.0, own: float = 0.0) -> CpuMark:
    return CpuMark(t=t, busy_s=busy, steal_s=steal, own_s=own)


def test_foreign_is_the_busy_time_that_is_not_ours() -> None:
    load = host_load(_m(0, 100, 5, 10), _m(10, 118, 6, 23), cores=2)
    assert load is not None
    # 18 CPU-s busy, 13 of them ours: 0.5 cores of others; 1 s stolen of 2 cores × 10 s
    assert load["foreign_cores"] == 0.5 and load["steal_frac"] == 0.05 and load["cores"] == 2
    assert is_busy(load)


@given(
    dt=st.floats(0.1, 1e4),
    busy=st.floats(0, 1e4),
    own=st.floats(0, 1e4),
    steal=st.floats(0, 1e4),
    cores=st.integers(1, 256),
)
def test_the_load_is_never_negative_and_no_time_is_none(
    dt: float, busy: float, own: float, steal: float, cores: int
) -> None:
    load = host_load(_m(0, 0), _m(dt, busy, steal, own), cores=cores)
    assert load is not None and load["foreign_cores"] >= 0 and 0 <= load["steal_frac"] <= 1
    assert host_load(_m(5, 0), _m(5, busy), cores=cores) is None


def test_the_busy_rule_has_one_threshold_each() -> None:
    from ssv2_fixtures.run.host import busy_reasons

    assert busy_reasons({"foreign_cores": 1.0, "steal_frac": 0.5}) == {"foreign", "steal"}
    assert busy_reasons({"steal_frac": 0.5}) == {"steal"} and busy_reasons({}) == set()
    base = {"seconds": 10.0, "cores": 2}
    assert not is_busy({"foreign_cores": BUSY_FOREIGN_CORES - 0.01, "steal_frac": BUSY_STEAL_FRAC - 0.001, **base})
    assert is_busy({"foreign_cores": BUSY_FOREIGN_CORES, "steal_frac": 0.0, **base})
    assert is_busy({"foreign_cores": 0.0, "steal_frac": BUSY_STEAL_FRAC, **base})


_BURN = (
    "import sys, time\n"
    "t = time.process_time()\n"
    "while time.process_time() - t < 0.5: pass\n"
    "print('burnt', flush=True)\n"
    "{after}"
)


def test_a_process_that_is_not_ours_counts_as_foreign() -> None:
    # a real busy process, still running (not reaped) at the second mark: its 0.5 CPU-s are not in
    # os.times, so they are foreign. Asserted in CPU-seconds, which contention does not change.
    a = mark()
    p = subprocess.Popen([sys.executable, "-c", _BURN.format(after="time.sleep(60)")], stdout=subprocess.PIPE)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == b"burnt"
        b = mark()
    finally:
        p.kill()
        p.wait()
    load = host_load(a, b)
    assert load is not None and load["foreign_cores"] * load["seconds"] >= 0.4, load


def test_a_reaped_child_counts_as_ours() -> None:
    a = mark()
    subprocess.run([sys.executable, "-c", _BURN.format(after="")], check=True, capture_output=True)
    b = mark()
    assert b.own_s - a.own_s >= 0.45  # the child's CPU reached os.times once it was waited for


def test_only_the_cpus_this_process_may_use_are_counted(monkeypatch) -> None:
    # under taskset/cpuset, work on the other CPUs is not competing with the runs: not foreign
    from collections import namedtuple

    import ssv2_fixtures.run.host as host

    T = namedtuple("T", "user nice system idle iowait irq softirq steal")
    per = [T(10, 0, 5, 0, 0, 1, 1, 2), T(500, 0, 200, 0, 0, 0, 0, 90)]
    monkeypatch.setattr(host.psutil, "cpu_times", lambda percpu=False: per)
    monkeypatch.setattr(host.os, "sched_getaffinity", lambda pid: {0})
    m = host.mark()
    assert m.busy_s == 17 and m.steal_s == 2 and host.usable_cpus() == [0]
    load = host_load(_m(0, 0), _m(1, 0.5))
    assert load is not None and load["cores"] == 1
