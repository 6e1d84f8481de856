"""data/recipes: each published recipe's factory gives the documented shapes, dtypes and batch bytes on
the synthetic set (2 items each: decoding at native size is the expensive part)."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import default_collate

from ssv2_fixtures.data.annotations import load_index
from ssv2_fixtures.data.batch import describe
from ssv2_fixtures.data.factory import Pipeline, check_collatable, load_pipeline
from ssv2_fixtures.data.recipes import (
    _OPS,
    RECIPES,
    RandAugment,
    TSMUint8,
    _random_resized_crop,
    flip_label_map,
    multiple_samples_collate,
    ssv2clips,
    tsm_uint8,
    videomae_finetune,
)


def batch_of(pipe: Pipeline, n: int = 2) -> object:
    items = [pipe.dataset[i] for i in range(n)]
    return (pipe.collate_fn or default_collate)(items)


def test_videomae_train_two_samples_flattened(synth_root: Path) -> None:
    pipe = videomae_finetune(synth_root, "train", True, limit=2)
    assert pipe.collate_fn is multiple_samples_collate
    clips, labels, idx, extra = pipe.dataset[0]
    assert len(clips) == 2 and all(c.shape == (3, 16, 224, 224) and c.dtype == torch.float32 for c in clips)
    assert labels == [labels[0]] * 2 and idx == [0, 0] and extra == {}
    assert not torch.equal(clips[0], clips[1])  # two augmentations of one decode, not one copied
    batch = multiple_samples_collate([pipe.dataset[0], pipe.dataset[1]])
    x, y, ids, _ = batch
    assert x.shape == (4, 3, 16, 224, 224) and y.dtype == torch.int64 and ids.tolist() == [0, 0, 1, 1]
    facts = describe(batch, videos=2)
    assert facts["videos"] == 2 and facts["clips"] == 4
    assert facts["shape"] == [4, 3, 16, 224, 224] and facts["dtype"] == "torch.float32"
    assert facts["bytes"] == 4 * 3 * 16 * 224 * 224 * 4 + 2 * 4 * 8  # clips + labels + indices (int64)


def test_videomae_eval_one_normalised_clip(synth_root: Path) -> None:
    pipe = videomae_finetune(synth_root, "validation", False, num_frames=4)
    assert pipe.collate_fn is None
    clip, label, vid = pipe.dataset[0]
    assert clip.shape == (3, 4, 224, 224) and clip.dtype == torch.float32
    assert isinstance(label, int) and isinstance(vid, str)
    assert float(clip.min()) < 0.0  # normalised, not [0, 1]
    again, _, _ = pipe.dataset[0]
    assert torch.equal(clip, again)  # eval is deterministic
    facts = describe(batch_of(pipe), videos=2)
    assert facts["shape"] == [2, 3, 4, 224, 224] and facts["bytes"] == 2 * 3 * 4 * 224 * 224 * 4 + 2 * 8


def test_videomae_train_is_reproducible_per_seed(synth_root: Path) -> None:
    pipe = videomae_finetune(synth_root, "train", True, num_frames=2, num_sample=1, limit=1)
    torch.manual_seed(5)
    a = pipe.dataset[0][0][0]
    torch.manual_seed(5)
    b = pipe.dataset[0][0][0]
    assert torch.equal(a, b)


def test_tsm_uint8_shapes(synth_root: Path) -> None:
    ds = tsm_uint8(synth_root, "train", True, limit=2)
    clip, label = ds[0]
    assert clip.shape == (8, 3, 224, 224) and clip.dtype == torch.uint8 and isinstance(label, int)
    facts = describe(batch_of(Pipeline(ds)), videos=2)
    assert facts["shape"] == [2, 8, 3, 224, 224] and facts["dtype"] == "torch.uint8"
    assert facts["bytes"] == 2 * 8 * 3 * 224 * 224 + 2 * 8


def test_tsm_flip_swaps_left_right_labels(synth_root: Path) -> None:
    index = load_index(synth_root, "train").subset(1)
    orig = index.label(0)
    ds = TSMUint8(
        index, train=True, num_segments=2, short_side=64, size=48, scales=(1.0, 0.875), flip=True, flip_map={orig: 999}
    )
    seen = set()
    for seed in range(24):  # p(flip) = 0.5 per item: both outcomes appear (miss chance 2 × 2^-24)
        torch.manual_seed(seed)
        seen.add(ds[0][1])
    assert seen == {orig, 999}
    no_flip = TSMUint8(
        index, train=True, num_segments=2, short_side=64, size=48, scales=(1.0,), flip=False, flip_map={orig: 999}
    )
    assert {no_flip[0][1] for _ in range(4)} == {orig}


def test_flip_label_map_pairs_only_left_right_templates() -> None:
    names = [
        "Pushing something from left to right",
        "Pushing something from right to left",
        "Turning the camera left while filming something",
        "Turning the camera right while filming something",
        "Moving something up",
        "Tilting something with something on it slightly so it doesn't fall down",
        "Pulling something from left to right",
    ]  # its mirror is absent: no entry
    assert flip_label_map(names) == {0: 1, 1: 0, 2: 3, 3: 2}


def test_ssv2clips_is_todays_dataset(synth_root: Path) -> None:
    ds = ssv2clips(synth_root, "train", False, num_frames=4, size=112)
    clip, _ = ds[0]
    assert clip.shape == (4, 112, 112, 3) and clip.dtype == torch.uint8
    assert describe(batch_of(Pipeline(ds)), videos=2)["bytes"] == 2 * 4 * 112 * 112 * 3 + 2 * 8


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipes_load_as_factories(synth_root: Path, name: str) -> None:
    pipe = load_pipeline(
        {
            "factory": f"ssv2_fixtures.data.recipes:{name}",
            "root": str(synth_root),
            "split": "validation",
            "factory_kwargs": {"num_frames": 2} if name != "tsm_uint8" else {"num_segments": 2},
        },
        train=False,
    )
    assert len(pipe.dataset) == 2  # the synthetic validation split
    check_collatable(pipe.dataset, pipe.collate_fn)


@pytest.mark.parametrize("name", sorted(_OPS))
def test_randaugment_ops_keep_the_frame(name: str) -> None:
    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    out = _OPS[name](im, 0.7, -1.0)
    assert out.size == im.size and out.mode == "RGB"


def test_randaugment_same_ops_on_every_frame() -> None:
    frame = Image.fromarray(np.random.default_rng(1).integers(0, 256, (24, 32, 3), dtype=np.uint8))
    aug = RandAugment(n=4, m=7, prob=1.0)  # every drawn op applies
    out = aug([frame, frame.copy()], random.Random(3))
    assert np.array_equal(np.asarray(out[0]), np.asarray(out[1]))  # one draw for the whole clip
    assert not np.array_equal(np.asarray(out[0]), np.asarray(frame))


@pytest.mark.parametrize("h, w", [(240, 320), (240, 427), (100, 60)])
def test_random_resized_crop_size(h: int, w: int) -> None:
    clip = torch.rand(3, 2, h, w)
    rng = random.Random(0)
    for _ in range(5):
        assert _random_resized_crop(clip, 56, rng).shape == (3, 2, 56, 56)


def _copy_root(src: Path, dst: Path, *, labels: str | None) -> Path:
    """``src``'s annotation files and a link to its videos; labels.json replaced (or removed: None)."""
    dst.mkdir()
    for f in src.glob("something-something-v2-*.json"):
        (dst / f.name).write_bytes(f.read_bytes())
    (dst / "20bn-something-something-v2").symlink_to(src / "20bn-something-something-v2")
    (dst / "something-something-v2-labels.json").unlink()
    if labels is not None:
        (dst / "something-something-v2-labels.json").write_text(labels)
    return dst


