"""pytest-benchmark's table for stress tests (:mod:`ssv2_fixtures.stress.bench_table`): left out unless a
display option asks for it, labelled when shown, and always in the JSON; the session's terminal section
ends with the recommendation and where the report is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ssv2_fixtures.stress.bench_table import GROUP, regroup, table_asked

pytest_plugins = ["pytester"]

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_display_options_ask_for_the_table() -> None:
    assert not table_asked(["-m", "quick", "--benchmark-json=out.json", "--benchmark-save=x"])
    assert table_asked(["--benchmark-columns=min,max"]) and table_asked(["--benchmark-sort", "mean"])


def test_regroup_hides_or_labels_only_stress_tests() -> None:
    groups = [(None, [{"fullname": "t.py::own"}, {"fullname": "t.py::stress[a]"}]), ("g", [{"fullname": "s[b]"}])]
    stress = {"t.py::stress[a]", "s[b]"}
    out, hidden = regroup(groups, stress, shown=False)
    assert out == [(None, [{"fullname": "t.py::own"}])] and hidden == 2
    out, hidden = regroup(groups, stress, shown=True)
    assert hidden == 0 and out[0] == (None, [{"fullname": "t.py::own"}])
    assert out[1] == (GROUP, [{"fullname": "t.py::stress[a]"}]) and out[2] == (f"{GROUP}: g", [{"fullname": "s[b]"}])


INNER = """
import json

def test_stress(benchmark, ssv2_session, request):
    rec = json.loads({rec!r})
    rec["id"] = request.node.nodeid  # as a stress run records its test
    ssv2_session.record(rec)
    benchmark.pedantic(lambda: None, rounds=3)

def test_own(benchmark):
    benchmark.pedantic(lambda: None, rounds=3)
"""


@pytest.fixture
def inner(pytester: pytest.Pytester) -> list[str]:
    rec = json.loads((FIXTURES / "healthy.json").read_text())["results"][4]  # bs8-w4-pf2, sustained, passed
    pytester.makepyfile(test_inner=INNER.format(rec=json.dumps(rec)))
    return ["--reports", str(pytester.path / "reports"), "-p", "no:cacheprovider", "-m", "sustained or not sustained"]


def test_the_table_is_left_out_unless_asked_and_the_json_keeps_it(pytester: pytest.Pytester, inner: list[str]) -> None:
    r = pytester.runpytest_subprocess(*inner, "--benchmark-json=bench.json")
    r.assert_outcomes(passed=2)
    out = r.stdout.str()
    assert "test_own" in out and GROUP not in out  # pytest-benchmark's table: only the test that is not a stress test
    names = [b["name"] for b in json.loads((pytester.path / "bench.json").read_text())["benchmarks"]]
    assert sorted(names) == ["test_own", "test_stress"]
    section = out[out.index("ssv2-stress") :].splitlines()
    assert any(ln.startswith("recommended: bs8-w4-pf2 - 70.0 +-? videos/s") for ln in section)
    assert any("table of per-batch waits is hidden for 1 stress test" in ln for ln in section)
    report = next(ln for ln in section if ln.startswith("report: "))
    assert report.endswith("summary.md") and Path(report[len("report: ") :]).is_file()


def test_a_display_option_shows_it_labelled(pytester: pytest.Pytester, inner: list[str]) -> None:
    r = pytester.runpytest_subprocess(*inner, "--benchmark-columns=min,max")
    r.assert_outcomes(passed=2)
    out = r.stdout.str()
    assert "per-batch waits in the loading process (not videos/s, not the ranking" in out
    assert "is hidden" not in out
    # the answer still comes after the table
    assert out.index("benchmark") < out.index("recommended: bs8-w4-pf2")
