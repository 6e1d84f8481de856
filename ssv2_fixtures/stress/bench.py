"""Feed pytest-benchmark the child's per-batch times — a side channel that never decides a test.

A stress test's run happens in another process, so pytest-benchmark's own timing (the parent's wall
time of a call) would measure interpreter start-up, not the loader. Its public API has no way to hand it
measured times, so :func:`_record_times` uses two internals: ``BenchmarkFixture._make_stats`` (makes
and registers a stats object whose ``update`` adds one round) and ``BenchmarkFixture._mode`` (marks the
fixture used, so it refuses a second use). Those two lines are the only pytest-benchmark internals in the
package; ``tests/unit/stress/test_bench.py`` fails when they change. Everything else here is public: the
``benchmark`` fixture, its ``disabled`` and ``extra_info`` attributes, and the ``--benchmark-skip`` option.

NOTE [side channel]: the record in the benchmark JSON is a copy of what results.json already holds, so
nothing here may change a test's verdict. :func:`bridge` catches every exception (and pytest's skip/fail
outcomes, which a fixture may raise) and turns it into one :class:`BenchmarkRecordWarning` naming the
installed pytest and pytest-benchmark, so a pytest-benchmark that does not fit the installed pytest (5.2.x
under pytest 9.2 raised ``AttributeError: 'Function' object has no attribute '_nodeid'`` in the fixture's
constructor) costs the JSON that test's entry and nothing else.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from importlib import metadata
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ..run.runner import RunResult

MODE = "ssv2-stress: per-batch times from the child"


class BenchmarkRecordWarning(UserWarning):
    """The pytest-benchmark record of a stress test could not be written; the test's verdict stands."""


def versions() -> str:
    """``pytest X, pytest-benchmark Y`` as installed (what a bridge failure depends on)."""

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    return f"pytest {version('pytest')}, pytest-benchmark {version('pytest-benchmark')}"


def _record_times(bench: Any, times: Sequence[float]) -> None:
    """One round per time, on a fixture that has not been used yet. The only use of internals; raises
    ``AttributeError`` when they are gone (the caller turns it into the warning)."""
    make = bench._make_stats
    if not hasattr(bench, "_mode"):
        raise AttributeError("BenchmarkFixture has no _mode")
    bench._mode = MODE
    stats = make(1)
    for t in times:
        stats.update(t)


def bridge(request: Any, result: RunResult, dataset_info: dict[str, Any]) -> bool:
    """Put a passed run's per-batch waits (after the first, which includes worker start-up) into its
    test's pytest-benchmark record, with the run's rates in ``extra_info``. True when recorded; never
    raises, skips or fails (NOTE [side channel])."""
    try:
        return _bridge(request, result, dataset_info)
    except (Exception, pytest.skip.Exception, pytest.fail.Exception) as exc:
        warnings.warn(
            BenchmarkRecordWarning(
                f"the pytest-benchmark record of stress tests could not be written with {versions()} "
                f"({type(exc).__name__}: {exc}); the tests' verdicts stand and results.json holds every "
                "measurement; the benchmark JSON lacks these tests (pyproject.toml names the tested versions)"
            ),
            stacklevel=2,
        )
        return False


def _bridge(request: Any, result: RunResult, dataset_info: dict[str, Any]) -> bool:
    config = request.config
    if not result.passed or not config.pluginmanager.hasplugin("benchmark"):
        return False
    if config.getoption("benchmark_skip", False):  # the fixture would skip the test
        return False
    bench = request.getfixturevalue("benchmark")
    if bench.disabled:  # --benchmark-disable, or under xdist
        return False
    _record_times(bench, result.batch_waits[1:] or result.batch_waits)
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