def test_a_broken_labels_file_is_named_not_a_silent_flip_without_swap(synth_root: Path, tmp_path: Path) -> None:
    from ssv2_fixtures.data.annotations import AnnotationError

    good = tsm_uint8(synth_root, "validation", False, limit=2)
    assert good.flip_map  # the synthetic set has left/right templates: the swap is on
    root = _copy_root(synth_root, tmp_path / "root", labels="{ not json")
    # the index as loaded before labels.json broke (loading it now refuses the file already): the recipe
    # reads the class names from the root, and must name the broken file rather than drop the swap
    index = dataclasses.replace(load_index(synth_root, "validation"), root=root)
    with pytest.raises(AnnotationError, match="something-something-v2-labels.json"):
        tsm_uint8(index, "validation", False, limit=2)


def test_a_list_file_root_without_annotations_flips_without_the_swap(synth_root: Path, tmp_path: Path) -> None:
    index = load_index(synth_root, "validation")
    lst = tmp_path / "list.txt"
    lst.write_text("".join(f"{index.path(i)} {index.label(i)}\n" for i in range(2)))
    bare = tmp_path / "bare"
    bare.mkdir()
    ds = tsm_uint8(bare, "validation", False, list_file=str(lst))
    assert ds.flip_map == {} and len(ds) == 2
