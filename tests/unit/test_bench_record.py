"""The pytest-benchmark record is a side channel (:mod:`ssv2_fixtures.stress.bench`): a broken
pytest-benchmark costs the JSON its entries and nothing else, and results.json, summary.md and pytest's
exit status agree on what passed whatever failed the test."""

from __future__ import annotations

import json
import subprocess
import sys

from test_plugin import _not_an_xdist_worker, _results, stress_tests  # noqa: F401 - fixtures used by name

pytest_plugins = ["pytester"]

# A benchmark fixture whose constructor raises, as pytest-benchmark 5.2.x's did under pytest 9.2
# (AttributeError: 'Function' object has no attribute '_nodeid'). A conftest is a plugin that overrides
# pytest-benchmark's own fixture of the same name.
BROKEN_BENCHMARK = """
import pytest

class BrokenFixture:
    def __init__(self, node):
        raise AttributeError("'Function' object has no attribute '_nodeid' (test stand-in)")

@pytest.fixture
def benchmark(request):
    yield BrokenFixture(request.node)
"""


# The first ladder phases, not all nine: single-process (phase1), the first with workers (phase3) and a capped
# duplicate (phase5, skipped without running); the teardown test adds phase2, the single-process phase that fails.
# What these tests prove is per record and per session (every verdict, the summary, the benchmark JSON), so the
# other phases only repeated it at ~3 s (here) to ~20 s (full ladder) each (issue #22).
LADDER = "test_ladder and (phase1 or phase3 or phase5)"


def _summary(pytester) -> str:
    return (pytester.path / "reports" / "latest" / "summary.md").read_text()


def test_a_broken_benchmark_plugin_leaves_every_verdict_unchanged(pytester, stress_tests):  # noqa: F811
    pytester.makeconftest(BROKEN_BENCHMARK)
    bench = pytester.path / "bench.json"
    r = pytester.runpytest_subprocess("-m", "quick", "-k", LADDER, f"--benchmark-json={bench}", *stress_tests)
    r.assert_outcomes(passed=2, skipped=1)
    out = r.stdout.str()
    assert "BenchmarkRecordWarning" in out and "'_nodeid'" in out
    assert "pytest-benchmark" in out and "pytest " in out  # the versions are named
    data = _results(pytester)
    assert [x["status"] for x in data["results"]] == ["passed"] * 2
    assert "2 passed, 0 failed" in _summary(pytester)
    # the JSON simply lacks them (pytest-benchmark writes no file when it holds no benchmark)
    assert not bench.exists() or json.loads(bench.read_text())["benchmarks"] == []


FAIL_AFTER_THE_RUN = """
import pytest

@pytest.fixture(autouse=True)
def fails_at_teardown(request):
    yield
    if request.node.name.startswith("test_ladder[phase2-"):
        raise RuntimeError("a teardown outside the run failed")
"""


def test_a_test_failed_outside_its_run_fails_its_record_too(pytester, stress_tests):  # noqa: F811
    pytester.makeconftest(FAIL_AFTER_THE_RUN)
    r = pytester.runpytest_subprocess("-m", "quick", "-k", f"{LADDER} or test_ladder and phase2", *stress_tests)
    r.assert_outcomes(passed=3, skipped=1, errors=1)
    data = _results(pytester)
    status = {x["phase"]: x["status"] for x in data["results"]}
    assert status["phase2"] == "failed" and list(status.values()).count("passed") == 2
    phase2 = next(x for x in data["results"] if x["phase"] == "phase2")
    verdict = next(v for v in phase2["verdicts"] if v["name"] == "pytest")
    assert not verdict["ok"] and "teardown" in verdict["detail"] and "outside the run" in verdict["detail"]
    assert "2 passed, 1 failed" in _summary(pytester)


def test_benchmark_save_and_compare_work_on_the_recorded_times(pytester, stress_tests):  # noqa: F811
    storage = pytester.path / "bench-store"
    args = ["-m", "quick", "-k", LADDER, "--benchmark-save=first", f"--benchmark-storage=file://{storage}"]
    r = pytester.runpytest_subprocess(*args, *stress_tests)
    r.assert_outcomes(passed=2, skipped=1)
    saved = list(storage.rglob("*first.json"))
    assert len(saved) == 1
    assert len(json.loads(saved[0].read_text())["benchmarks"]) == 2
    cmp = subprocess.run(
        [sys.executable, "-m", "pytest_benchmark", "--storage", f"file://{storage}", "compare", "0001"],
        capture_output=True,
        text=True,
        cwd=pytester.path,
    )
    assert cmp.returncode == 0, cmp.stderr
    assert "test_ladder[phase1-bs1-w0]" in cmp.stdout
