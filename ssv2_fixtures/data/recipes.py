"""Published SSv2 training pipelines as dataset factories: their *cost and memory shape*, not their code.

Each factory takes ``(root, split, train, ...)`` like any ``--dataset-factory`` and reproduces what a
widely used recipe does per item — how much it decodes, which per-frame work it does in the workers,
the dtype and shape it sends through shared memory, its collate — with pillow, numpy, torch and decord
only (no torchvision or timm). Use them to see what a recipe costs on a machine::

    pytest -m quick --dataset-factory ssv2_fixtures.data.recipes:videomae_finetune

- :func:`videomae_finetune` — VideoMAE's SSv2 fine-tuning loader (``SSVideoClsDataset``, train mode):
  decord at native size with ``num_threads=1``, 16 TSN frames, RandAugment ``rand-m7-n4-mstd0.5-inc1``
  applied per frame with PIL (the same ops and magnitudes on every frame of a sample), ``ToTensor`` +
  float32 normalisation, random-resized crop to 224 (scale 0.08–1, ratio 3/4–4/3, bilinear), random
  erasing (p=0.25), and ``num_sample=2`` repeated augmentation with its flattening collate
  (``multiple_samples_collate``): a batch of B videos carries ``2B`` float32 clips ``(3, 16, 224, 224)``.
  Eval mode: centre TSN frames, short side to 224, centre crop, one float32 clip, default collate.
- :func:`tsm_uint8` — mmaction2's TSM recipe for sthv2: 8 segments (one frame each), decord at native
  size, resize short side to 256, multi-scale crop (scales 1/.875/.75/.66, 13 fixed positions) resized
  to 224, horizontal flip with the left/right label swap (``flip_label_map``; derived here from the
  templates that say "left"/"right"), uint8 ``(8, 3, 224, 224)`` out; normalisation is on the consumer
  side (mmaction2's data preprocessor). Eval mode: centre frames, short side 256, centre crop 224.
- :func:`ssv2clips` — the suite's own :class:`~ssv2_fixtures.SSv2Clips` (the default without a factory).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch  # before decord, always (decord#251/#263)
from PIL import Image, ImageEnhance, ImageOps
from torch.utils.data import Dataset, default_collate

from .annotations import AnnotationError, SSv2Index, class_names, discover, load_index
from .clips import ClipDecodeError, SSv2Clips
from .errors import describe_exc
from .factory import Pipeline
from .sampling import segment_indices

__all__ = [
    "videomae_finetune",
    "tsm_uint8",
    "ssv2clips",
    "multiple_samples_collate",
    "flip_label_map",
    "RandAugment",
    "RECIPES",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# --------------------------------------------------------------------------- shared pieces


def _labels_file(root: Any) -> Path | None:
    """The root's labels.json, or None where it has none (a list-file root may hold no SSv2 annotation
    file at all, which :func:`discover` refuses)."""
    try:
        return discover(root).labels_file
    except AnnotationError:
        return None


def _index(root: Any, split: str, list_file: str | None, missing: str, limit: int | None) -> SSv2Index:
    index = root if isinstance(root, SSv2Index) else load_index(root, split, list_file=list_file, missing=missing)
    if limit is not None:
        index = index.subset(int(limit))
    return index


def _item_rng() -> np.random.Generator:
    # From torch's RNG, as SSv2Clips does: DataLoader workers get distinct torch seeds from the loader's
    # generator, so augmentations differ between workers and are reproducible per seed.
    return np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))


def _decode_native(index: SSv2Index, i: int, pick: Callable[[int], np.ndarray]) -> np.ndarray:
    """Frames ``pick(len)`` of video ``i`` at native size, uint8 ``(T, H, W, 3)``; both recipes decode
    this way (decord, one thread, no resize in the decoder)."""
    import decord

    path = index.path(i)
    try:
        vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
        try:
            n = len(vr)
            if n < 1:
                raise ValueError("no frames decoded")
            return vr.get_batch(pick(n).tolist()).asnumpy()
        finally:
            del vr  # decord 0.6.0 has no close(): dropping the reader frees its demuxer and fd
    except Exception as exc:
        raise ClipDecodeError(path, index.video_id(i), describe_exc(exc)) from exc


# --------------------------------------------------------------------------- RandAugment (timm's, for PIL)
# rand-m7-n4-mstd0.5-inc1 as VideoMAE configures it: 4 ops drawn without replacement from the
# "increasing" set, each applied with p=0.5 at magnitude ~N(7, 0.5) out of 10, the same draw for every
# frame of the clip. Fill colour and bicubic resampling as in timm.

_MAX_LEVEL = 10.0
_FILL = (124, 116, 104)


def _affine(img: Image.Image, m: tuple[float, ...]) -> Image.Image:
    return img.transform(img.size, Image.Transform.AFFINE, m, resample=Image.Resampling.BICUBIC, fillcolor=_FILL)


def _solarize_add(img: Image.Image, add: int) -> Image.Image:
    lut = [min(255, i + add) if i < 128 else i for i in range(256)]
    return img.point(lut * len(img.getbands()))


def _op_table() -> dict[str, Callable[[Image.Image, float, float], Image.Image]]:
    # Each op is fn(frame, level in [0, 1], sign ±1); level and sign are drawn once per clip.
    return {
        "AutoContrast": lambda im, lv, s: ImageOps.autocontrast(im),
        "Equalize": lambda im, lv, s: ImageOps.equalize(im),
        "Invert": lambda im, lv, s: ImageOps.invert(im),
        "Rotate": lambda im, lv, s: im.rotate(s * lv * 30.0, resample=Image.Resampling.BICUBIC, fillcolor=_FILL),
        "PosterizeIncreasing": lambda im, lv, s: ImageOps.posterize(im, max(1, 4 - int(lv * 4))),
        "SolarizeIncreasing": lambda im, lv, s: ImageOps.solarize(im, 256 - int(lv * 256)),
        "SolarizeAdd": lambda im, lv, s: _solarize_add(im, int(lv * 110)),
        "ColorIncreasing": lambda im, lv, s: ImageEnhance.Color(im).enhance(1.0 + s * lv * 0.9),
        "ContrastIncreasing": lambda im, lv, s: ImageEnhance.Contrast(im).enhance(1.0 + s * lv * 0.9),
        "BrightnessIncreasing": lambda im, lv, s: ImageEnhance.Brightness(im).enhance(1.0 + s * lv * 0.9),
        "SharpnessIncreasing": lambda im, lv, s: ImageEnhance.Sharpness(im).enhance(1.0 + s * lv * 0.9),
        "ShearX": lambda im, lv, s: _affine(im, (1, s * lv * 0.3, 0, 0, 1, 0)),
        "ShearY": lambda im, lv, s: _affine(im, (1, 0, 0, s * lv * 0.3, 1, 0)),
        "TranslateXRel": lambda im, lv, s: _affine(im, (1, 0, s * lv * 0.45 * im.size[0], 0, 1, 0)),
        "TranslateYRel": lambda im, lv, s: _affine(im, (1, 0, 0, 0, 1, s * lv * 0.45 * im.size[1])),
    }


_OPS = _op_table()


class RandAugment:
    """timm's RandAugment over a clip (a list of PIL frames): ``n`` ops, magnitude ``m`` ± ``mstd``."""

    def __init__(self, n: int = 4, m: float = 7.0, mstd: float = 0.5, prob: float = 0.5) -> None:
        self.n, self.m, self.mstd, self.prob = int(n), float(m), float(mstd), float(prob)
        self.names = tuple(_OPS)

    def __call__(self, frames: list[Image.Image], rng: random.Random) -> list[Image.Image]:
        for name in rng.sample(self.names, self.n):
            if rng.random() > self.prob:
                continue
            mag = min(_MAX_LEVEL, max(0.0, rng.gauss(self.m, self.mstd)))
            level, sign = mag / _MAX_LEVEL, (-1.0 if rng.random() < 0.5 else 1.0)
            fn = _OPS[name]
            frames = [fn(im, level, sign) for im in frames]
        return frames


