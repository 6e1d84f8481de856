"""render and compare_with_run over a stored watch log (two ranks of a data-bound loop, bs=8, W=2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ssv2_fixtures.report.watch import compare_with_run, render
from ssv2_fixtures.run.record import ResultsError
from ssv2_fixtures.watch import LogError, read_log

HERE = Path(__file__).parent
LOG = HERE.parent / "fixtures" / "watch_small.jsonl"
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
    log.write_text("\n".join(lines) + '\n{"ev": "sam')  # a torn last line, as a killed run leaves
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


def test_cli_watch_writes_the_markdown_and_a_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ssv2_fixtures.report.cli import main

    assert main(["watch", str(LOG), "--out", str(tmp_path / "rep")]) == 0
    md = Path(capsys.readouterr().out.strip())
    assert md == tmp_path / "rep" / "watch.md"
    assert "**data_bound**" in md.read_text()
    png = (tmp_path / "rep" / "watch.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("reverse", [False, True])
def test_cli_compare_takes_the_log_on_either_side(
    tmp_path: Path, reverse: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    from ssv2_fixtures.report.cli import main

    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(HEALTHY.read_text())
    args = [str(run), str(LOG)] if reverse else [str(LOG), str(run)]
    assert main(["compare", *args]) == 0
    out = capsys.readouterr().out
    assert out.endswith("\n") and out.count("\n") == 2
    assert out.startswith("rank 0: training received ") and "stress run bs8-w2-pf2" in out
    # the tiny-tensor fixture outruns the decoding stress run: the line says the data differ
    assert "check that it decoded the training's dataset" in out


def test_cli_bad_watch_input_exits_2_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ssv2_fixtures.report.cli import main

    assert main(["watch", str(tmp_path / "none.jsonl")]) == 2
    assert main(["compare", str(LOG), str(LOG)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "no such watch log" in err[0] and "two watch logs" in err[1]


def test_compare_takes_a_single_loader_sustained_run_over_a_node_or_a_quick_one(tmp_path: Path) -> None:
    import copy

    data = json.loads(HEALTHY.read_text())
    quick = next(r for r in data["results"] if r["label"] == "bs8-w2-pf2")
    node = copy.deepcopy(quick)
    node.update(kind="distributed", id="node")
    node["metrics"]["videos_per_s"] = quick["metrics"]["videos_per_s"] * 4  # the sum over ranks
    sustained = copy.deepcopy(quick)
    sustained.update(kind="sustained", id="long")
    sustained["metrics"]["videos_per_s"] = quick["metrics"]["videos_per_s"] * 0.9
    data["results"] += [sustained, node]  # the node's record last: "the last match" would take it
    (tmp_path / "results.json").write_text(json.dumps(data))
    text = compare_with_run(LOG, tmp_path)
    assert "sustained" in text.splitlines()[0] and "distributed" not in text
    got = [e for e in read_log(LOG) if e["ev"] == "summary" and e["rank"] == 0][0]["videos_per_s"]
    assert f"{got / sustained['metrics']['videos_per_s'] * 100:.0f} %" in text.splitlines()[0]


def test_render_prints_the_interval_as_recorded_and_sizes_in_iec_units(tmp_path: Path) -> None:
    events = [json.loads(ln) for ln in LOG.read_text().splitlines() if json.loads(ln)["rank"] == 0]
    summary = events[-1]
    # an asymmetric interval, as the batch-means rule records: no "±" can say it
    summary.update(videos_per_s=81.6, videos_per_s_interval=[78.3, 82.1], rss_peak_bytes=684 * 2**20)
    log = tmp_path / "iv.jsonl"
    log.write_text("".join(json.dumps(e) + "\n" for e in events))
    text = render(log, tmp_path / "out").read_text()
    assert "| 81.6 [78.3, 82.1] |" in text and "±" not in text
    assert "684 MiB" in text and " MB" not in text and " GB" not in text
    assert "first batch: 0.22 s from the loop's first next()" in text


def test_compare_says_both_sides_are_videos_over_wall_time(tmp_path: Path) -> None:
    data = json.loads(HEALTHY.read_text())
    for r in data["results"]:  # written by this version: the record's videos/s is over the loop's wall time
        r["metrics"]["wait_fraction"] = 0.97
    (tmp_path / "results.json").write_text(json.dumps(data))
    lines = compare_with_run(LOG, tmp_path).splitlines()
    assert len(lines) == 2
    assert all("; both are videos over the loop's wall time, the rate the loop received)" in ln for ln in lines)
    assert "not like with like" not in "\n".join(lines)
    quick = next(r for r in data["results"] if r["label"] == "bs8-w2-pf2")
    quick["step_s"] = 0.05
    (tmp_path / "results.json").write_text(json.dumps(data))
    assert "bs8-w2-pf2, quick with --step-time 50 ms; both are" in compare_with_run(LOG, tmp_path)


def test_compare_with_a_file_from_before_wall_time_says_it_is_not_like_with_like() -> None:
    lines = compare_with_run(LOG, HEALTHY).splitlines()  # the fixture's records carry no wait_fraction
    assert all("not like with like" in ln and "summed waits" in ln for ln in lines)
    assert "both are videos over" not in "\n".join(lines)


def test_compare_with_a_results_file_with_a_breakdown_shows_where_its_time_went(tmp_path: Path) -> None:
    from ssv2_fixtures.run.breakdown import ItemTimings, record

    data = json.loads(HEALTHY.read_text())
    assert "where the stress session's time went" not in compare_with_run(LOG, HEALTHY)  # none recorded
    t = ItemTimings(getitem_s=[0.08, 0.10], decode_s=[0.03, 0.03], collate_s=[0.005], loop_s=0.2)
    data["breakdown"] = record(t, item_rate=10.0, transfer=400.0, cores=2, achieved=8.0)
    (tmp_path / "results.json").write_text(json.dumps(data))
    last = compare_with_run(LOG, tmp_path).splitlines()[-1]
    assert last.startswith("where the stress session's time went: one video took 100.0 ms")
    assert "decode 30%, transform 60%" in last and "binding: transform" in last
