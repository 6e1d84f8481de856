"""``SSv2Clips``: the clip dataset that the suite stress-tests and users import into ``train.py``.

Each item is ``(clip, label)``: ``clip`` a ``torch.uint8`` tensor ``(num_frames, size, size, 3)``,
``label`` an int (-1 for the test split). Choices, and why:

- The decoder is opened inside ``__getitem__`` only, never in ``__init__``: a reader opened before the
  DataLoader forks is shared by every worker and corrupts (decord#294).
- ``torch`` is imported before ``decord`` (decord#251/#263: the other order can crash at import).
- ``num_threads=1`` per reader: with one process per core, decord's own threads only contend (-17 %
  measured here, shared/DESIGN.md §3).
- Frames are resized to ``size x size`` at decode (square, like most SSv2 recipes' final crop) and stay
  uint8: normalising inside workers quadruples the bytes through shared memory. Use :func:`normalize`
  on the consumer side (ideally on the device).
- Sampled indices are sorted and fetched with one ``get_batch`` call.
"""

from __future__ import annotations

import os
import re
import stat
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch  # before decord, always (decord#251/#263)
from torch.utils.data import Dataset

from .annotations import SSv2Index, load_index
from .decoders import DECODERS, DECORD_DISTRIBUTIONS, decord_provider
from .errors import describe_exc
from .sampling import MODES, is_int, sample_indices
from .webm import NO_DURATION_MARK, NO_DURATION_REMEDY, check_complete, lacks_duration, webm_duration

ON_ERROR = ("raise", "skip")
_MAX_SUBSTITUTES = 16


_MESSAGE = re.compile(r"cannot decode SSv2 video id (?P<id>\S+) \((?P<path>.+?)\): (?P<reason>[^\n]*)")


