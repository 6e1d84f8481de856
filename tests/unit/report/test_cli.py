"""ssv2_fixtures.report.cli: summarize, compare (to a file or stdout), watch."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest
from report_helpers import DATA, run_dir

from ssv2_fixtures.report import main


def test_cli_compare_to_file_and_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cmp.md"
    assert main(["compare", str(DATA / "healthy.json"), str(DATA / "healthy_small_shm.json"), "--out", str(out)]) == 0
    assert out.read_text().startswith("# Comparison: A = 20250314T091152Z-gpu-node-07")
    capsys.readouterr()
    assert main(["compare", str(DATA / "healthy.json"), str(DATA / "limits.json")]) == 0
    assert "## Machine differences" in capsys.readouterr().out


def test_cli_summarize_prints_the_summary_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = run_dir(tmp_path, "data_error")
    assert main(["summarize", str(d)]) == 0
    assert capsys.readouterr().out.strip() == str(d / "summary.md")
    assert "## Data could not load" in (d / "summary.md").read_text()


def test_cli_watch_hands_the_log_to_the_watch_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[tuple[Path, Path]] = []
    mod = types.ModuleType("ssv2_fixtures.report.watch")

    def render(log_path: Path, out_dir: Path) -> Path:
        calls.append((log_path, out_dir))
        return out_dir / "watch.md"

    mod.render = render  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ssv2_fixtures.report.watch", mod)
    log = tmp_path / "train.jsonl"
    log.write_text("{}\n")
    assert main(["watch", str(log)]) == 0 and calls == [(log, tmp_path)]
    assert main(["watch", str(log), "--out", str(tmp_path / "r")]) == 0 and calls[-1] == (log, tmp_path / "r")
    assert capsys.readouterr().out.splitlines() == [str(tmp_path / "watch.md"), str(tmp_path / "r" / "watch.md")]
    assert main(["watch", str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl: no such watch log" in capsys.readouterr().err


def test_cli_bad_watch_log_exits_2_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The real watch reader refuses a file that is no watch log: one line, exit 2."""
    log = tmp_path / "not-a-log.jsonl"
    log.write_text("{}\n")
    for args in (
        ["watch", str(log)],
        ["compare", str(log), str(DATA / "healthy.json")],
        ["compare", str(log), str(log)],
    ):
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and ("not-a-log.jsonl" in err or "two watch logs" in err)


def test_python_m_report_runs(tmp_path: Path) -> None:
    d = run_dir(tmp_path, "healthy")
    p = subprocess.run(
        [sys.executable, "-m", "ssv2_fixtures.report", "summarize", str(d)], capture_output=True, text=True, timeout=120
    )
    assert p.returncode == 0, p.stderr
    assert (d / "summary.md").is_file() and p.stdout.strip() == str(d / "summary.md")
