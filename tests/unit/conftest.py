"""Shared fixtures for the unit tests of the loader library (clips, config/make_loader).

``synth_root``: one small synthetic SSv2 set (12 VP9 clips: 9 train, 2 validation, 1 test) per test
session, built under ``$SSV2_STRESS_CACHE`` when set (so CI, and every pytest-xdist worker, reuse one
content-addressed copy; ``ensure_synthetic`` is safe to race) or else under ``tmp_path_factory``.

``bad_root``: a private, function-scoped *copy* of that set in which a test may break videos. Videos are
copied, not hard-linked: a test that truncated or rewrote a hard link in place would corrupt the shared
cache for every later test and run.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ssv2_fixtures.data.synth import MANIFEST, SynthSpec, ensure_synthetic

UNIT_SPEC = SynthSpec(videos=12)


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env = os.environ.get("SSV2_STRESS_CACHE")
    cache = Path(env).expanduser() if env else tmp_path_factory.getbasetemp() / "ssv2-cache"
    return ensure_synthetic(UNIT_SPEC, cache_dir=cache, processes=min(2, os.cpu_count() or 1))


@pytest.fixture
def bad_root(synth_root: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "bad-root"
    # The manifest is copied too (it is a complete set), but it describes the intact videos.
    shutil.copytree(synth_root, dst, ignore=shutil.ignore_patterns(".pool", "*.lock"))
    assert (dst / MANIFEST).is_file()
    return dst
