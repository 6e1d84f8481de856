"""The state of one pytest session of stress runs: where results go, and what has happened so far.

Registered as a plugin object by :mod:`ssv2_fixtures.plugin`; everything the fixtures and hooks share
lives here, not in module globals. ``results.json`` is rewritten atomically after every config, so a
killed session keeps what finished.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..options import Settings
from ..run.breakdown import finish as finish_breakdown
from ..run.record import write_atomic
from ..run.schema import (
    SCHEMA,
    BreakdownRecord,
    DataErrorRecord,
    DriftRecord,
    InterleavedDecision,
    InvocationRecord,
    PipelineProbe,
    ResultsFile,
    RunRecord,
)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class StressSession:
    settings: Settings
    run_id: str = ""
    machine: dict[str, Any] = field(default_factory=dict)
    dataset: dict[str, Any] = field(default_factory=dict)
    results: list[RunRecord] = field(default_factory=list)
    limits: list[dict[str, Any]] = field(default_factory=list)
    validate: dict[str, Any] | None = None
    ladder_failure: tuple[int, str] | None = None  # (phase number, outcome kind)
    capped: list[str] = field(default_factory=list)
    tune: list[dict[str, Any]] = field(default_factory=list)  # -m tune: one TuneRecord per batch size
    data_error: DataErrorRecord | None = None  # the dataset could not load (written, then the tests fail)
    _created: str = ""
    report_error: str | None = None  # summary.md failed to build: shown in the terminal summary
    base_rss: int | None = None  # RSS of one loading process, measured with the decode rate
    decode_rate: float | None = None  # single-process videos/s of this dataset and sampling (the limit's base)
    probe: PipelineProbe | None = None  # a user's pipeline, probed once (results.json "probe")
    invocation: InvocationRecord | None = None  # the pytest command line (results.json "invocation")
    drift: DriftRecord | None = None  # the drift controls so far (stress/drift.py; results.json "drift")
    interleaved: InterleavedDecision | None = None  # the ladder's tie re-measured (results.json "interleaved")
    finish_hooks: list[Callable[[], None]] = field(default_factory=list)  # run once by finish()
    breakdown: BreakdownRecord | None = None  # where the item time goes (stress/breakdown.py), measured once
    breakdown_tried: bool = False
    stress_started: float | None = None  # unix time the first stress test prepared its dataset (quick's budget)

    def __post_init__(self) -> None:
        host = socket.gethostname().split(".")[0] or "host"
        self.run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + host
        self._created = _now()

    @property
    def reports_root(self) -> Path:
        return Path(self.settings.reports).resolve()

    @property
    def run_dir(self) -> Path:
        return self.reports_root / self.run_id

    @property
    def runs_dir(self) -> Path:
        """Parent of each child's working folder (its TMPDIR lives inside)."""
        base = self.settings.loader_tmpdir
        if base is not None:
            return Path(base) / f"ssv2-stress-{self.run_id}"
        return self.run_dir / "runs"

    @property
    def started(self) -> bool:
        return self.run_dir.exists()

    def file(self) -> ResultsFile:
        out: ResultsFile = {
            "schema": SCHEMA,
            "run_id": self.run_id,
            "created": self._created,
            "updated": _now(),
            "machine": self.machine,
            "dataset": self.dataset,
            "settings": self.settings.public(),
            "results": self.results,
            "limits": self.limits,
            "validate": self.validate,
            "capped": self.capped,
        }
        if self.tune:
            out["tune"] = self.tune
        if self.data_error is not None:
            out["data_error"] = self.data_error
        if self.probe is not None:
            out["probe"] = self.probe
        if self.invocation is not None:
            out["invocation"] = self.invocation
        if self.drift is not None:
            out["drift"] = self.drift
        if self.interleaved is not None:
            out["interleaved"] = self.interleaved
        if (bd := finish_breakdown(self.breakdown, self.decode_rate, self.results)) is not None:
            out["breakdown"] = bd
        return out

    def finish(self) -> None:
        """pytest is finishing the session: what waits for its end (the last drift control) runs now, once."""
        hooks, self.finish_hooks = self.finish_hooks, []
        for hook in hooks:
            hook()

    def record(self, rec: RunRecord) -> None:
        self.results.append(rec)
        self.flush()

    def fail_data(self, error: DataErrorRecord) -> None:
        """The data cannot load: say so in results.json now (the fixture then fails every test)."""
        if self.data_error is None:
            self.data_error = error
            self.flush()

    def pytest_failed(self, nodeid: str, when: str, message: str) -> bool:
        """pytest failed a test whose runs were recorded as passed (a fixture's teardown, another plugin, a
        timeout in this process): the runs fail too, by a ``pytest`` verdict, so results.json, summary.md
        and pytest's exit status say the same. Status is decided in one place, :func:`verdicts.decide`.
        True when a record changed."""
        from .verdicts import decide

        changed = False
        for rec in self.results:
            if rec.get("id") != nodeid or rec.get("status") != "passed":
                continue
            verdicts = list(rec.get("verdicts") or [])
            detail = f"pytest failed this test at {when}: {message}"
            verdicts.append({"name": "pytest", "ok": False, "detail": detail})
            rec["verdicts"] = verdicts
            rec["status"] = decide(rec["status"], verdicts)
            changed = True
        if changed:
            self.flush()
        return changed

    def flush(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(self.run_dir / "results.json", self.file())
        self._point_latest()

    def _point_latest(self) -> None:
        latest = self.reports_root / "latest"
        tmp = self.reports_root / f".latest.{os.getpid()}"
        try:
            if tmp.is_symlink():
                tmp.unlink()
            tmp.symlink_to(self.run_id)
            os.replace(tmp, latest)
        except OSError:
            pass
