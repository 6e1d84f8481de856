"""Emulating a target machine, for real: docker's 64 MB /dev/shm in a private mount namespace, and the
host left exactly as it was."""

from __future__ import annotations

import os
import resource
from pathlib import Path

import pytest

from ssv2_fixtures import LoaderConfig, RunRequest, dataset_spec, run_config
from ssv2_fixtures.run.sandbox import PROFILES, cgroup_base, unavailable
from ssv2_fixtures.stress.budget import predict

DOCKER = PROFILES["docker-default"]
pytestmark = pytest.mark.skipif(unavailable(DOCKER) is not None, reason=str(unavailable(DOCKER)))
pytest_plugins = ["pytester"]


def _host_state() -> dict:
    st = os.statvfs("/dev/shm")
    base = cgroup_base()
    return {
        "shm_size": st.f_blocks * st.f_frsize,
        "nofile": resource.getrlimit(resource.RLIMIT_NOFILE),
        "cgroups": sorted(p.name for p in base[1].iterdir() if p.name.startswith("ssv2-stress-")) if base else [],
        "mounts": Path("/proc/self/mounts").read_text().count(" /dev/shm "),
    }


@pytest.fixture
def host_unchanged():
    before = _host_state()
    yield
    assert _host_state() == before, "the host's /dev/shm, limits or cgroups changed"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    from ssv2_fixtures.data.synth import SynthSpec, ensure_synthetic

    cache = os.environ.get("SSV2_STRESS_CACHE") or tmp_path_factory.mktemp("cache")
    return ensure_synthetic(SynthSpec(videos=64), cache_dir=cache)


def test_docker_default_bs32_fails_as_shm_exhausted_bs2_passes(root, tmp_path, host_unchanged):
    ds = dataset_spec(root, "train")  # 16 frames × 224² like the seed
    big = LoaderConfig(batch_size=32, num_workers=2)
    assert predict(big).shm_bytes > 64 * 2**20  # the prediction already says it cannot fit
    r = run_config(RunRequest(ds, big, 4, sandbox=DOCKER, run_dir=tmp_path))
    assert r.kind == "shm_exhausted", r.describe()
    assert "shm-size" in r.outcome["remedy"]
    assert r.outcome["evidence"]["shm_need_bytes"] > r.outcome["evidence"]["shm_total_bytes"] == 64 * 2**20
    small = run_config(RunRequest(ds, LoaderConfig(batch_size=2, num_workers=2), 4, sandbox=DOCKER, run_dir=tmp_path))
    assert small.passed, small.describe()


def test_full_prefetch_queues_over_64mb_fail_as_shm_exhausted_without_a_step(root, tmp_path, host_unchanged):
    # bs8-w2-pf2: one batch (18 MB) fits, and a loop that takes each batch at once never fills its queues;
    # the hold after the measured window does (NOTE [full-queue hold] in run/hold.py), as a training step
    # slower than the loader would: 2 × 2 + 1 batches cannot all be in the 64 MB /dev/shm
    from ssv2_fixtures.report.recommend import recommend
    from ssv2_fixtures.run.shm import shm_in_flight

    cfg = LoaderConfig(batch_size=8, num_workers=2, prefetch_factor=2)
    measure = {"warmup_batches": 2, "min_batches": 4, "max_batches": 12, "max_s": 2.0, "target_rel": 0.5}
    kinds: list[str] = []
    r = run_config(
        RunRequest(
            dataset_spec(root, "train"),
            cfg,
            12,
            sandbox=DOCKER,
            run_dir=tmp_path,
            measure=measure,
            on_event=lambda e, _mon: kinds.append(str(e.get("ev"))),
        )
    )
    assert r.kind == "shm_exhausted", r.describe()
    ev = r.outcome["evidence"] if r.outcome else {}
    assert ev["during"] == "full-queue hold" and ev["shm_total_bytes"] == 64 * 2**20
    assert ev["shm_need_bytes"] == shm_in_flight(cfg, ev["batch_bytes"]) > 64 * 2**20 > ev["batch_bytes"]
    assert "measured" in kinds and kinds.index("measured") < kinds.index("hold") < kinds.index("error")
    # the same config on a /dev/shm that holds it passes, and records the worst case it measured
    ok = run_config(RunRequest(dataset_spec(root, "train"), cfg, 12, run_dir=tmp_path, measure=measure))
    assert ok.passed, ok.describe()
    assert ok.metrics["full_queue_batches"] == 5 and ok.metrics["shm_peak_bytes"] >= ok.metrics["shm_full_queue_bytes"]
    # a record of the failing run is never a recommendation (it did not pass), nor is a pass predicted too big
    assert recommend([r.record]) is None


def test_preflight_says_so_under_docker_default(pytester, root):
    stress = Path(__file__).resolve().parents[3] / "ssv2_fixtures" / "suite" / "test_preflight.py"
    pytester.makepyfile(test_preflight=stress.read_text())
    r = pytester.runpytest_subprocess(
        "-m",
        "quick",
        "-k",
        "shm_fits",
        "--emulate",
        "docker-default",
        "--ssv2-cache",
        str(Path(root).parent),
        "-p",
        "no:cacheprovider",
    )
    r.assert_outcomes(failed=1)
    out = r.stdout.str()
    assert "emulated /dev/shm is 64 MiB" in out and "--shm-size=" in out
