"""The suite as a user runs it from their own project: ``pytest --pyargs ssv2_fixtures.suite -m MARKER`` in a
folder outside this repository, with that folder's own pytest.ini (no conftest), the package as installed and
a ``--dataset-factory`` of the user's (tests/userpipe, put on the path with ``--dataset-path``).

Smallest settings, as in tests/unit/stress/test_pipeline_markers.py: 32² crops of 4 frames, batch size 2,
one worker, 6 batches. Assertions are on results.json and pytest's output, never on timing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
USERPIPE = REPO / "tests" / "userpipe"
PIPELINE = ["--dataset-path", str(USERPIPE), "--dataset-arg", "size=32", "--dataset-arg", "frames=4"]
SMALL = ["--workers", "1", "--prefetch", "2", "--synthetic-videos", "12", "-p", "no:cacheprovider"]


def _project(tmp_path: Path) -> Path:
    """A user's project: its own pytest.ini (two of the suite's settings as ini keys), nothing else."""
    proj = tmp_path / "myproject"
    proj.mkdir()
    # the breakdown probe and drift controls are tested in sessions of their own; here they are ini flags
    (proj / "pytest.ini").write_text("[pytest]\nbatch_sizes = 2\nbatches = 6\nno_breakdown = true\nno_drift = true\n")
    assert not proj.resolve().is_relative_to(REPO)
    return proj


def _pytest(proj: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHONPATH"))}  # not this session's
    cache = os.environ.get("SSV2_STRESS_CACHE")
    cmd = [sys.executable, "-m", "pytest", "--pyargs", "ssv2_fixtures.suite", *args, "--reports", str(proj / "r")]
    return subprocess.run(
        [*cmd, *(["--ssv2-cache", cache] if cache else [])],
        cwd=proj,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _results(proj: Path) -> dict[str, Any]:
    (run,) = [p for p in (proj / "r").iterdir() if p.is_dir() and p.name != "latest"]
    return json.loads((run / "results.json").read_text())


def test_sustained_runs_from_the_users_project_with_their_factory_and_config(tmp_path: Path) -> None:
    proj = _project(tmp_path)
    r = _pytest(proj, "-m", "sustained", "--dataset-factory", "userpipe.data:build", *PIPELINE, *SMALL)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert f"rootdir: {proj}" in out and "configfile: pytest.ini" in out  # the user's config, not this repo's
    data = _results(proj)
    assert data["settings"]["batch_sizes"] == [2] and data["settings"]["batches"] == 6  # from their ini
    assert data["settings"]["no_drift"] is True and "drift" not in data and "breakdown" not in data
    (rec,) = data["results"]
    assert rec["status"] == "passed" and "test_sustained" in rec["id"]
    assert rec["dataset"]["factory"] == "userpipe.data:build" and data["dataset"]["factory"] == "userpipe.data:build"
    assert rec["metrics"]["batches"] >= 6 and rec["metrics"]["batch_shape"][-2:] == [32, 32]  # their pipeline
    assert data["probe"]["batch_shape"][-2:] == [32, 32]
    assert data["invocation"]["dir"] == str(proj) and "--pyargs" in data["invocation"]["args"]


def test_a_misspelt_submodule_from_the_users_project_is_named_whole(tmp_path: Path) -> None:
    proj = _project(tmp_path)
    r = _pytest(proj, "-m", "quick", "-k", "phase1", "--dataset-factory", "userpipe.dta:build", *PIPELINE, *SMALL)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    err = _results(proj)["data_error"]
    assert f"userpipe has no submodule 'dta' (looked in {USERPIPE / 'userpipe'})" in err["message"]
    assert "--dataset-path" not in err["message"]  # the package was found: the path is not blamed
    assert f"data_error: {err['message']}" in out  # the whole message in the terminal, not cut off
    summary = (proj / "r" / "latest" / "summary.md").read_text()
    steps = summary[summary.index("## Next steps") :]
    assert (
        "then rerun `pytest --pyargs ssv2_fixtures.suite -m quick -k phase1 --dataset-factory userpipe.dta:build"
        in (steps)
    )
    assert f"--dataset-path {USERPIPE}" in steps and f"run them from `{proj}`" in steps


# marker -> a test it selects (the session above ran sustained; a collection shows the others are there)
SELECTS = {
    "quick": "test_ladder[phase1",
    "sustained": "test_sustained[bs2",
    "limits": "test_limits[",
    "validate": "test_validate_train_config",
    "distributed": "test_distributed[",
    "tune": "test_tune",
}


def test_every_marker_collects_from_the_users_project(tmp_path: Path) -> None:
    proj = _project(tmp_path)
    r = _pytest(proj, "-m", " or ".join(SELECTS), "--collect-only", "-q", "-p", "no:cacheprovider")
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    ids = [ln for ln in r.stdout.splitlines() if "::" in ln]
    for marker, test in SELECTS.items():
        assert any(test in ln for ln in ids), (marker, r.stdout[-3000:])
