"""Pre-flight checks as functions: each returns None or the message that says what to change."""
from __future__ import annotations

import resource
from types import SimpleNamespace

from ssv2_fixtures.run.sandbox import Sandbox
from ssv2_fixtures.stress import preflight


def _session(**kw):
    s = dict(max_workers=4, sharing_strategy="file_descriptor", train_config=None, sandbox=None, frames=16,
             size=224, loader_tmpdir=None)
    s.update(kw)
    return SimpleNamespace(settings=SimpleNamespace(**s))


def test_tmpdir_check_holds_for_a_writable_folder_with_space(tmp_path):
    # the failing directions (unwritable, < 1 GB free) are provoked for real by the TMPDIR emulation tests
    assert preflight.tmpdir(_session(loader_tmpdir=tmp_path / "made")) is None
    assert (tmp_path / "made").is_dir()


def test_nofile_check_names_the_limit_and_the_fix():
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert preflight.nofile(_session(sharing_strategy="file_system")) == preflight.NOT_APPLICABLE
    tight = preflight.nofile(_session(sandbox=Sandbox(nofile=16)))
    assert tight is not None and "ulimit -n is 16" in tight and "file_system" in tight
    assert preflight.nofile(_session(sandbox=Sandbox(nofile=max(soft, 65536)))) is None


def test_torch_comes_before_decord():
    assert preflight.torch_before_decord() is None
