"""Budget prediction against measurement: shared memory in flight, for real, in a private /dev/shm.

The child holds each batch for a simulated training step longer than a batch takes to load, so the
prefetch queues fill to ``num_workers × prefetch_factor`` — the state the prediction describes.
"""
from __future__ import annotations

import pytest

from ssv2_fixtures import LoaderConfig, Sandbox, dataset_spec, run_config
from ssv2_fixtures.stress.budget import batch_bytes, predict
from ssv2_fixtures.run.sandbox import unavailable

@pytest.fixture(scope="module")
def synth64_root(tmp_path_factory):
    # 48 train clips: at batch size 4 an epoch is 12 batches, longer than the queues being measured.
    import os

    from ssv2_fixtures.data.synth import SynthSpec, ensure_synthetic

    cache = os.environ.get("SSV2_STRESS_CACHE") or tmp_path_factory.mktemp("cache")
    return ensure_synthetic(SynthSpec(videos=64), cache_dir=cache)


PRIVATE_SHM = Sandbox(shm_bytes=2**30)  # isolates the measurement from anything else using /dev/shm


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


@pytest.mark.skipif(unavailable(PRIVATE_SHM) is not None, reason=str(unavailable(PRIVATE_SHM)))
@pytest.mark.parametrize("config", [
    LoaderConfig(batch_size=4, num_workers=1, prefetch_factor=2),
    LoaderConfig(batch_size=4, num_workers=2, prefetch_factor=2),
    LoaderConfig(batch_size=2, num_workers=2, prefetch_factor=4, sharing_strategy="file_system"),
], ids=lambda c: c.label)
def test_predicted_shm_within_10_percent_of_measured(config, synth64_root, tmp_path):
    frames, size = 8, 112
    r = run_config(dataset_spec(synth64_root, "train", num_frames=frames, size=size), config, 10,
                   sandbox=PRIVATE_SHM, step_s=0.4, run_dir=tmp_path)
    assert r.passed, r.describe()
    predicted = predict(config, frames=frames, size=size).shm_bytes
    measured = r.metrics["shm_peak_bytes"]
    assert abs(measured - predicted) <= 0.10 * predicted, (predicted, measured)