class ClipDecodeError(RuntimeError):
    """One video could not be decoded: names the path, the SSv2 id and the decoder's own message.

    Also constructible from one message string: that is how the DataLoader re-raises a worker's
    exception in the main process (``exc_type(text_of_worker_traceback)``; a class that refused one
    argument would arrive as a plain ``RuntimeError``). ``path``/``video_id``/``reason`` are then
    parsed back from the text.
    """

    def __init__(self, path: str, video_id: str | None = None, reason: str | None = None) -> None:
        if video_id is None and reason is None:
            text = str(path)
            found = list(_MESSAGE.finditer(text))
            m = found[-1] if found else None  # the last one: ours, after any chained cause
            self.path, self.video_id, self.reason = (m["path"], m["id"], m["reason"]) if m else ("", "", text)
            super().__init__(text)
            return
        self.path, self.video_id, self.reason = path, video_id, reason
        super().__init__(f"cannot decode SSv2 video id {video_id} ({path}): {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Re-raised in the main process by the DataLoader: keep the fields through pickling.
        return (ClipDecodeError, (self.path, self.video_id, self.reason))


class SSv2Clips(Dataset):
    """Something-Something-v2 clips, decoded per item.

    ``root`` is an SSv2 root (either annotation naming) or an already loaded :class:`SSv2Index`.
    ``on_error="skip"`` replaces an undecodable video by the next good one (so a batch is never short),
    counts it in :attr:`skipped` (this process) and appends a line to ``skip_log`` when given (so skips
    inside DataLoader workers are counted too), and warns.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | SSv2Index,
        split: str = "train",
        num_frames: int = 16,
        size: int = 224,
        train: bool = False,
        *,
        sampling: str = "segments",
        stride: int = 2,
        list_file: str | os.PathLike[str] | None = None,
        missing: str = "error",
        on_error: str = "raise",
        decoder: str = "decord",
        skip_log: str | os.PathLike[str] | None = None,
        limit: int | None = None,
    ) -> None:
        # Checked here, not left to sampling: inside __getitem__ a sampling ValueError would be reported
        # as a ClipDecodeError naming a perfectly good video (and on_error="skip" would skip them all).
        if not is_int(num_frames) or num_frames < 1:
            raise ValueError(f"SSv2Clips: num_frames must be an integer >= 1, got {num_frames!r}")
        if not is_int(size) or size < 8:
            raise ValueError(f"SSv2Clips: size must be an integer >= 8 pixels, got {size!r}")
        if not is_int(stride) or stride < 1:
            raise ValueError(f"SSv2Clips: stride must be an integer >= 1, got {stride!r}")
        if sampling not in MODES:
            raise ValueError(f"SSv2Clips: sampling must be one of {MODES}, got {sampling!r}")
        if on_error not in ON_ERROR:
            raise ValueError(f"SSv2Clips: on_error must be one of {ON_ERROR}, got {on_error!r}")
        if decoder not in DECODERS:
            raise ValueError(f"SSv2Clips: decoder must be one of {DECODERS}, got {decoder!r}")
        if isinstance(root, SSv2Index):
            index = root
        else:
            index = load_index(root, split, list_file=list_file, missing=missing)
        if limit is not None:
            index = index.subset(limit)
        if len(index) == 0:
            raise ValueError(f"SSv2Clips: split {index.split!r} of {index.root} has no videos")
        self.index = index
        self.num_frames, self.size, self.train = num_frames, size, train
        self.sampling, self.stride = sampling, stride
        self.on_error, self.decoder = on_error, decoder
        self.skip_log = None if skip_log is None else str(skip_log)
        self.skipped = 0
        self._decode = _DECODE_FNS[decoder]

    def __len__(self) -> int:
        return len(self.index)

    @property
    def video_ids(self) -> _VideoIds:
        return _VideoIds(self.index)

    def indices_for(self, video_len: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """The frame indices this dataset samples from a video of ``video_len`` frames."""
        return sample_indices(
            video_len, self.num_frames, mode=self.sampling, stride=self.stride, train=self.train, rng=rng
        )

    def load(self, i: int) -> torch.Tensor:
        """Decode item ``i``; raises :class:`ClipDecodeError` (never skips)."""
        path = self.index.path(i)
        # Seeded from torch's RNG, not OS entropy: DataLoader workers get distinct torch seeds derived
        # from the loader's generator (make_loader seeds it), so training clips are reproducible per
        # seed and still differ between workers; with 0 workers torch.manual_seed governs.
        rng = np.random.default_rng(int(torch.randint(0, 2**62, ()).item())) if self.train else None
        try:
            try:
                st = os.stat(path)  # one stat for both checks (this runs for every item)
            except (FileNotFoundError, NotADirectoryError):
                raise FileNotFoundError("file does not exist") from None
            if not stat.S_ISREG(st.st_mode):
                raise FileNotFoundError("file does not exist")
            if st.st_size == 0:
                raise ValueError("file is empty (0 bytes)")
            return self._decode(path, self.size, lambda n: self.indices_for(n, rng))
        except ClipDecodeError:
            raise
        except Exception as exc:  # decord raises a bare DECORDError(RuntimeError); PyAV its own tree
            raise ClipDecodeError(path, self.index.video_id(i), describe_exc(exc)) from exc

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if self.on_error == "raise":
            return self.load(i), self.index.label(i)
        tries = min(_MAX_SUBSTITUTES, len(self))  # never retry a video that already failed
        for k in range(tries):
            j = (i + k) % len(self)
            try:
                return self.load(j), self.index.label(j)
            except ClipDecodeError as err:
                self._record_skip(err)
        raise ClipDecodeError(
            self.index.path(i),
            self.index.video_id(i),
            f"this and the next {tries - 1} videos all failed to decode",
        )

    def _record_skip(self, err: ClipDecodeError) -> None:
        self.skipped += 1
        warnings.warn(f"skipped undecodable video: {err}", RuntimeWarning, stacklevel=3)
        if self.skip_log:
            # One short O_APPEND write per skip is atomic across worker processes.
            line = f"{err.video_id}\t{err.path}\t{err.reason}\n".encode()
            fd = os.open(self.skip_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)


class _VideoIds(Sequence[str]):
    """``ds.video_ids[i]`` → SSv2 id, without materialising a Python list (copy-on-write, pytorch#13246)."""

    def __init__(self, index: SSv2Index) -> None:
        self._index = index

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self._index.video_id(j) for j in range(*i.indices(len(self)))]
        return self._index.video_id(i)


def normalize(
    clip: torch.Tensor,
    mean: Sequence[float] = (0.485, 0.456, 0.406),
    std: Sequence[float] = (0.229, 0.224, 0.225),
    *,
    channels_first: bool = True,
) -> torch.Tensor:
    """uint8 ``(..., T, H, W, C)`` → float32 normalised, ``(..., C, T, H, W)`` if ``channels_first``.

    Meant for the consumer side (after ``.to(device)``), not inside DataLoader workers.
    """
    x = clip.float() / 255.0  # not .div_(): .float() of a float32 clip is the clip itself
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device)
    x = (x - m) / s
    if channels_first:
        x = x.movedim(-1, -4)
    return x


