"""render and compare_with_run over a stored watch log (two ranks of a data-bound loop, bs=8, W=2)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ssv2_fixtures.run.record import ResultsError
from ssv2_fixtures.watch import LogError, read_log
from ssv2_fixtures.watch.report import compare_with_run, render

HERE = Path(__file__).parent
LOG = HERE / "fixtures" / "watch_small.jsonl"
HEALTHY = HERE.parent / "fixtures" / "healthy.json"


def test_stored_log_reads_in_order_per_rank() -> None:
    events = read_log(LOG)
    assert {e["rank"] for e in events} == {0, 1}
    for r in (0, 1):
        mine = [e for e in events if e["rank"] == r]
        assert mine[0]["ev"] == "start" and mine[-1]["ev"] == "summary"


def test_render_writes_section_and_plot(tmp_path: Path) -> None:
    md = render(LOG, tmp_path)
    text = md.read_text()
    assert "### rank 0" in text and "### rank 1" in text
    assert "**data_bound**" in text and "remedy:" in text
    assert (tmp_path / "watch.png").stat().st_size > 0 and "![watch](watch.png)" in text


def test_render_of_a_log_killed_before_its_summary(tmp_path: Path) -> None:
    lines = [ln for ln in LOG.read_text().splitlines() if json.loads(ln)["rank"] == 0][:-1]
    log = tmp_path / "cut.jsonl"
    log.write_text("\n".join(lines) + '\n{"ev": "sam')   # a torn last line, as a killed run leaves
    text = render(log, tmp_path / "out").read_text()
    assert "no summary line" in text and "**data_bound**" in text


def test_compare_names_the_share_and_the_bound() -> None:
    text = compare_with_run(LOG, HEALTHY)
    lines = text.splitlines()
    assert len(lines) == 2 and lines[0].startswith("rank 0: training received ")
    assert "% of the stress-test rate" in text and "it is data-bound" in text
    stress = json.loads(HEALTHY.read_text())["results"][0]["metrics"]["videos_per_s"]
    got = [e for e in read_log(LOG) if e["ev"] == "summary" and e["rank"] == 0][0]["videos_per_s"]
    assert f"{got / stress * 100:.0f} %" in lines[0]


def test_compare_without_the_config_says_what_to_run(tmp_path: Path) -> None:
    data = json.loads(HEALTHY.read_text())
    data["results"] = [r for r in data["results"] if r["config"]["batch_size"] != 8]
    (tmp_path / "results.json").write_text(json.dumps(data))
    with pytest.raises(ResultsError, match="no passed stress run has the watched config"):
        compare_with_run(LOG, tmp_path)


def test_bad_log_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"ev": "start", "rank": 0}\nnot json\n{"ev": "summary", "rank": 0}\n')
    with pytest.raises(LogError, match=r"bad.jsonl:2: not a JSON line"):
        read_log(bad)
    bad.write_text('{"x": 1}\n')
    with pytest.raises(LogError, match="not a watch event"):
        read_log(bad)
