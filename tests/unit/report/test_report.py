"""Tests for ssv2_fixtures.report: summary tables, recommendation, findings, plots, compare, CLI errors.

Everything runs from the stored results files in ``tests/unit/fixtures`` (hand-made, realistic numbers):

- ``healthy.json``: quick ladder (2 worker counts × 2 batch sizes) + two sustained runs, all passed;
- ``healthy_small_shm.json``: the same suite on a smaller VM (256 MB /dev/shm, 8 cores): bs16-w4 fails;
- ``failures.json``: one failed run of every outcome kind, two short passes, a leaking sustained run;
- ``limits.json``: batch-size probes per worker count and the ``limits`` list;
- ``validate.json``: a sustained pass and a validated config that misses one target.
"""
from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ssv2_fixtures.run.outcome import KIND_NAMES
from ssv2_fixtures.run.record import ResultsError
from ssv2_fixtures.stress.traincfg import load as load_train_config
from ssv2_fixtures.report import (
    compare,
    findings,
    main,
    md_table,
    plot_sustained,
    plot_throughput,
    recommend,
    render_summary,
    summarize,
    terminal_lines,
)

DATA = Path(__file__).parents[1] / "fixtures"
PNG = b"\x89PNG\r\n\x1a\n"


def fixture(name: str) -> Any:  # a ResultsFile; Any so tests can edit it freely
    return json.loads((DATA / f"{name}.json").read_text())


def run_dir(tmp_path: Path, name: str, data: dict[str, Any] | None = None) -> Path:
    """A run folder holding ``name``'s results (or ``data``), as a session leaves it."""
    d = tmp_path / name
    d.mkdir()
    if data is None:
        shutil.copy(DATA / f"{name}.json", d / "results.json")
    else:
        (d / "results.json").write_text(json.dumps(data))
    return d


