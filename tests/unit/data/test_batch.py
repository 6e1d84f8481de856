"""Batch facts from nested structures: bytes are every tensor's, clips the largest tensor's lead."""

from __future__ import annotations

import numpy as np
import torch

from ssv2_fixtures.data.batch import describe


def test_ssv2clips_shaped_batch():
    clips = torch.zeros(8, 16, 224, 224, 3, dtype=torch.uint8)
    labels = torch.zeros(8, dtype=torch.int64)
    f = describe((clips, labels), videos=8)
    assert f["bytes"] == clips.numel() + 8 * 8
    assert f["clips"] == 8 and f["shape"] == [8, 16, 224, 224, 3] and f["dtype"] == "torch.uint8"
    assert f["tensors"] == 2


def test_repeated_augmentation_flattened_and_nested_dicts():
    # two float32 samples per video, flattened by the collate: 16 clips from 8 videos
    clips = torch.zeros(16, 3, 16, 32, 32, dtype=torch.float32)
    batch = {
        "video": clips,
        "meta": {"label": torch.zeros(16), "ids": ["a"] * 16, "n": 3},
        "aux": [np.zeros((16, 4), dtype=np.float16)],
    }
    f = describe(batch, videos=8)
    assert f["videos"] == 8 and f["clips"] == 16
    assert f["bytes"] == clips.numel() * 4 + 16 * 4 + 16 * 4 * 2
    assert f["dtype"] == "torch.float32"


def test_no_tensors():
    f = describe([1, "x"], videos=2)
    assert f["bytes"] == 0 and f["shape"] == [] and f["clips"] == 2
