"""ssv2_fixtures.report.compare: two runs side by side, and a watch log handed to its own module."""
from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
from report_helpers import DATA, fixture, section, table, with_intervals

from ssv2_fixtures.report import compare


def test_compare_two_machines() -> None:
    md = compare(DATA / "healthy.json", DATA / "healthy_small_shm.json")
    rows = {(r[0], r[1]): r for r in table(section(md, "Configurations side by side"))}
    assert rows[("quick", "bs8-w2-pf2")][2:5] == ["40.0 ±?", "38.0 ±?", "0.95"]
    assert rows[("quick", "bs8-w4-pf2")][4] == "0.75"
    assert rows[("quick", "bs16-w2-pf2")][4] == "1.00"
    assert rows[("sustained", "bs8-w4-pf2")][4] == "0.75"
    assert rows[("quick", "bs16-w4-pf2")][4:] == ["—", "—", "passed", "shm_exhausted"]
    assert "Median B/A over the 4 configuration(s) that passed on both: 0.85." in md

    diffs = {r[0]: r[1:] for r in table(section(md, "Machine differences"))}
    assert diffs["CPU cores"] == ["16", "8"]
    assert diffs["/dev/shm size"] == ["32.0 GB", "256 MB"]
    assert diffs["open files limit (ulimit -n)"] == ["65536", "1024"]
    assert diffs["torch"] == ["2.4.1+cpu", "2.5.1+cpu"]
    assert not {"python", "decord", "TMPDIR", "platform"} & set(diffs)  # only rows that differ

    flips = table(section(md, "Passed on one, failed on the other"))
    assert flips[0][:3] == ["quick", "bs16-w4-pf2", "passed, 76.0 ±? videos/s"]
    assert flips[0][3].startswith("shm_exhausted before the first batch")
    assert "only on A: bs16-w4-pf2 (sustained, passed)" in md
    why = "\n".join(section(md, "What explains the differences"))
    assert "failed on B with shm_exhausted and passed on A: B's /dev/shm is 256 MB vs 32.0 GB on A" in why
    assert "B has 8 cores vs 16 on A" in why


def test_compare_says_whether_a_difference_is_within_spread() -> None:
    a, b = with_intervals(fixture("healthy")), with_intervals(fixture("healthy_small_shm"))
    rows = {(r[0], r[1]): r for r in table(section(compare(a, b), "Configurations side by side"))}
    ia = {(x["kind"], x["label"]): x["metrics"]["videos_per_s_interval"] for x in a["results"]}
    ib = {(x["kind"], x["label"]): x["metrics"].get("videos_per_s_interval") for x in b["results"]}
    for k in (("quick", "bs8-w2-pf2"), ("quick", "bs8-w4-pf2"), ("sustained", "bs8-w4-pf2")):
        (alo, ahi), (blo, bhi) = ia[k], ib[k]
        assert rows[k][5] == ("yes" if alo <= bhi and blo <= ahi else "no")
    assert "±" in rows[("quick", "bs8-w2-pf2")][2] and "±?" not in rows[("quick", "bs8-w2-pf2")][2]


def test_compare_same_run_has_nothing_to_explain() -> None:
    md = compare(DATA / "healthy.json", fixture("healthy"))
    assert "None in the recorded facts." in md and "Nothing to explain" in md
    assert all(r[4] == "1.00" for r in table(section(md, "Configurations side by side")))


@pytest.fixture
def fake_watch(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Path, Path]]:
    """Stands in for ssv2_fixtures.watch.report (another module's job) to check only the hand-over."""
    calls: list[tuple[Path, Path]] = []
    mod = types.ModuleType("ssv2_fixtures.watch.report")

    def compare_with_run(log_path: Path, run_dir: Path) -> str:
        calls.append((log_path, run_dir))
        return "# watch vs run\n"
    mod.compare_with_run = compare_with_run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ssv2_fixtures.watch.report", mod)
    return calls


def test_watch_log_on_either_side_is_handed_over(fake_watch: list[tuple[Path, Path]], tmp_path: Path) -> None:
    log = tmp_path / "watch.jsonl"
    assert compare(log, DATA / "healthy.json") == "# watch vs run\n"
    assert compare(str(DATA / "healthy.json"), str(log)) == "# watch vs run\n"
    assert fake_watch == [(log, DATA / "healthy.json")] * 2
    with pytest.raises(ValueError, match="two watch logs"):
        compare(log, tmp_path / "other.jsonl")