# --- truncation check --------------------------------------------------------------------------------
# A truncated or partly zeroed WebM does not make decord or PyAV fail: both decode the frames that are
# left (often just the first keyframe) and report a shorter video, and sampling then repeats those
# frames. So the decodable frames are compared with the video track's own declared extent (not the
# file's Duration, which is the longest track's): see :mod:`.webm`.

# --- decoder backends: each takes (path, size, indices_for(video_len)) and returns uint8 (T, S, S, 3) ---


def _decode_decord(path: str, size: int, pick) -> torch.Tensor:
    import decord  # imported here so that importing this module never loads decord before torch

    try:
        vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1, width=size, height=size)
    except Exception as exc:
        # decord counts frames from the header's Duration: a WebM written in live mode (or to a pipe)
        # has none and is refused ("Failed to measure duration/frame-count due to broken metadata"),
        # although its frames are fine and PyAV decodes them.
        if lacks_duration(path):
            lines = str(exc).strip().splitlines() or [type(exc).__name__]
            said = re.sub(r"^\[[\d:]+\]\s*\S+:\d+:\s*", "", lines[-1])  # drop decord's "[time] file.cc:N: "
            raise ValueError(
                f"decord {NO_DURATION_MARK} (written in live mode or to a pipe; decord: {said}): {NO_DURATION_REMEDY}"
            ) from exc
        raise
    try:
        n = len(vr)
        if n < 1:
            raise ValueError("no frames decoded")
        check_complete(path, n, float(vr.get_frame_timestamp(n - 1)[1]), float(vr.get_avg_fps()))
        idx = pick(n)
        batch = vr.get_batch(idx.tolist())
        # dlpack hands decord's buffer to torch without a copy.
        return torch.utils.dlpack.from_dlpack(batch.to_dlpack())
    finally:
        del vr  # decord 0.6.0 has no close(); dropping the reader frees the demuxer and its fd


def _decode_pyav(path: str, size: int, pick) -> torch.Tensor:
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "NONE"
        frames = [f for f in container.decode(stream)]
    if not frames:
        raise ValueError("no frames decoded")
    rate = stream.average_rate or stream.guessed_rate
    fps = float(rate) if rate else 0.0
    last = frames[-1].time
    if last is not None:
        check_complete(path, len(frames), float(last) + (1.0 / fps if fps > 0 else 0.0), fps)
    idx = pick(len(frames))
    out = np.stack([frames[j].reformat(width=size, height=size, format="rgb24").to_ndarray() for j in idx])
    return torch.from_numpy(out)


def _decode_torchcodec(path: str, size: int, pick) -> torch.Tensor:
    from torchcodec.decoders import VideoDecoder  # optional extra: ssv2-stress[torchcodec]

    dec = VideoDecoder(path, dimension_order="NHWC", num_ffmpeg_threads=1)
    idx = pick(dec.metadata.num_frames)
    frames = dec.get_frames_at(indices=idx.tolist()).data  # (T, H, W, 3) uint8
    t = frames.permute(0, 3, 1, 2).float()
    t = torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    return t.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


_DECODE_FNS = {"decord": _decode_decord, "pyav": _decode_pyav, "torchcodec": _decode_torchcodec}


def decoder_available(name: str) -> tuple[bool, str]:
    """Whether a decoder backend can be imported here, and the reason when not."""
    mod = {"decord": "decord", "pyav": "av", "torchcodec": "torchcodec.decoders"}.get(name)
    if mod is None:
        return False, f"unknown decoder {name!r}; choose one of {DECODERS}"
    try:
        __import__(mod)
    except Exception as exc:  # torchcodec wheels past 0.13 fail at import without CUDA libraries
        return False, f"{name} unavailable: {type(exc).__name__}: {exc}"
    return True, ""


__all__ = [
    "SSv2Clips",
    "ClipDecodeError",
    "normalize",
    "decoder_available",
    "decord_provider",
    "webm_duration",
    "DECODERS",
    "DECORD_DISTRIBUTIONS",
]
