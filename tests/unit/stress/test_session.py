"""session.py: results.json is rewritten whole after every record (a killed session keeps what finished),
``latest`` follows the newest run, the data_error / tune / probe sections appear when set, and a
summary.md that fails to build is shown in the terminal summary."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from ssv2_fixtures.options import Settings
from ssv2_fixtures.plugin import _Hooks
from ssv2_fixtures.run.schema import SCHEMA, DataErrorRecord
from ssv2_fixtures.stress.session import StressSession


def _session(tmp_path: Path, **kw: Any) -> StressSession:
    return StressSession(replace(Settings(), reports=tmp_path / "reports", **kw))


def _results(s: StressSession) -> dict[str, Any]:
    return json.loads((s.run_dir / "results.json").read_text())


def _rec(i: int) -> Any:
    return {"id": f"run{i}", "status": "passed", "metrics": {"batches": i}}


def test_each_record_rewrites_results_json_whole_and_by_replacement(tmp_path: Path) -> None:
    s = _session(tmp_path)
    assert not s.started
    s.record(_rec(1))
    assert s.started
    path = s.run_dir / "results.json"
    before = open(path, encoding="utf-8")  # a reader that opened the file before the next record
    s.record(_rec(2))
    with before:
        # Replaced, not rewritten in place: the early reader still sees the whole earlier file.
        assert [r["id"] for r in json.load(before)["results"]] == ["run1"]
    data = _results(s)
    assert [r["id"] for r in data["results"]] == ["run1", "run2"]
    assert data["schema"] == SCHEMA and data["run_id"] == s.run_id
    assert data["created"] <= data["updated"]
    assert sorted(p.name for p in s.run_dir.iterdir()) == ["results.json"]  # no temp file left behind


def test_latest_points_at_the_newest_run(tmp_path: Path) -> None:
    a = _session(tmp_path)
    a.flush()
    latest = tmp_path / "reports" / "latest"
    assert latest.is_symlink() and latest.resolve() == a.run_dir
    b = _session(tmp_path)
    b.run_id = a.run_id + "-b"  # two sessions in the same second on one host
    b.flush()
    assert latest.resolve() == b.run_dir
    assert not [p for p in (tmp_path / "reports").iterdir() if p.name.startswith(".latest")]


def test_optional_sections_appear_only_when_set(tmp_path: Path) -> None:
    s = _session(tmp_path)
    s.flush()
    data = _results(s)
    assert not {"tune", "data_error", "probe"} & set(data)
    assert data["capped"] == [] and data["validate"] is None and data["limits"] == []
    s.tune.append({"batch_size": 8, "videos_per_s": 1.0})
    s.capped.append("phase1: W=8 capped to 2")
    s.probe = {
        "bytes_per_item": 10.0,
        "batch_shape": [2, 3],
        "batch_dtype": "uint8",
        "clips_per_item": None,
        "items_per_s": 5.0,
        "rss_bytes": 100,
        "factory": "m:f",
        "factory_kwargs": {},
    }  # type: ignore[typeddict-item]
    s.flush()
    data = _results(s)
    assert data["tune"] == [{"batch_size": 8, "videos_per_s": 1.0}]
    assert data["capped"] == ["phase1: W=8 capped to 2"]
    assert data["probe"]["batch_shape"] == [2, 3]


def test_a_data_error_is_written_at_once_and_the_first_one_stays(tmp_path: Path) -> None:
    s = _session(tmp_path)
    first: DataErrorRecord = {
        "kind": "data_error",
        "message": "a.json: entry 3: bad",
        "file": "a.json",
        "entry": "entry 3",
        "fix": "re-extract",
    }
    s.fail_data(first)
    assert _results(s)["data_error"] == first  # flushed by fail_data itself: nothing else has run
    s.fail_data({**first, "message": "later"})
    assert _results(s)["data_error"]["message"] == "a.json: entry 3: bad"


class _Terminal:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def section(self, title: str) -> None:
        self.lines.append(f"== {title}")

    def write_line(self, line: str, **_markup: Any) -> None:
        self.lines.append(line)


def test_a_summary_that_fails_to_build_is_shown_in_the_terminal_summary(tmp_path: Path) -> None:
    s = _session(tmp_path)
    s.record(_rec(1))
    (s.run_dir / "summary.md").mkdir()  # summary.md cannot be written over a folder: a real failure
    hooks = _Hooks(s)
    hooks.pytest_sessionfinish(None)  # type: ignore[arg-type]
    assert s.report_error is not None
    tr = _Terminal()
    hooks.pytest_terminal_summary(tr)
    shown = [line for line in tr.lines if line.startswith("summary.md could not be written")]
    assert shown and s.report_error in shown[0]
    assert any(line == f"report: {s.run_dir}" for line in tr.lines)


def test_runs_dir_is_under_the_loader_tmpdir_when_one_is_set(tmp_path: Path) -> None:
    s = _session(tmp_path)
    assert s.runs_dir == s.run_dir / "runs"
    t = _session(tmp_path, loader_tmpdir=tmp_path / "fast")
    assert t.runs_dir == tmp_path / "fast" / f"ssv2-stress-{t.run_id}"
    assert os.fspath(t.reports_root) == os.fspath((tmp_path / "reports").resolve())
