"""Frame-index sampling for SSv2 clips: pure functions, no decoding.

Two modes, both returning sorted int64 indices of length ``num_frames`` inside ``[0, video_len)``:

- TSN segments: the video is cut into ``num_frames`` equal segments; training takes a random offset
  inside each segment, evaluation takes each segment's centre (deterministic).
- consecutive-with-stride: ``num_frames`` frames ``stride`` apart from a random (train) or centred
  (eval) start; when the span does not fit, frames are spread evenly over the whole video instead.

Videos shorter than ``num_frames`` repeat indices rather than fail: SSv2 has clips of ~20 frames and a
loader that crashes on them ends a 4-hour run.
"""
from __future__ import annotations

import numpy as np

MODES = ("segments", "consecutive")


def segment_indices(
    video_len: int, num_frames: int, *, train: bool, rng: np.random.Generator | None = None
) -> np.ndarray:
    """TSN-style indices: one frame per equal segment (random offset if ``train``, centre otherwise)."""
    _check(video_len, num_frames)
    seg = video_len / num_frames
    starts = np.arange(num_frames, dtype=np.float64) * seg
    if train:
        offsets = (rng or np.random.default_rng()).random(num_frames) * seg
    else:
        offsets = np.full(num_frames, seg / 2.0)
    idx = np.floor(starts + offsets).astype(np.int64)
    return np.clip(idx, 0, video_len - 1)


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
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
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


def _check(video_len: int, num_frames: int) -> None:
    if video_len < 1:
        raise ValueError(f"video has no frames (video_len={video_len})")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
