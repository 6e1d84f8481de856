"""stress/breakdown.py: when a session runs its breakdown probe, at most once. The probe itself runs for real in
tests/unit/run/test_breakdown_probe.py; here it is replaced by a recorder. (Named apart from
tests/unit/run/test_breakdown.py: test modules share one namespace.)"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ssv2_fixtures.options import Settings
from ssv2_fixtures.stress import breakdown
from ssv2_fixtures.stress.session import StressSession


@pytest.mark.parametrize("skip", [True, False])
def test_no_breakdown_runs_no_probe_and_a_session_otherwise_tries_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, skip: bool
) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(breakdown, "measure", lambda spec, folder: calls.append(spec))  # a probe that failed
    session = StressSession(replace(Settings(), reports=tmp_path / "reports", no_breakdown=skip))
    assert breakdown.ensure_breakdown(session, {"root": "x"}) is None  # type: ignore[typeddict-item]
    assert breakdown.ensure_breakdown(session, {"root": "x"}) is None  # type: ignore[typeddict-item]
    assert len(calls) == (0 if skip else 1)
    session.flush()
    data = json.loads((session.run_dir / "results.json").read_text())
    assert "breakdown" not in data and data["settings"]["no_breakdown"] is skip