def _random_resized_crop(
    clip: torch.Tensor,
    size: int,
    rng: random.Random,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> torch.Tensor:
    """PySlowFast/VideoMAE ``random_resized_crop`` on ``(C, T, H, W)``: one box for all frames, bilinear."""
    _, _, h, w = clip.shape
    area = h * w
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        cw, ch = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            y, x = rng.randint(0, h - ch), rng.randint(0, w - cw)
            break
    else:  # the fallback of the original: a centre crop at the ratio bound
        in_ratio = w / h
        if in_ratio < ratio[0]:
            cw, ch = w, int(round(w / ratio[0]))
        elif in_ratio > ratio[1]:
            ch, cw = h, int(round(h * ratio[1]))
        else:
            cw, ch = w, h
        y, x = (h - ch) // 2, (w - cw) // 2
    crop = clip[:, :, y : y + ch, x : x + cw]
    return torch.nn.functional.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False)


def _random_erase(clip: torch.Tensor, rng: random.Random, prob: float = 0.25) -> torch.Tensor:
    """timm ``RandomErasing(0.25, mode='pixel', max_count=1)`` applied to ``(C, T, H, W)`` per frame."""
    if rng.random() > prob:
        return clip
    c, t, h, w = clip.shape
    for _ in range(10):
        target = h * w * rng.uniform(0.02, 1 / 3)
        aspect = math.exp(rng.uniform(math.log(0.3), math.log(1 / 0.3)))
        eh, ew = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if ew < w and eh < h:
            y, x = rng.randint(0, h - eh), rng.randint(0, w - ew)
            clip[:, :, y : y + eh, x : x + ew] = torch.randn(c, t, eh, ew)
            break
    return clip


