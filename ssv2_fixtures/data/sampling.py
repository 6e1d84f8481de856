"""Frame-index sampling for SSv2 clips (pure functions, no decoding), and the endless dataset-index
sampler every single-process measured run draws from (:class:`EndlessSampler`).

Two frame modes, both returning sorted int64 indices of length ``num_frames`` inside ``[0, video_len)``:

- TSN segments: the video is cut into ``num_frames`` equal segments; training takes a random offset
  inside each segment, evaluation takes each segment's centre (deterministic).
- consecutive-with-stride: ``num_frames`` frames ``stride`` apart from a random (train) or centred
  (eval) start; when the span does not fit, frames are spread evenly over the whole video instead.

Videos shorter than ``num_frames`` repeat indices rather than fail: SSv2 has clips of ~20 frames and a
loader that crashes on them ends a 4-hour run.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

MODES = ("segments", "consecutive")


def segment_indices(
    video_len: int, num_frames: int, *, train: bool, rng: np.random.Generator | None = None
) -> np.ndarray:
    """TSN-style indices: one frame per equal segment (random offset if ``train``, centre otherwise)."""
    _check(video_len, num_frames)
    n, t = int(video_len), int(num_frames)
    k = np.arange(t, dtype=np.int64)
    # Segment k is [k*n/T, (k+1)*n/T); its frames are lo[k]..hi[k] (exact integer arithmetic: the float
    # form floor(k * (n/T)) lands one frame early when k*n/T is an integer, e.g. n=30, T=22, k=11).
    lo = (k * n) // t
    hi = ((k + 1) * n - 1) // t  # >= lo even when n < T (then segments share frames: repeats)
    if train:
        offsets = (rng or np.random.default_rng()).random(t)
        idx = np.floor((k + offsets) * (n / t)).astype(np.int64)
        return np.clip(idx, lo, hi)  # only corrects float rounding; the exact value is in [lo, hi]
    return ((2 * k + 1) * n) // (2 * t)  # each segment's centre, floor((k + 1/2) * n / T)


def consecutive_indices(
    video_len: int,
    num_frames: int,
    *,
    stride: int = 2,
    train: bool,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """``num_frames`` frames ``stride`` apart; spread over the whole video when they do not fit."""
    _check(video_len, num_frames)
    if not is_int(stride) or stride < 1:
        raise ValueError(f"stride must be an integer >= 1, got {stride!r}")
    span = (num_frames - 1) * stride + 1
    if span > video_len:
        # Too short for the stride: evenly spaced over what there is (repeats when video_len < T).
        return np.floor(np.linspace(0, video_len - 1, num_frames)).astype(np.int64)
    room = video_len - span
    start = int((rng or np.random.default_rng()).integers(0, room + 1)) if train else room // 2
    return start + np.arange(num_frames, dtype=np.int64) * stride


def sample_indices(
    video_len: int,
    num_frames: int,
    *,
    mode: str = "segments",
    stride: int = 2,
    train: bool = False,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Dispatch on ``mode`` (one of :data:`MODES`)."""
    if mode == "segments":
        return segment_indices(video_len, num_frames, train=train, rng=rng)
    if mode == "consecutive":
        return consecutive_indices(video_len, num_frames, stride=stride, train=train, rng=rng)
    raise ValueError(f"sampling mode must be one of {MODES}, got {mode!r}")


def is_int(v: object) -> bool:
    """An integer, numpy's included; never a bool (the one check the data layer's arguments use)."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _check(video_len: int, num_frames: int) -> None:
    # Non-integers are refused, not truncated: np.arange(2.5) has 3 elements, so a float num_frames
    # would silently change the clip length.
    if not is_int(video_len):
        raise ValueError(f"video_len must be an integer, got {video_len!r}")
    if not is_int(num_frames):
        raise ValueError(f"num_frames must be an integer, got {num_frames!r}")
    if video_len < 1:
        raise ValueError(f"video has no frames (video_len={video_len})")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")


# --- dataset indices -----------------------------------------------------------------------------------


class EndlessSampler:
    """Dataset indices forever: seeded shuffled permutations of ``range(n)`` chained one after another
    (``shuffle=False``: ``range(n)`` over and over).

    Every measured single-process run draws from this, so that a batch always holds ``batch_size`` items
    whatever the split size (a batch may span the seam between two permutations), ``drop_last`` can
    never make an empty epoch, and the DataLoader's workers start once per run, as they would on a
    168,913-video split. Draws ``k·n … (k+1)·n − 1`` are a permutation for every ``k``.

    It follows torch's ``Sampler`` protocol (an iterable of ints, what ``DataLoader(sampler=...)`` and
    ``BatchSampler`` take) without subclassing it, so this module keeps to numpy; it has no ``__len__``
    (``len(loader)`` raises ``TypeError``: there is no epoch). Each ``iter()`` starts the same stream
    again from ``seed``.
    """

    def __init__(self, n: int, *, shuffle: bool = True, seed: int = 0) -> None:
        if not is_int(n) or n < 1:
            raise ValueError(f"EndlessSampler: the split must have at least one item, got n={n!r}")
        self.n, self.shuffle, self.seed = int(n), bool(shuffle), int(seed)

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng(self.seed)
        while True:
            order = rng.permutation(self.n) if self.shuffle else np.arange(self.n)
            yield from order.tolist()


def distinct_drawn(split_size: int, drawn: int) -> int:
    """Distinct items among the first ``drawn`` draws of an :class:`EndlessSampler` over ``split_size``.

    Exactly ``min(split_size, drawn)``: the first ``split_size`` draws are one whole permutation, so
    nothing repeats before every item was drawn once, and everything has been drawn after that."""
    return min(int(split_size), max(0, int(drawn)))
