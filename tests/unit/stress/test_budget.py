"""Budget prediction: the arithmetic, the probe's exact measured bytes replacing it, and the failure a
measured float32 pipeline meets in a small private /dev/shm where the built-in clips pass. How close the
prediction comes to a run's sampled /dev/shm peak is ``benchmarks/shm_prediction.py``'s to print.
"""

from __future__ import annotations

from typing import Any

import pytest

from ssv2_fixtures import LoaderConfig, RunRequest, Sandbox, dataset_spec, run_config
from ssv2_fixtures.run.sandbox import unavailable
from ssv2_fixtures.stress.budget import batch_bytes, predict


@pytest.fixture(scope="module")
def synth64_root(tmp_path_factory):
    # 48 train clips: at batch size 4 an epoch is 12 batches, longer than the queues being measured.
    import os

    from ssv2_fixtures.data.synth import SynthSpec, ensure_synthetic

    cache = os.environ.get("SSV2_STRESS_CACHE") or tmp_path_factory.mktemp("cache")
    return ensure_synthetic(SynthSpec(videos=64), cache_dir=cache)


def test_batch_bytes_is_uint8_clips_plus_labels():
    assert batch_bytes(32, 16, 224) == 32 * 16 * 224 * 224 * 3 + 32 * 8


def test_prediction_grows_with_workers_and_prefetch():
    a = predict(LoaderConfig(batch_size=8, num_workers=2, prefetch_factor=2))
    b = predict(LoaderConfig(batch_size=8, num_workers=4, prefetch_factor=2))
    c = predict(LoaderConfig(batch_size=8, num_workers=4, prefetch_factor=4))
    assert a.shm_bytes < b.shm_bytes < c.shm_bytes
    assert predict(LoaderConfig(batch_size=8, num_workers=0)).shm_bytes == 0
    fs = predict(LoaderConfig(batch_size=8, num_workers=4, sharing_strategy="file_system"))
    assert fs.fds < b.fds  # file_system passes names, not fds


# The predicted shm against the sampled peak of real runs (built-in and a user's pipeline):
# benchmarks/shm_prediction.py prints both and their ratio; a unit test must not assert a sampled threshold.


# --- budget from measurement: a user's pipeline (tests/userpipe, float32, two views per video) ---------

USERPIPE = __import__("pathlib").Path(__file__).resolve().parents[2] / "userpipe"


def _userpipe(root, frames: int, size: int) -> Any:
    spec: dict[str, Any] = dict(dataset_spec(root, "train"))
    spec.update(
        factory="userpipe.data:build", factory_kwargs={"frames": frames, "size": size}, factory_path=[str(USERPIPE)]
    )
    return spec


def test_measured_bytes_replace_the_uint8_arithmetic() -> None:
    from ssv2_fixtures.run.shm import shm_in_flight

    cfg = LoaderConfig(batch_size=8, num_workers=2, prefetch_factor=2)
    per_item = 2 * 3 * 16 * 224 * 224 * 4 + 16
    b = predict(cfg, bytes_per_item=per_item)
    assert b.measured_bytes and b.batch_bytes == 8 * per_item
    assert b.shm_bytes == shm_in_flight(cfg, 8 * per_item)  # run/shm.py's one formula
    uint8 = predict(cfg)
    assert not uint8.measured_bytes and uint8.shm_bytes == shm_in_flight(cfg, batch_bytes(8, 16, 224))
    assert b.shm_bytes > 7 * uint8.shm_bytes and b.rss_bytes > uint8.rss_bytes


def test_the_probe_measures_a_float32_nested_pipelines_bytes_exactly(synth64_root, tmp_path):
    # The prediction's input is measured from the batches' tensors, so it is exact, not sampled; how the
    # prediction compares with the sampled /dev/shm peak of a real run is benchmarks/shm_prediction.py's.
    from ssv2_fixtures.stress.probe import pipeline_probe

    frames, size = 8, 112
    ds = _userpipe(synth64_root, frames, size)
    probe = run_config(RunRequest(ds, LoaderConfig(batch_size=2, num_workers=0), 3, run_dir=tmp_path, name="probe"))
    assert probe.passed, probe.describe()
    p = pipeline_probe(probe.record)
    assert p is not None
    per_item = 2 * (3 * frames * size * size * 4 + 8)  # two float32 views (3, T, S, S) and a label per view
    assert p["bytes_per_item"] == per_item
    config = LoaderConfig(batch_size=4, num_workers=2, prefetch_factor=2)
    predicted = predict(config, bytes_per_item=p["bytes_per_item"]).shm_bytes
    assert predicted == (2 * 2 + 1) * 4 * per_item  # W × prefetch + 1 batches of 4 items in flight
    # the arithmetic for the built-in uint8 clips would have been off by the dtype and the views (8×)
    assert predict(config, frames=frames, size=size).shm_bytes < 0.2 * predicted


SMALL_SHM = Sandbox(shm_bytes=16 * 2**20)


@pytest.mark.skipif(unavailable(SMALL_SHM) is not None, reason=str(unavailable(SMALL_SHM)))
def test_float32_pipeline_is_shm_exhausted_where_ssv2clips_passes(synth64_root, tmp_path):
    frames, size = 8, 112
    config = LoaderConfig(batch_size=4, num_workers=2, prefetch_factor=2)
    # uint8 clips: 5 slots × 1.2 MB fit 16 MB; two float32 views per video: 5 × 9.6 MB do not
    assert predict(config, frames=frames, size=size).shm_bytes < (SMALL_SHM.shm_bytes or 0)
    builtin = run_config(
        RunRequest(
            dataset_spec(synth64_root, "train", num_frames=frames, size=size),
            config,
            6,
            sandbox=SMALL_SHM,
            step_s=0.3,
            run_dir=tmp_path,
            name="builtin",
        )
    )
    assert builtin.passed, builtin.describe()
    # The user's collate stacks in ordinary memory, so its batch is moved to /dev/shm when the worker's
    # queue feeder pickles it: there the allocation fails, the batch is dropped, and the loader would
    # wait forever — the watchdog ends it, and the feeder's error names the cause. Which batch is dropped is a
    # race: the first (the run waits out the start-up limit) or the next (the stall limit). Either way the feeder
    # fails while the workers produce their first batches, so both limits are a few times what the built-in run
    # above takes for all its 6, start-up included (~5 s here), not the defaults' ~90 s and ~30 s.
    from ssv2_fixtures.run.watchdog import Watchdog

    theirs = run_config(
        RunRequest(
            _userpipe(synth64_root, frames, size),
            config,
            6,
            sandbox=SMALL_SHM,
            step_s=0.3,
            run_dir=tmp_path,
            name="userpipe",
            watchdog=Watchdog(startup_s=20.0, stall_s=10.0),
        )
    )
    assert theirs.kind == "shm_exhausted", theirs.describe()
    assert theirs.outcome is not None and "shm-size" in theirs.outcome["remedy"]