def _to_normalised(frames: Sequence[Image.Image]) -> torch.Tensor:
    """Per-frame ``ToTensor`` (float32 /255, CHW), stacked and normalised, as ``(C, T, H, W)``."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1, 1)
    clip = torch.stack(
        [torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1).float().div(255.0) for im in frames],
        dim=1,
    )
    return (clip - mean) / std


def multiple_samples_collate(batch: list[Any]) -> tuple[Any, ...]:
    """VideoMAE's ``multiple_samples_collate(fold=False)``: each item holds ``num_sample`` clips; flatten
    them so a batch of B videos is ``B × num_sample`` clips, then collate each part."""
    inputs, labels, video_idx, extra = zip(*batch)
    flat = [clip for sub in inputs for clip in sub]
    flat_labels = [lab for sub in labels for lab in sub]
    flat_idx = [i for sub in video_idx for i in sub]
    return default_collate(flat), default_collate(flat_labels), default_collate(flat_idx), default_collate(list(extra))


# --------------------------------------------------------------------------- videomae_finetune


class VideoMAEFinetune(Dataset):
    """See :func:`videomae_finetune`."""

    def __init__(
        self,
        index: SSv2Index,
        *,
        train: bool,
        num_frames: int,
        num_sample: int,
        size: int,
        short_side: int,
        rand_n: int,
        rand_m: float,
        reprob: float,
    ) -> None:
        self.index, self.train = index, bool(train)
        self.num_frames, self.num_sample, self.size, self.short_side = num_frames, num_sample, size, short_side
        self.augment = RandAugment(n=rand_n, m=rand_m)
        self.reprob = reprob

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> Any:
        rng = _item_rng()
        frames = _decode_native(self.index, i, lambda n: segment_indices(n, self.num_frames, train=self.train, rng=rng))
        label = self.index.label(i)
        if not self.train:
            return self._eval(frames), label, self.index.video_id(i)
        prng = random.Random(int(rng.integers(0, 2**62)))
        clips, labels, idx = [], [], []
        for _ in range(self.num_sample):
            pil = [Image.fromarray(f) for f in frames]  # ToPILImage, once per sample as in _aug_frame
            clip = _to_normalised(self.augment(pil, prng))
            clip = _random_resized_crop(clip, self.size, prng)
            clips.append(_random_erase(clip, prng, self.reprob).contiguous())
            labels.append(label)
            idx.append(i)
        return clips, labels, idx, {}

    def _eval(self, frames: np.ndarray) -> torch.Tensor:
        h, w = frames.shape[1:3]
        s = self.short_side / min(h, w)
        nw, nh = max(self.size, round(w * s)), max(self.size, round(h * s))
        x, y = (nw - self.size) // 2, (nh - self.size) // 2
        pil = [
            Image.fromarray(f).resize((nw, nh), Image.Resampling.BILINEAR).crop((x, y, x + self.size, y + self.size))
            for f in frames
        ]
        return _to_normalised(pil).contiguous()


def videomae_finetune(
    root: Any,
    split: str = "train",
    train: bool = True,
    num_frames: int = 16,
    num_sample: int = 2,
    size: int = 224,
    *,
    short_side: int = 224,
    rand_n: int = 4,
    rand_m: float = 7.0,
    reprob: float = 0.25,
    list_file: str | None = None,
    missing: str = "error",
    limit: int | None = None,
) -> Pipeline:
    """VideoMAE's SSv2 fine-tuning pipeline (cost and memory shape; see the module docstring).

    Train: each item is ``([num_sample × float32 (3, T, size, size)], [label]*num_sample,
    [index]*num_sample, {})`` and the collate returns ``(float32 (B·num_sample, 3, T, size, size),
    int64 (B·num_sample,), int64 (B·num_sample,), {})``. Eval: ``(float32 (3, T, size, size), label,
    video id)`` with torch's default collate.
    """
    if int(num_sample) < 1:
        raise ValueError(f"videomae_finetune: num_sample must be >= 1, got {num_sample!r}")
    ds = VideoMAEFinetune(
        _index(root, split, list_file, missing, limit),
        train=train,
        num_frames=int(num_frames),
        num_sample=int(num_sample),
        size=int(size),
        short_side=int(short_side),
        rand_n=int(rand_n),
        rand_m=float(rand_m),
        reprob=float(reprob),
    )
    return Pipeline(ds, collate_fn=multiple_samples_collate if train else None)


# --------------------------------------------------------------------------- tsm_uint8


def flip_label_map(names: Sequence[str]) -> dict[int, int]:
    """Class index → the class a horizontal flip turns it into: templates that differ only by
    "left" ↔ "right" (SSv2: pushing/pulling from left to right, turning the camera left/right)."""
    where = {n: k for k, n in enumerate(names)}
    out: dict[int, int] = {}
    for k, n in enumerate(names):
        if "left" in n or "right" in n:
            swapped = n.replace("left", "\0").replace("right", "left").replace("\0", "right")
            j = where.get(swapped)
            if j is not None and j != k:
                out[k] = j
    return out


_FIXED_CROPS = (
    (0, 0),
    (4, 0),
    (0, 4),
    (4, 4),
    (2, 2),
    (0, 2),
    (4, 2),
    (2, 4),
    (2, 0),
    (1, 1),
    (3, 1),
    (1, 3),
    (3, 3),
)  # mmaction2 MultiScaleCrop, num_fixed_crops=13, in quarters


class TSMUint8(Dataset):
    """See :func:`tsm_uint8`."""

    def __init__(
        self,
        index: SSv2Index,
        *,
        train: bool,
        num_segments: int,
        short_side: int,
        size: int,
        scales: Sequence[float],
        flip: bool,
        flip_map: dict[int, int],
    ) -> None:
        self.index, self.train = index, bool(train)
        self.num_segments, self.short_side, self.size = num_segments, short_side, size
        self.scales, self.flip, self.flip_map = tuple(scales), bool(flip), dict(flip_map)

    def __len__(self) -> int:
        return len(self.index)

    def _crop_box(self, w: int, h: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
        if not self.train:
            x, y = (w - self.size) // 2, (h - self.size) // 2
            return x, y, x + self.size, y + self.size
        base = min(w, h)
        sizes = [int(base * s) for s in self.scales]
        pairs = [(cw, ch) for i, cw in enumerate(sizes) for j, ch in enumerate(sizes) if abs(i - j) <= 1]
        cw, ch = pairs[int(rng.integers(len(pairs)))]
        qx, qy = _FIXED_CROPS[int(rng.integers(len(_FIXED_CROPS)))]
        x, y = qx * ((w - cw) // 4), qy * ((h - ch) // 4)
        return x, y, x + cw, y + ch

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        rng = _item_rng()
        frames = _decode_native(
            self.index, i, lambda n: segment_indices(n, self.num_segments, train=self.train, rng=rng)
        )
        h, w = frames.shape[1:3]
        s = self.short_side / min(h, w)
        rw, rh = max(self.size, round(w * s)), max(self.size, round(h * s))
        box = self._crop_box(rw, rh, rng)
        flip = self.train and self.flip and rng.random() < 0.5
        out = np.empty((len(frames), self.size, self.size, 3), dtype=np.uint8)
        for k, f in enumerate(frames):  # per frame, as mmcv's imresize/imcrop do
            im = Image.fromarray(f).resize((rw, rh), Image.Resampling.BILINEAR).crop(box)
            if im.size != (self.size, self.size):
                im = im.resize((self.size, self.size), Image.Resampling.BILINEAR)
            out[k] = np.asarray(im)
        if flip:
            out = out[:, :, ::-1]
        label = self.index.label(i)
        if flip and label >= 0:
            label = self.flip_map.get(label, label)
        # FormatShape NCHW: (num_clips × clip_len, 3, H, W), still uint8.
        return torch.from_numpy(np.ascontiguousarray(out)).permute(0, 3, 1, 2).contiguous(), label


def tsm_uint8(
    root: Any,
    split: str = "train",
    train: bool = True,
    num_segments: int = 8,
    short_side: int = 256,
    size: int = 224,
    *,
    scales: Sequence[float] = (1.0, 0.875, 0.75, 0.66),
    flip: bool = True,
    list_file: str | None = None,
    missing: str = "error",
    limit: int | None = None,
) -> TSMUint8:
    """mmaction2's TSM sthv2 pipeline (cost and memory shape; see the module docstring).

    Each item is ``(uint8 (num_segments, 3, size, size), label)``. The flip swaps labels only where
    the root has labels.json (a list-file root flips without swapping).
    """
    index = _index(root, split, list_file, missing, limit)
    # no labels.json (a list-file root): flip without the swap; a broken one is an error naming the file
    fmap = flip_label_map(class_names(index.root)) if flip and _labels_file(index.root) else {}
    return TSMUint8(
        index,
        train=train,
        num_segments=int(num_segments),
        short_side=int(short_side),
        size=int(size),
        scales=scales,
        flip=flip,
        flip_map=fmap,
    )


# --------------------------------------------------------------------------- ssv2clips


def ssv2clips(
    root: Any, split: str = "train", train: bool = False, num_frames: int = 16, size: int = 224, **kwargs: Any
) -> SSv2Clips:
    """The suite's own :class:`~ssv2_fixtures.SSv2Clips`: uint8 ``(T, size, size, 3)`` resized at decode."""
    return SSv2Clips(root, split, num_frames=num_frames, size=size, train=train, **kwargs)


RECIPES: dict[str, Callable[..., Any]] = {
    "videomae_finetune": videomae_finetune,
    "tsm_uint8": tsm_uint8,
    "ssv2clips": ssv2clips,
}
"""name → factory; ``--dataset-factory ssv2_fixtures.data.recipes:NAME``."""
