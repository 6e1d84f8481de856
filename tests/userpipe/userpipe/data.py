"""The user's SSv2 pipeline: written the way a training project writes it, using only torch/decord.

Items are nested: ``{"views": [clip, clip], "meta": (label, video_id, worker_init_ran)}`` where each
clip is float32 ``(3, frames, size, size)`` (two augmented views, as in contrastive or repeated-
augmentation recipes); :func:`collate_views` flattens the views into one ``(2B, 3, T, S, S)`` tensor.
"""

from __future__ import annotations

import json
import os

import numpy as np
import torch  # before decord
from torch.utils.data import Dataset

from ssv2_fixtures import Pipeline

_INIT_RAN = False  # set in each DataLoader worker by worker_init


def read_split(root: str, split: str) -> list[tuple[str, int]]:
    """(video path, label) pairs from either SSv2 annotation naming."""
    for labels, entries in (
        ("something-something-v2-labels.json", f"something-something-v2-{split}.json"),
        ("labels/labels.json", f"labels/{split}.json"),
    ):
        if os.path.isfile(os.path.join(root, entries)):
            with open(os.path.join(root, labels)) as f:
                classes = {k: int(v) for k, v in json.load(f).items()}
            with open(os.path.join(root, entries)) as f:
                rows = json.load(f)
            return [
                (
                    os.path.join(root, "20bn-something-something-v2", f"{r['id']}.webm"),
                    classes.get(r.get("template", "").replace("[", "").replace("]", ""), -1),
                )
                for r in rows
            ]
    raise FileNotFoundError(f"no {split} annotations under {root}")


class RandomCropFloat:
    """uint8 (T, H, W, 3) → float32 (3, T, size, size) in [0, 1]: random crop (train) or centre crop."""

    def __init__(self, size: int, train: bool) -> None:
        self.size, self.train = size, train

    def __call__(self, frames: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        _, h, w, _ = frames.shape
        if self.train:
            y = int(torch.randint(0, h - self.size + 1, (), generator=gen))
            x = int(torch.randint(0, w - self.size + 1, (), generator=gen))
        else:
            y, x = (h - self.size) // 2, (w - self.size) // 2
        crop = frames[:, y : y + self.size, x : x + self.size]
        return crop.permute(3, 0, 1, 2).float().div_(255.0).contiguous()


class TwoViewClips(Dataset):
    def __init__(
        self, root: str, split: str, train: bool, size: int, frames: int, views: int, limit: int | None
    ) -> None:
        self.rows = read_split(root, split)[:limit]
        self.size, self.frames, self.views = size, frames, views
        self.transform = RandomCropFloat(size, train)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        import decord

        path, label = self.rows[i]
        vr = decord.VideoReader(path, num_threads=1, width=self.size * 2, height=self.size * 3 // 2)
        idx = np.linspace(0, len(vr) - 1, self.frames).round().astype(np.int64)
        frames = torch.from_numpy(vr.get_batch(idx.tolist()).asnumpy())
        del vr
        gen = torch.Generator().manual_seed(int(torch.randint(0, 2**31, ())))
        views = [self.transform(frames, gen) for _ in range(self.views)]
        return {"views": views, "meta": (label, os.path.basename(path)[:-5], _INIT_RAN)}


def collate_views(batch):
    """Flatten the views: B items of V clips → one (B·V, 3, T, S, S) tensor; labels repeated per view."""
    clips = torch.stack([v for item in batch for v in item["views"]])
    labels = torch.tensor([item["meta"][0] for item in batch for _ in item["views"]])
    return {
        "clips": clips,
        "labels": labels,
        "ids": [item["meta"][1] for item in batch],
        "init_ran": [item["meta"][2] for item in batch],
    }


def worker_init(worker_id: int) -> None:
    global _INIT_RAN
    _INIT_RAN = True


def build(root, split="train", train=True, size=64, frames=4, views=2, limit=None):
    ds = TwoViewClips(str(root), split, train, int(size), int(frames), int(views), limit)
    return Pipeline(ds, collate_fn=collate_views, worker_init_fn=worker_init)


def build_plain(root, **kwargs):
    """The same items with torch's default collate (nested batches: dict of lists of tensors)."""
    return TwoViewClips(
        str(root),
        kwargs.get("split", "train"),
        bool(kwargs.get("train", False)),
        int(kwargs.get("size", 64)),
        int(kwargs.get("frames", 4)),
        2,
        kwargs.get("limit"),
    )
