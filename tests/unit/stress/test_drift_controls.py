"""stress/drift.py: when a quick session takes its controls, what it runs for one and what results.json gets.
The isolated run is replaced by a recorder (the control's child is the runner's, tested there)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from ssv2_fixtures.options import Settings
from ssv2_fixtures.run.request import RunRequest
from ssv2_fixtures.stress import drift
from ssv2_fixtures.stress.campaign import Stress
from ssv2_fixtures.stress.plans import ladder
from ssv2_fixtures.stress.session import StressSession


def _result(rate: float, passed: bool = True) -> Any:
    # single-process rate = videos_per_s / wait_fraction (run.record.single_process_rate)
    return SimpleNamespace(passed=passed, metrics={"videos_per_s": rate / 2, "wait_fraction": 0.5, "loop_s": 6.0})


def test_phase1_starts_the_series_controls_every_4_phases_and_at_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []

    def fake_run_config(request: RunRequest) -> Any:
        calls.append({"config": request.config, "name": request.name, "measure": request.measure})
        return _result(10.0 + len(calls))

    monkeypatch.setattr(drift, "run_config", fake_run_config)
    session = StressSession(replace(Settings(), reports=tmp_path / "reports", max_workers=16))
    stress = Stress(session, {"root": "x"}, "t")  # type: ignore[typeddict-item]
    phases = [p for p in ladder(16) if p.duplicate_of is None]
    for p in phases:
        if p.number == 1:
            session.results.append({"phase": "phase1", "kind": "quick", "config": p.config.to_dict()})
        drift.after_phase(stress, p, _result(20.0 if p.number == 1 else 99.0))
    assert [c["name"] for c in calls] == ["drift-control-1"]  # after phase 4 of 9, none after 8 (one follows)
    assert calls[0]["config"] == phases[0].config  # the reference: phase 1's config exactly
    assert calls[0]["measure"]["min_s"] == calls[0]["measure"]["max_s"] == drift.CONTROL_S
    session.finish()
    session.finish()  # once: the hooks are spent
    assert [c["name"] for c in calls] == ["drift-control-1", "drift-control-2"]
    rec = json.loads((session.run_dir / "results.json").read_text())["drift"]
    assert [c["videos_per_s"] for c in rec["controls"]] == pytest.approx([20.0, 11.0, 12.0])
    assert rec["max_change"] == pytest.approx(20.0 / 11.0 - 1)


def test_no_series_without_phase1_and_a_failed_control_adds_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(drift, "run_config", lambda r: calls.append(r.name) or _result(5.0, passed=False))
    session = StressSession(replace(Settings(), reports=tmp_path / "reports", max_workers=16))
    stress = Stress(session, {"root": "x"}, "t")  # type: ignore[typeddict-item]
    phases = ladder(16)
    drift.after_phase(stress, phases[3], _result(9.0))  # phase 4 without phase 1 (e.g. -k phase4): no controls
    assert calls == [] and session.drift is None and session.finish_hooks == []
    drift.after_phase(stress, phases[0], _result(9.0, passed=False))  # a failed phase 1 starts nothing
    assert session.drift is None and session.finish_hooks == []
    drift.after_phase(stress, phases[0], _result(9.0))
    drift.after_phase(stress, phases[3], _result(9.0))
    assert calls == ["drift-control-1"]
    assert [c["videos_per_s"] for c in (session.drift or {}).get("controls", [])] == [9.0]


def test_no_drift_takes_no_control_and_arms_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--no-drift``: neither the ladder's controls (phase 1 included) nor a group's run, and the session's end
    has nothing to re-measure; results.json has no "drift" and no "interleaved"."""
    calls: list[str] = []
    monkeypatch.setattr(drift, "run_config", lambda r: calls.append(r.name) or _result(10.0))
    session = StressSession(replace(Settings(), reports=tmp_path / "reports", max_workers=16, no_drift=True))
    stress = Stress(session, {"root": "x"}, "t")  # type: ignore[typeddict-item]
    phases = [p for p in ladder(16) if p.duplicate_of is None]
    session.results.append({"phase": "phase1", "kind": "quick", "config": phases[0].config.to_dict()})
    for p in phases:
        drift.after_phase(stress, p, _result(20.0))
    drift.group_control(stress)
    assert calls == [] and session.drift is None and session.finish_hooks == []
    session.finish()
    session.flush()
    data = json.loads((session.run_dir / "results.json").read_text())
    assert "drift" not in data and "interleaved" not in data and data["settings"]["no_drift"] is True
    # the same calls without the option do run controls (the test above checks which)
    on = StressSession(replace(Settings(), reports=tmp_path / "on", max_workers=16))
    drift.group_control(Stress(on, {"root": "x"}, "t"))  # type: ignore[typeddict-item]
    assert calls == ["drift-control-0"] and on.drift is not None
