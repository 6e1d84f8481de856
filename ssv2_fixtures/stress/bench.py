"""Feed pytest-benchmark the child's per-batch times.

A stress test's run happens in another process, so pytest-benchmark's own timing (the parent's wall
time of a call) would measure interpreter start-up, not the loader. Its public API has no way to hand it
measured times, so :func:`_record_times` uses two internals: ``BenchmarkFixture._make_stats`` (makes
and registers a stats object whose ``update`` adds one round) and ``BenchmarkFixture._mode`` (marks the
fixture used, so it refuses a second use). Those two lines are the only pytest-benchmark internals in the
package; ``tests/unit/stress/test_bench.py`` fails when they change, and ``pyproject.toml`` bounds the
version to the range tested. Everything else here is public: the ``benchmark`` fixture, its
``disabled`` and ``extra_info`` attributes, and the ``--benchmark-skip`` option.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..run.runner import RunResult

MODE = "ssv2-stress: per-batch times from the child"


def _record_times(bench: Any, times: Sequence[float]) -> bool:
    """One round per time, on a fixture that has not been used yet. The only use of internals."""
    make = getattr(bench, "_make_stats", None)
    if make is None or not hasattr(bench, "_mode"):
        warnings.warn(
            "this pytest-benchmark has no BenchmarkFixture._make_stats/_mode; the child's timings "
            "are not bridged (ssv2-stress supports the versions pyproject.toml names)",
            stacklevel=2,
        )
        return False
    bench._mode = MODE
    stats = make(1)
    for t in times:
        stats.update(t)
    return True


def bridge(request: Any, result: RunResult, dataset_info: dict[str, Any]) -> bool:
    """Put a passed run's per-batch waits (after the first, which includes worker start-up) into its
    test's pytest-benchmark record, with the run's rates in ``extra_info``."""
    config = request.config
    if not result.passed or not config.pluginmanager.hasplugin("benchmark"):
        return False
    if config.getoption("benchmark_skip", False):  # the fixture would skip the test
        return False
    bench = request.getfixturevalue("benchmark")
    if bench.disabled:  # --benchmark-disable, or under xdist
        return False
    if not _record_times(bench, result.batch_waits[1:] or result.batch_waits):
        return False
    m = result.metrics
    bench.extra_info.update(
        config=result.record["config"],
        label=result.record["label"],
        videos_per_s=m.get("videos_per_s"),
        videos_per_s_interval=m.get("videos_per_s_interval"),
        frames_per_s=m.get("frames_per_s"),
        first_batch_s=m.get("first_batch_s"),
        rss_peak_bytes=m.get("rss_peak_bytes"),
        shm_peak_bytes=m.get("shm_peak_bytes"),
        dataset=dataset_info,
    )
    return True