def section(text: str, title: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(f"## {title}") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    return lines[start:end]


def table(lines: list[str]) -> list[list[str]]:
    """Rows (cells) of the first markdown table in ``lines``, header and separator dropped."""
    rows = [ln for ln in lines if ln.startswith("|")]
    return [[c.strip() for c in ln.strip("|").split(" | ")] for ln in rows[2:]]


@pytest.fixture(scope="module")
def healthy_summary(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    d = run_dir(tmp_path_factory.mktemp("h"), "healthy")
    out = summarize(d)
    return d, out.read_text()


@pytest.fixture(scope="module")
def failures_summary(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    d = run_dir(tmp_path_factory.mktemp("f"), "failures")
    return d, summarize(d).read_text()


# ---------------------------------------------------------------------------------------------- tables


def test_md_table_escapes_pipes_and_newlines() -> None:
    lines = md_table(["a", "b"], [["x|y", "two\nlines"], [1, None]])
    assert lines[0] == "| a | b |" and lines[1] == "|---|---|"
    assert lines[2] == "| x\\|y | two lines |"
    assert lines[3] == "| 1 | None |"


def test_healthy_tables(healthy_summary: tuple[Path, str]) -> None:
    d, text = healthy_summary
    assert (d / "summary.md").exists()
    ok = table(section(text, "Successful configurations"))
    assert len(ok) == 6
    assert section(text, "Failed configurations") == ["", "None.", ""]
    header = next(ln for ln in section(text, "Successful configurations") if ln.startswith("|"))
    assert "efficiency" in header  # the records carry decode_limit_videos_per_s
    by_label = {(r[0], r[1]): r for r in ok}
    sus16 = by_label[("sustained", "bs16-w4-pf2")]
    assert sus16[2:6] == ["16", "4", "2", "74.0"]
    assert sus16[6] == "77 %"  # 74.0 / 96.0
    assert sus16[7] == "216.1" and sus16[8] == "307.4" and sus16[9] == "60"
    assert by_label[("quick (phase3)", "bs8-w2-pf2")][5] == "40.0"
    # machine and dataset facts a newcomer needs
    assert "| CPU cores | 16 |" in text and "| /dev/shm | 32.0 GB (31.5 GB free) |" in text
    assert "| clip | 16 frames at 224×224 px |" in text


def test_healthy_recommends_best_sustained(healthy_summary: tuple[Path, str]) -> None:
    _, text = healthy_summary
    rec = recommend(fixture("healthy"))
    assert rec is not None and rec.verified and rec.label == "bs16-w4-pf2" and rec.expected_vps == 74.0
    body = "\n".join(section(text, "Recommended configuration"))
    assert "**bs16-w4-pf2** (measured: 74.0 videos/s)" in body
    # the sustained matrix shuffles and drops the last batch: the snippet carries what was tested
    assert ("config = LoaderConfig(batch_size=16, num_workers=4, prefetch_factor=2, shuffle=True, drop_last=True)"
            in body)
    assert "make_loader(dataset, config)" in body
    assert "torch.multiprocessing.set_sharing_strategy('file_descriptor')" in body
    assert ("DataLoader(dataset, batch_size=16, shuffle=True, num_workers=4, prefetch_factor=2, "
            "persistent_workers=False, pin_memory=False, drop_last=True)") in body
    # shm peak 331 MB × 2 → 1g; fd peak 96 → the 1024 floor; no temp files
    assert "peak 331 MB → `docker run --shm-size=1g`" in body
    assert "fd peak 96" in body and "`ulimit -n 1024`" in body and "65536 is enough" in body
    assert "peak 0 B" in body
    assert "only short runs" not in body.lower()


def test_recommendation_toml_loads_as_train_config(healthy_summary: tuple[Path, str], tmp_path: Path) -> None:
    body = "\n".join(section(healthy_summary[1], "Recommended configuration"))
    toml = body.split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "train.toml").write_text(toml)
    tc = load_train_config(tmp_path / "train.toml")
    assert tc.loader.label == "bs16-w4-pf2" and tc.loader.shuffle and tc.loader.drop_last
    assert tc.targets == {"min_videos_per_s": 66.0}  # 90 % of the measured 74.0


def test_healthy_findings_quote_numbers(healthy_summary: tuple[Path, str]) -> None:
    _, text = healthy_summary
    f = "\n".join(section(text, "Findings"))
    assert "Batch size 8: throughput still grows" in f and "40.0 → 72.0 videos/s (+80.0 %)" in f
    assert "42.0 → 76.0 videos/s (+81.0 %)" in f and "16 cores" in f
    assert "76.0 videos/s = 79 % of the decode limit (96.0 videos/s" in f
    assert "No memory growth beyond the limit in 2 run(s) with a leak check" in f
    assert "bs16-w4-pf2 (sustained): RSS 3058 → 3059 MB (first vs last fifth)" in f
    assert "![throughput](throughput.png)" in text and "![sustained](sustained.png)" in text


# ---------------------------------------------------------------------------------------------- failures


def test_failures_table_has_every_kind(failures_summary: tuple[Path, str]) -> None:
    _, text = failures_summary
    failed = table(section(text, "Failed configurations"))
    assert len(failed) == len(KIND_NAMES) + 1  # every kind + the leaking sustained run
    kinds = [r[6] for r in failed]
    assert sorted(k for k in kinds if k in KIND_NAMES) == sorted(KIND_NAMES)
    assert "verdict:leak" in kinds
    assert len(table(section(text, "Successful configurations"))) == 2
    shm = next(r for r in failed if r[6] == "shm_exhausted")
    assert shm[1] == "bs32-w4-pf2" and shm[5] == "after 1 of 20 batches"
    assert "unable to write to file </torch_4117_2903217431_0>" in shm[7]
    assert "--shm-size=1.3g" in shm[8]
    assert next(r for r in failed if r[6] == "data_error")[5] == "before the first batch"
    legend = "\n".join(section(text, "Failed configurations"))
    assert "- **bus_error**: a process was killed by SIGBUS" in legend
    header = next(ln for ln in section(text, "Successful configurations") if ln.startswith("|"))
    assert "efficiency" not in header  # no decode limit recorded


def test_failures_findings_quote_numbers(failures_summary: tuple[Path, str]) -> None:
    _, text = failures_summary
    f = "\n".join(section(text, "Findings"))
    assert ("bs32-w4-pf2 (quick (phase3), shm_exhausted): needed ~662 MB of /dev/shm" in f
            and "free space fell to 18 MB of 2.0 GB" in f)
    assert "ran out of file descriptors at 1021 open (limit ulimit -n = 1024)" in f
    assert "left 3 shared-memory file(s) (110 MB)" in f
    assert "left 41 temporary file(s) (1.2 GB)" in f
    assert "bs4-w2-pf2 (sustained): memory grew — RSS 1718 → 2383 MB (first vs last fifth)" in f
    assert "growth_bytes 665 MB" in f  # the verdict's own numbers are quoted too
    assert "memory (RSS) peak 8.0 GB against 8.0 GB (the memory limit)" in f
    assert "hung after 3 of 20 batches — no progress for 32.4 s (stall limit 32.0 s)" in f
    assert "1 run(s) ran under emulated limits (e.g. laptop" in f
    assert "Worker counts were capped at --max-workers (default 2 × cores; this machine has 8): phase9: W=24" in f


def test_only_short_runs_recommend_with_margin(failures_summary: tuple[Path, str]) -> None:
    _, text = failures_summary
    rec = recommend(fixture("failures"))
    # bs4-w2-pf2 is fastest but leaked in its sustained run: excluded; bs4-w1-pf2 gets prefetch 2 → 1
    assert rec is not None and not rec.verified
    assert rec.basis.label == "bs4-w1-pf2" and rec.label == "bs4-w1-pf1" and rec.expected_vps is None
    body = "\n".join(section(text, "Recommended configuration"))
    assert "only short runs: verify with pytest -m sustained" in body.lower()
    assert "prefetch_factor 2 → 1" in body and "bs4-w2-pf2 verdict:leak" in body
    assert "LoaderConfig(batch_size=4, num_workers=1, prefetch_factor=1)" in body


def test_margin_rule_without_sustained_runs() -> None:
    data = fixture("healthy")
    data["results"] = [r for r in data["results"] if r["kind"] == "quick"]
    rec = recommend(data)
    assert rec is not None and not rec.verified
    assert rec.basis.label == "bs16-w4-pf2" and rec.label == "bs16-w4-pf1"
    assert "reached 76.0 videos/s" in rec.reason
    # with prefetch already 1, the margin is one step fewer workers: the next lower count tried (2)
    for r in data["results"]:
        r["config"]["prefetch_factor"] = 1
        r["label"] = r["label"].replace("pf2", "pf1")
    rec = recommend(data)
    assert rec is not None and rec.label == "bs16-w2-pf1" and rec.expected_vps == 42.0
    assert "num_workers 4 → 2" in rec.reason


def test_nothing_passed_recommends_nothing() -> None:
    data = fixture("failures")
    data["results"] = [r for r in data["results"] if r["status"] != "passed"]
    assert recommend(data) is None
    text = render_summary(data)
    assert "nothing to recommend" in "\n".join(section(text, "Recommended configuration"))


# ---------------------------------------------------------------------------------------------- limits, validate


def test_limits_boundaries_and_plateau(tmp_path: Path) -> None:
    text = summarize(run_dir(tmp_path, "limits")).read_text()
    rows = table(section(text, "Limits: largest batch size per worker count"))
    assert [r[:6] for r in rows] == [["2", "2", "32", "64", "shm_exhausted", "735 MB"],
                                     ["4", "2", "16", "32", "shm_exhausted", "662 MB"],
                                     ["8", "2", "8", "16", "bus_error", "625 MB"]]
    f = "\n".join(section(text, "Findings"))
    assert "Batch size 8: throughput stops growing beyond 4 workers on this machine (8 cores)" in f
    assert "55.3 → 56.9 videos/s (+2.9 %" in f
    assert ("bs64-w2-pf2 (limits, shm_exhausted): needed ~735 MB of /dev/shm for the batches in flight (64 videos × "
            "(2 workers × 2 prefetch + 1) batches), 500 MB available at the start; free space fell to 9 MB of 512 MB "
            "— the budget predicted this.") in f
    assert not (tmp_path / "limits" / "sustained.png").exists()
    assert "sustained.png" not in text


def test_validate_targets_and_recommendation(tmp_path: Path) -> None:
    text = summarize(run_dir(tmp_path, "validate")).read_text()
    body = section(text, "Validation: targets vs achieved")
    assert "Config file `configs/loader.toml` (bs16-w4-pf2): **FAILED**, 2 of 3 targets met." in body
    rows = table(body)
    assert rows == [["min_videos_per_s", "40", "52.1", "yes"], ["max_wait_ms_p95", "250", "412.7", "**no**"],
                    ["max_rss_gb", "12 GB", "3.5 GB", "yes"]]
    # test_validate keeps targets in the validate section: the run (status passed) still counts as failed
    failed = table(section(text, "Failed configurations"))
    assert [r[:2] + r[6:8] for r in failed] == [["validate", "bs16-w4-pf2", "verdict:target:max_wait_ms_p95",
                                                  "max_wait_ms_p95: wanted 250, achieved 412.7"]]
    # the validated config is faster (52.1) but missed a target: the sustained pass is recommended
    rec = recommend(fixture("validate"))
    assert rec is not None and rec.verified and rec.label == "bs8-w4-pf2"
    assert "Targets missed (max_wait_ms_p95)" in "\n".join(section(text, "Next steps"))


def test_validate_run_that_failed_checked_no_target() -> None:
    data = fixture("validate")
    data["validate"].update(rows=[], passed=False)
    body = section(render_summary(data), "Validation: targets vs achieved")
    assert "**FAILED**: the run itself failed (see *Failed configurations*), so no target was checked." in body[1]


def test_verdict_ok_written_as_string_counts_as_failed() -> None:
    """write_atomic uses default=str: a numpy bool verdict arrives as "False", which must not read as ok."""
    data = fixture("healthy")
    sus = [r for r in data["results"] if r["kind"] == "sustained"]
    sus[1]["verdicts"][1]["ok"] = "False"   # bs16-w4-pf2: degradation
    sus[0]["verdicts"][1]["ok"] = "True"
    rec = recommend(data)
    assert rec is not None and rec.label == "bs8-w4-pf2"
    failed = table(section(render_summary(data), "Failed configurations"))
    assert [(r[1], r[6]) for r in failed] == [("bs16-w4-pf2", "verdict:degradation")]


def test_capped_workers_are_shown() -> None:
    data = fixture("healthy")
    data["results"][1]["requested_workers"] = 6
    rows = table(section(render_summary(data), "Successful configurations"))
    assert rows[1][1] == "bs8-w4-pf2" and rows[1][3] == "4 (of 6 requested)"


# ---------------------------------------------------------------------------------------------- plots


def test_plot_files_are_png(healthy_summary: tuple[Path, str]) -> None:
    d, _ = healthy_summary
    for name in ("throughput.png", "sustained.png"):
        assert (d / name).read_bytes()[:8] == PNG


def test_throughput_figure_series() -> None:
    fig = plot_throughput(fixture("healthy"))
    ax = fig.axes[0]
    assert sorted(str(line.get_label()) for line in ax.lines) == ["batch size 16", "batch size 8"]
    assert [np.asarray(line.get_xdata()).tolist() for line in ax.lines] == [[2, 4], [2, 4]]
    assert not ax.collections  # nothing failed
    assert "videos/s" in ax.get_ylabel() and "workers" in ax.get_xlabel() and ax.get_title()

    fig = plot_throughput(fixture("failures"))
    ax = fig.axes[0]
    assert len(ax.lines) == 1  # only batch size 4 has passing runs
    assert len(ax.collections) == 1 and len(np.asarray(ax.collections[0].get_offsets())) == len(KIND_NAMES) + 1
    notes = "\n".join(t.get_text() for t in ax.texts)
    assert all(k in notes for k in KIND_NAMES)
    legend = ax.get_legend()
    assert legend is not None and "failed run" in " ".join(t.get_text() for t in legend.get_texts())


def test_sustained_figure_small_multiples() -> None:
    fig = plot_sustained(fixture("healthy"))
    assert fig is not None and len(fig.axes) == 6  # 2 sustained runs × (wait, RSS, shm)
    assert [len(a.lines) for a in fig.axes] == [2, 1, 1, 2, 1, 1]  # wait + its p95 line
    assert len(np.asarray(fig.axes[0].lines[0].get_ydata())) == 59  # 60 waits, the start-up batch not drawn
    assert fig.axes[1].get_ylabel() == "RSS (MB)" and fig.axes[2].get_ylabel() == "/dev/shm (MB)"
    assert plot_sustained(fixture("limits")) is None


# ---------------------------------------------------------------------------------------------- terminal


def test_terminal_lines() -> None:
    lines = terminal_lines(DATA / "failures.json")
    assert len(lines) == 1 + len(fixture("failures")["results"])
    assert lines[0].split() == ["config", "test", "videos/s", "result"]
    assert any(ln.split()[:4] == ["bs4-w2-pf2", "quick", "26.8", "passed"] for ln in lines)
    assert any("shm_exhausted (after 1 of 20 batches)" in ln for ln in lines)
    assert all(ln.isascii() for ln in lines)


# ---------------------------------------------------------------------------------------------- compare


def test_compare_two_machines() -> None:
    md = compare(DATA / "healthy.json", DATA / "healthy_small_shm.json")
    rows = {(r[0], r[1]): r for r in table(section(md, "Configurations side by side"))}
    assert rows[("quick", "bs8-w2-pf2")][2:5] == ["40.0", "38.0", "0.95"]
    assert rows[("quick", "bs8-w4-pf2")][4] == "0.75"
    assert rows[("quick", "bs16-w2-pf2")][4] == "1.00"
    assert rows[("sustained", "bs8-w4-pf2")][4] == "0.75"
    assert rows[("quick", "bs16-w4-pf2")][4:] == ["—", "passed", "shm_exhausted"]
    assert "Median B/A over the 4 configuration(s) that passed on both: 0.85." in md

    diffs = {r[0]: r[1:] for r in table(section(md, "Machine differences"))}
    assert diffs["CPU cores"] == ["16", "8"]
    assert diffs["/dev/shm size"] == ["32.0 GB", "256 MB"]
    assert diffs["open files limit (ulimit -n)"] == ["65536", "1024"]
    assert diffs["torch"] == ["2.4.1+cpu", "2.5.1+cpu"]
    assert not {"python", "decord", "TMPDIR", "platform"} & set(diffs)  # only rows that differ

    flips = table(section(md, "Passed on one, failed on the other"))
    assert flips[0][:3] == ["quick", "bs16-w4-pf2", "passed, 76.0 videos/s"]
    assert flips[0][3].startswith("shm_exhausted before the first batch")
    assert "only on A: bs16-w4-pf2 (sustained, passed)" in md
    why = "\n".join(section(md, "What explains the differences"))
    assert "failed on B with shm_exhausted and passed on A: B's /dev/shm is 256 MB vs 32.0 GB on A" in why
    assert "B has 8 cores vs 16 on A" in why


def test_compare_same_run_has_nothing_to_explain() -> None:
    md = compare(DATA / "healthy.json", fixture("healthy"))
    assert "None in the recorded facts." in md and "Nothing to explain" in md
    assert all(r[4] == "1.00" for r in table(section(md, "Configurations side by side")))


def test_cli_compare_to_file_and_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cmp.md"
    assert main(["compare", str(DATA / "healthy.json"), str(DATA / "healthy_small_shm.json"), "--out", str(out)]) == 0
    assert out.read_text().startswith("# Comparison: A = 20250314T091152Z-gpu-node-07")
    capsys.readouterr()
    assert main(["compare", str(DATA / "healthy.json"), str(DATA / "limits.json")]) == 0
    assert "## Machine differences" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------- bad input


@pytest.fixture
def bad_runs(tmp_path: Path) -> dict[str, Path]:
    text = (DATA / "healthy.json").read_text()
    trunc = tmp_path / "truncated"
    trunc.mkdir()
    (trunc / "results.json").write_text(text[: len(text) // 2])  # as a killed non-atomic writer leaves it
    newer = copy.deepcopy(fixture("healthy"))
    newer["schema"] = 99
    return {"truncated": trunc, "newer": run_dir(tmp_path, "newer", newer)}


def test_bad_results_raise_results_error(bad_runs: dict[str, Path]) -> None:
    with pytest.raises(ResultsError, match=r"truncated/results\.json: not valid JSON"):
        summarize(bad_runs["truncated"])
    with pytest.raises(ResultsError, match=r"newer/results\.json: results schema 99 is newer"):
        compare(DATA / "healthy.json", bad_runs["newer"])
    with pytest.raises(ResultsError, match="results.json"):
        terminal_lines(bad_runs["newer"] / "results.json")
    assert not (bad_runs["truncated"] / "summary.md").exists()


def test_non_record_entry_is_results_error(tmp_path: Path) -> None:
    data = fixture("healthy")
    data["results"].append("oops")
    with pytest.raises(ResultsError, match=r"results\[6\] is not a run record"):
        summarize(run_dir(tmp_path, "odd", data))


@pytest.mark.parametrize("which", ["truncated", "newer"])
def test_cli_exits_2_without_traceback(bad_runs: dict[str, Path], which: str) -> None:
    for args in (["summarize", str(bad_runs[which])],
                 ["compare", str(DATA / "healthy.json"), str(bad_runs[which])]):
        p = subprocess.run([sys.executable, "-m", "ssv2_fixtures.report", *args], capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 2, p.stderr
        assert "Traceback" not in p.stderr and p.stdout == ""
        assert len(p.stderr.strip().splitlines()) == 1 and f"{which}/results.json" in p.stderr


def test_sparse_records_still_summarize(tmp_path: Path) -> None:
    """A record from a crashed session (no config, no metrics, no verdicts) must not break the report."""
    data = fixture("healthy")
    data["results"].append({"label": "bs32-w8-pf4", "status": "failed", "kind": "quick"})
    data.pop("settings")
    text = summarize(run_dir(tmp_path, "sparse", data)).read_text()
    row = table(section(text, "Failed configurations"))[0]
    assert row[1:5] == ["bs32-w8-pf4", "32", "8", "4"] and row[6] == "failed"
    assert any("bs32-w8-pf4" in ln for ln in terminal_lines(data))
    assert findings(data)
