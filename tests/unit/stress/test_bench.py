"""The one place that touches pytest-benchmark internals (:mod:`ssv2_fixtures.stress.bench`): these
tests fail loudly when the installed pytest-benchmark changes what it relies on, or is outside the
range pyproject.toml names."""

from __future__ import annotations

import inspect
import re
from importlib import metadata
from pathlib import Path

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from ssv2_fixtures.stress.bench import MODE, _record_times, versions

PYPROJECT = Path(__file__).resolve().parents[3] / "pyproject.toml"


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


def test_installed_version_is_in_the_bounded_range() -> None:
    line = next(ln for ln in PYPROJECT.read_text().splitlines() if '"pytest-benchmark' in ln)
    m = re.search(r">=([\d.]+),<([\d.]+)", line)
    assert m, f"pytest-benchmark has no upper bound in pyproject.toml: {line.strip()}"
    have = _version(metadata.version("pytest-benchmark"))
    assert _version(m[1]) <= have < _version(m[2])


def test_the_internals_we_use_still_exist() -> None:
    assert list(inspect.signature(BenchmarkFixture._make_stats).parameters) == ["self", "iterations"]
    assert "self._mode = None" in inspect.getsource(BenchmarkFixture.__init__)
    assert "self.disabled" in inspect.getsource(BenchmarkFixture.__init__)  # public attribute bridge() reads


def test_recorded_times_become_rounds() -> None:
    added: list = []
    bench = BenchmarkFixture.__new__(BenchmarkFixture)  # the fields _make_stats reads, nothing else
    bench.__dict__.update(
        name="t",
        fullname="t",
        group=None,
        param=None,
        params=None,
        extra_info={},
        cprofile_stats=None,
        _disable_gc=False,
        _timer=lambda: 0.0,
        _min_rounds=1,
        _max_time=1.0,
        _min_time=0.0,
        _precision=None,  # read since pytest-benchmark 5.3
        _confidence=None,
        _warmup=False,
        _add_stats=added.append,
        _mode=None,
    )
    try:
        _record_times(bench, [0.5, 0.25, 0.75])
    except (AttributeError, TypeError) as exc:  # pragma: no cover - the point of this test
        pytest.fail(f"pytest-benchmark's BenchmarkFixture changed: {exc}")
    assert bench._mode == MODE
    stats = added[0].stats
    assert (stats.rounds, stats.min, stats.max) == (3, 0.25, 0.75)


def test_a_fixture_without_the_internals_raises_for_the_bridge_to_warn() -> None:
    with pytest.raises(AttributeError):
        _record_times(object(), [0.5])


def test_versions_names_both_distributions() -> None:
    text = versions()
    assert text.startswith(f"pytest {metadata.version('pytest')}, ")
    assert f"pytest-benchmark {metadata.version('pytest-benchmark')}" in text
