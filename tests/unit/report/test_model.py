"""ssv2_fixtures.report.model: reading results.json, status as recorded, bad input named by file."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
from report_helpers import DATA, fixture, run_dir, section, table

from ssv2_fixtures.report import compare, findings, render_summary, runs_of, summarize, terminal_lines
from ssv2_fixtures.report.model import interval_of, load
from ssv2_fixtures.run.record import ResultsError


def test_status_is_read_not_recomputed() -> None:
    """A record says whether it passed; a failing check on a record marked passed does not flip it."""
    data = fixture("healthy")
    data["results"][4]["verdicts"][0]["ok"] = False
    runs = runs_of(data)
    assert runs[4].ok and runs[4].result == "passed" and runs[4].failed_verdicts
    data["results"][0]["status"] = "failed"  # no outcome, no failed check: "failed", as recorded
    assert runs_of(data)[0].result == "failed"


def test_interval_of_reads_only_pairs_of_numbers() -> None:
    assert interval_of([1, 2.5]) == (1.0, 2.5)
    for bad in (None, [1], [1, 2, 3], ["1", "2"], [True, 2], "1-2"):
        assert interval_of(bad) is None


def test_shm_bytes_falls_back_to_the_budget() -> None:
    data = fixture("healthy")
    rec = data["results"][0]
    assert runs_of(data)[0].shm_bytes == rec["metrics"]["shm_peak_bytes"]
    del rec["metrics"]["shm_peak_bytes"]
    assert runs_of(data)[0].shm_bytes == rec["budget"]["shm_bytes"]


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


@pytest.mark.parametrize(
    "key,value,want", [("tune", {"batch_size": 8}, "must be a list"), ("data_error", "missing", "must be an object")]
)
def test_malformed_top_level_fields_are_named(tmp_path: Path, key: str, value: object, want: str) -> None:
    data = fixture("healthy")
    data[key] = value
    with pytest.raises(ResultsError, match=rf"odd/results\.json: field '{key}' {want}"):
        load(run_dir(tmp_path, "odd", data))


@pytest.mark.parametrize("which", ["truncated", "newer"])
def test_cli_exits_2_without_traceback(bad_runs: dict[str, Path], which: str) -> None:
    for args in (["summarize", str(bad_runs[which])], ["compare", str(DATA / "healthy.json"), str(bad_runs[which])]):
        p = subprocess.run(
            [sys.executable, "-m", "ssv2_fixtures.report", *args], capture_output=True, text=True, timeout=60
        )
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
    # no config recorded: the cells say so ("?"), they are not rebuilt from the label
    assert row[1:5] == ["bs32-w8-pf4", "?", "?", "?"] and row[6] == "failed"
    assert "- **failed**: the run's record says it failed" in text
    assert any("bs32-w8-pf4" in ln for ln in terminal_lines(data))
    assert findings(data)
    assert render_summary(data)
