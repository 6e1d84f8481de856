"""Pre-flight checks as functions: each returns None or the message that says what to change."""

from __future__ import annotations

import resource
from types import SimpleNamespace

from ssv2_fixtures.run.sandbox import Sandbox
from ssv2_fixtures.stress import preflight


def _session(runs_dir=None, **kw):
    s = dict(
        max_workers=4,
        sharing_strategy="file_descriptor",
        train_config=None,
        sandbox=None,
        frames=16,
        size=224,
        loader_tmpdir=None,
    )
    s.update(kw)
    return SimpleNamespace(settings=SimpleNamespace(**s), runs_dir=runs_dir)


def test_tmpdir_check_holds_for_a_writable_folder_with_space(tmp_path):
    # the failing directions (unwritable, < 1 GiB free) are provoked for real by the TMPDIR emulation tests
    assert preflight.tmpdir(_session(tmp_path / "made" / "ssv2-stress-x")) is None
    assert (tmp_path / "made" / "ssv2-stress-x").is_dir()  # the runs' folder itself, where their TMPDIR lives


def test_tmpdir_check_checks_the_runs_folder_of_a_real_session(tmp_path):
    from ssv2_fixtures.options import Settings
    from ssv2_fixtures.stress.session import StressSession

    session = StressSession(Settings(loader_tmpdir=tmp_path / "far", reports=tmp_path / "reports"))
    assert preflight.tmpdir(session) is None
    assert session.runs_dir.is_dir() and session.runs_dir.parent == tmp_path / "far"


def test_an_uncreatable_runs_folder_is_the_checks_message_not_a_traceback(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    problem = preflight.tmpdir(_session(blocker / "runs"))
    assert problem is not None and str(blocker / "runs") in problem and "--loader-tmpdir" in problem


def test_nofile_check_names_the_limit_and_the_fix():
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert preflight.nofile(_session(sharing_strategy="file_system")) == preflight.NOT_APPLICABLE
    tight = preflight.nofile(_session(sandbox=Sandbox(nofile=16)))
    assert tight is not None and "ulimit -n is 16" in tight and "file_system" in tight
    assert preflight.nofile(_session(sandbox=Sandbox(nofile=max(soft, 65536)))) is None


def test_torch_comes_before_decord():
    assert preflight.torch_before_decord() is None


def test_tmpdir_is_judged_against_the_emulated_quota_not_this_disk(tmp_path):
    # hpc-quota's 256 MiB TMPDIR: each run's TMPDIR is that tmpfs, whatever this disk has free
    problem = preflight.tmpdir(_session(tmp_path / "runs", sandbox=Sandbox(tmp_bytes=256 * 2**20)))
    assert problem is not None and problem.startswith("the emulated TMPDIR is 256 MiB (< 1 GiB)")
    assert preflight.tmpdir(_session(tmp_path / "runs", sandbox=Sandbox(tmp_bytes=2 * 2**30))) is None
    tight = preflight.nofile(_session(sandbox=Sandbox(nofile=16)))
    assert tight is not None and "ulimit -n is 16 (emulated)" in tight
