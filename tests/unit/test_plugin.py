"""The pytest plugin, driven through ``pytester`` in subprocesses (the plugin loads via its pytest11
entry point there, as it does for users)."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import psutil
import pytest

pytest_plugins = ["pytester"]

# the stress tests as the package ships them (``pytest --pyargs ssv2_fixtures.suite`` runs the same files)
STRESS = Path(__file__).resolve().parents[2] / "ssv2_fixtures" / "suite"
# Once per session, ~12 s of a small session's ~17 s: the breakdown probe and the end's drift control. Sessions that
# test something else skip them; test_results_json_valid_after_each_config_and_benchmark_json runs them.
EXTRAS = ["--no-breakdown", "--no-drift"]
# Small and fast: the plugin's behaviour does not depend on clip size.
FAST = [
    "--size",
    "64",
    "--frames",
    "4",
    "--quick-batches",
    "3",
    "--max-workers",
    "2",
    "--synthetic-videos",
    "12",
    "-p",
    "no:cacheprovider",
    *EXTRAS,
]


@pytest.fixture(autouse=True)
def _not_an_xdist_worker(monkeypatch):
    # Under `pytest -n`, this process is an xdist worker; the inner sessions must not inherit that (the
    # plugin reads config.workerinput, but xdist itself and torch read these variables).
    for var in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def stress_tests(pytester, tmp_path_factory):
    for f in ("test_quick.py", "test_preflight.py", "test_sustained.py", "test_validate.py", "test_limits.py"):
        pytester.makepyfile(**{f[:-3]: (STRESS / f).read_text()})
    cache = os.environ.get("SSV2_STRESS_CACHE") or str(tmp_path_factory.getbasetemp() / "ssv2-cache")
    return ["--ssv2-cache", cache, "--reports", str(pytester.path / "reports"), *FAST]


def _results(pytester) -> dict:
    return json.loads((pytester.path / "reports" / "latest" / "results.json").read_text())


def test_help_shows_the_group(pytester):
    r = pytester.runpytest_subprocess("--help")
    out = r.stdout.str()
    assert "ssv2-stress" in out
    for opt in ("--ssv2-root", "--batch-sizes", "--workers", "--inject-fault", "--emulate-shm", "--train-config"):
        assert opt in out


def test_markers_registered_with_descriptions(pytester):
    out = pytester.runpytest_subprocess("--markers").stdout.str()
    for m in ("quick", "sustained", "limits", "validate", "distributed"):
        assert f"@pytest.mark.{m}:" in out


def test_long_markers_run_only_when_selected(pytester):
    pytester.makepyfile(
        """
        import pytest
        @pytest.mark.sustained
        def test_long(): pass
        @pytest.mark.quick
        def test_quick(): pass
        def test_plain(): pass
        """
    )
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    r.assert_outcomes(passed=2, deselected=1)
    r = pytester.runpytest_subprocess("-m", "sustained", "-p", "no:cacheprovider")
    r.assert_outcomes(passed=1, deselected=2)


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--workers", "two"], "invalid --workers (from the command line): 'two'"),
        (["--emulate-shm", "lots"], "invalid --emulate-shm (from the command line)"),
        (["--inject-fault", "meteor@2"], "unknown fault 'meteor'"),
    ],
)
def test_bad_option_value_names_its_source(pytester, args, needle):
    r = pytester.runpytest_subprocess(*args)
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    assert needle in r.stderr.str()


def test_bad_ini_value_names_the_ini_file(pytester):
    pytester.makeini("[pytest]\nbatch_sizes = 16,big\n")
    r = pytester.runpytest_subprocess()
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    assert "ini key batch_sizes (from" in r.stderr.str() and "tox.ini" in r.stderr.str()


def test_cli_wins_over_ini(pytester):
    pytester.makeini("[pytest]\nquick_batches = 7\n")
    pytester.makeconftest(
        """
        def pytest_collection_finish(session):
            from ssv2_fixtures.plugin import session_of
            s = session_of(session.config).settings
            print("QB", s.quick_batches, s.sources["quick_batches"])
        """
    )
    out = pytester.runpytest_subprocess("-s", "--quick-batches", "4").stdout.str()
    assert "QB 4 --quick-batches (from the command line)" in out
    out = pytester.runpytest_subprocess("-s").stdout.str()
    assert "QB 7 ini key quick_batches" in out


def test_injected_fault_in_phase3_fails_it_and_skips_the_rest(pytester, stress_tests):
    r = pytester.runpytest_subprocess(
        "-m", "quick", "-k", "test_ladder", "-rs", "--inject-fault", "exception@1:phase3", *stress_tests
    )
    r.assert_outcomes(passed=2, failed=1, skipped=6)
    out = r.stdout.str()
    assert "phase3 bs4-w2-pf2: worker_exception at batch" in out
    # phases 4, 6, 7 (5, 8, 9 are capped duplicates at --max-workers 2)
    r.stdout.fnmatch_lines(["SKIPPED [[]3[]] test_quick.py:*: phase 3 failed: worker_exception"])
    data = _results(pytester)
    assert [x["phase"] for x in data["results"]] == ["phase1", "phase2", "phase3"]
    assert data["results"][2]["outcome"]["kind"] == "worker_exception"
    # --no-breakdown --no-drift (EXTRAS): neither measured, and the report says why each is missing
    assert "breakdown" not in data and "drift" not in data and "interleaved" not in data
    summary = (pytester.path / "reports" / "latest" / "summary.md").read_text()
    assert "Not measured: the session ran with `--no-breakdown`." in summary
    assert "Not measured: the session ran with `--no-drift`." in summary


def test_results_json_valid_after_each_config_and_benchmark_json(pytester, stress_tests):
    bench = pytester.path / "bench.json"
    # phase1 (single-process), phase3 (the first with workers) and phase5 (a capped duplicate, skipped): every record
    # is checked against its benchmark entry; the other phases would only repeat one of the two cases (issue #22)
    ladder = "test_ladder and (phase1 or phase3 or phase5)"
    full = [a for a in stress_tests if a not in EXTRAS]  # with the breakdown probe and the drift controls
    r = pytester.runpytest_subprocess("-m", "quick", "-k", ladder, f"--benchmark-json={bench}", *full)
    r.assert_outcomes(passed=2, skipped=1)
    data = _results(pytester)
    assert data["schema"] == 1 and len(data["results"]) == 2
    # phase 1 starts the drift series and the session's end takes the last control; the probe ran once
    assert len(data["drift"]["controls"]) == 2 and data["breakdown"]["stages"]
    summary = (pytester.path / "reports" / "latest" / "summary.md").read_text()
    assert "## Where the time goes" in summary and "## Drift of the machine" in summary
    assert "Not measured" not in summary
    assert data["machine"]["cores"] >= 1 and data["dataset"]["synthetic"] is True
    assert all(x["status"] == "passed" for x in data["results"])
    b = json.loads(bench.read_text())
    assert len(b["benchmarks"]) == 2  # one per passed measured run
    by_name = {e["name"]: e for e in b["benchmarks"]}
    for rec in data["results"]:
        name = rec["id"].split("::")[-1]
        e = by_name[name]
        # stats are the child's per-batch waits (after the first), not the parent's wall time
        waits = rec["batch_waits_s"][1:]
        assert e["stats"]["rounds"] == len(waits)
        assert e["stats"]["min"] == pytest.approx(min(waits))
        assert e["stats"]["max"] == pytest.approx(max(waits))
        assert e["extra_info"]["videos_per_s"] == pytest.approx(rec["metrics"]["videos_per_s"])


def test_results_survive_a_killed_session(pytester, stress_tests):
    args = [sys.executable, "-m", "pytest", "-m", "quick", "-k", "test_ladder", *stress_tests]
    proc = psutil.Popen(
        args,
        cwd=pytester.path,
        stdout=open(pytester.path / "out.txt", "w"),
        stderr=open(pytester.path / "err.txt", "w"),
    )
    path = pytester.path / "reports" / "latest" / "results.json"
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            if path.exists() and len(json.loads(path.read_text())["results"]) >= 2:
                break
            time.sleep(0.2)
        else:
            pytest.fail("no results written in time: " + (pytester.path / "err.txt").read_text()[-2000:])
    finally:
        tree = proc.children(recursive=True)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for p in tree:  # the runs live in their own sessions: end them too (ours, by pid + ctime)
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            try:
                p.kill()
            except psutil.Error:
                pass
        # A killed session cannot remove its runs' short TMPDIR aliases (named after its pid): we do.
        for alias in Path("/tmp").glob(f"ssv2-{proc.pid}-*"):
            if alias.is_symlink():
                alias.unlink()
    data = json.loads(path.read_text())  # still complete JSON: written atomically per config
    assert len(data["results"]) >= 2
    assert all(x["status"] == "passed" for x in data["results"])


TOML = """
[loader]
batch_size = 4
num_workers = 2
prefetch_factor = 2
sharing_strategy = "file_system"
[target]
batches = 6
min_videos_per_s = {rate}
max_rss_gb = 16
"""


@pytest.mark.parametrize("rate,passes", [(1, True), (100000, False)])
def test_validate_passes_and_fails_as_targets_say(pytester, stress_tests, rate, passes):
    cfg = pytester.path / "train.toml"
    cfg.write_text(TOML.format(rate=rate))
    r = pytester.runpytest_subprocess(
        "-m", "validate", "-k", "validate_train_config", "-s", "--train-config", str(cfg), *stress_tests
    )
    r.assert_outcomes(passed=1 if passes else 0, failed=0 if passes else 1)
    out = r.stdout.str()
    assert "min_videos_per_s" in out and ("NO" in out) != passes
    data = _results(pytester)
    v = data["validate"]
    assert v["passed"] is passes and v["rows"][0]["target"] in ("min_videos_per_s", "max_rss_gb")
    # 6 batches are too few to compare two fifths: the pass rests on the targets, not on two measured rates
    (rec,) = [x for x in data["results"] if x["kind"] == "validate"]
    deg = {x["name"]: x for x in rec["verdicts"]}["degradation"]
    assert deg["ok"] and deg["detail"].startswith("too few batches")


def test_validate_names_a_bad_toml_key(pytester, stress_tests):
    cfg = pytester.path / "train.toml"
    cfg.write_text("[loader]\nbatch_size = 4\nnum_wrokers = 2\n")
    r = pytester.runpytest_subprocess(
        "-m", "validate", "-k", "validate_train_config", "--train-config", str(cfg), *stress_tests
    )
    r.assert_outcomes(failed=1)
    assert "[loader] num_wrokers: unknown key" in r.stdout.str()


def test_stress_runs_refused_under_xdist(pytester, stress_tests):
    r = pytester.runpytest_subprocess("-m", "quick", "-k", "phase1", "-n", "2", "-rs", *stress_tests)
    r.assert_outcomes(skipped=1)
    assert "refuses measured runs under pytest-xdist" in r.stdout.str()


def test_missing_videos_write_a_data_error_report(pytester, stress_tests, synth_root, tmp_path):
    import shutil

    root = tmp_path / "root"
    shutil.copytree(synth_root, root, ignore=shutil.ignore_patterns(".pool", "*.lock"))
    gone = sorted(root.rglob("*.webm"))[0]
    gone.unlink()
    r = pytester.runpytest_subprocess("-m", "quick", "-k", "phase1", "--ssv2-root", str(root), *stress_tests)
    r.assert_outcomes(errors=1)
    out = r.stdout.str()
    assert "data_error:" in out and gone.stem in out  # pytest shows the same clear error
    assert "direct cause" not in out and "During handling" not in out
    err = _results(pytester)["data_error"]
    assert err["kind"] == "data_error" and gone.stem in err["message"]
    assert err["file"] and err["fix"]
    summary = (pytester.path / "reports" / "latest" / "summary.md").read_text()
    assert "data_error" in summary


def test_a_failed_summary_is_shown_in_the_terminal(pytester, stress_tests, monkeypatch):
    # summarize() raising is simulated in the inner session through a conftest: the plugin must say so
    pytester.makeconftest(
        """
        import ssv2_fixtures.report as report
        def _broken(run_dir):
            raise RuntimeError("plots exploded")
        report.summarize = _broken
        """
    )
    r = pytester.runpytest_subprocess("-m", "quick", "-k", "phase1", *stress_tests)
    r.assert_outcomes(passed=1)
    assert "summary.md could not be written: RuntimeError: plots exploded" in r.stdout.str()


def test_xdist_worker_is_detected_from_workerinput():
    from types import SimpleNamespace

    from ssv2_fixtures.plugin import _is_xdist_worker

    assert _is_xdist_worker(SimpleNamespace(workerinput={"workerid": "gw0"}))  # type: ignore[arg-type]
    assert not _is_xdist_worker(SimpleNamespace())  # type: ignore[arg-type]
