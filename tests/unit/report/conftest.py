from __future__ import annotations

from pathlib import Path

import pytest
from report_helpers import fixture, run_dir, with_intervals

from ssv2_fixtures.report import summarize


@pytest.fixture(scope="module")
def healthy_summary(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    d = run_dir(tmp_path_factory.mktemp("h"), "healthy")
    out = summarize(d)
    return d, out.read_text()


@pytest.fixture(scope="module")
def spread_summary(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """healthy.json with recorded intervals (as new sessions write them)."""
    d = run_dir(tmp_path_factory.mktemp("s"), "spread", with_intervals(fixture("healthy")))
    return d, summarize(d).read_text()


@pytest.fixture(scope="module")
def failures_summary(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    d = run_dir(tmp_path_factory.mktemp("f"), "failures")
    return d, summarize(d).read_text()
