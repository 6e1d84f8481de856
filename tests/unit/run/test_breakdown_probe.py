"""The breakdown probe in a real process (issue #23): SSv2Clips, a slow-transform factory, a PyAV factory."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from ssv2_fixtures.data.loader import LoaderConfig
from ssv2_fixtures.run.breakdown import ItemTimings, record, stages
from ssv2_fixtures.run.breakdown_probe import measure, transfer_rate

_PIPES = '''
import time

import numpy as np
import torch  # before decord
from torch.utils.data import Dataset

from ssv2_fixtures import Pipeline


def _videos(root):
    import glob
    import os

    return sorted(glob.glob(os.path.join(root, "20bn-something-something-v2", "*.webm")))


class SlowTransform(Dataset):
    """decord decode, then a pure-Python transform that spins three times as long as the decode took."""

    def __init__(self, root):
        self.paths = _videos(root)

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        import decord

        t = time.perf_counter()
        vr = decord.VideoReader(self.paths[i], num_threads=1, width=64, height=64)
        frames = vr.get_batch(list(range(min(8, len(vr))))).asnumpy()
        spent = time.perf_counter() - t
        end = time.perf_counter() + 3 * spent
        acc = 0
        while time.perf_counter() < end:
            acc += 1
        return torch.from_numpy(frames).float(), acc % 2


class PyAVClips(Dataset):
    """Every frame decoded with PyAV and turned into an array; nothing else."""

    def __init__(self, root):
        self.paths = _videos(root)

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        import av

        with av.open(self.paths[i]) as c:
            frames = [f.reformat(width=64, height=64, format="rgb24").to_ndarray() for f in c.decode(video=0)]
        return torch.from_numpy(np.stack(frames[:8])), 0


def slow(root, split="train"):
    return Pipeline(SlowTransform(root))


def pyav(root, split="train"):
    return Pipeline(PyAVClips(root))
'''


@pytest.fixture
def pipes(tmp_path: Path) -> Path:
    d = tmp_path / "pipes"
    d.mkdir()
    (d / "bd_pipes.py").write_text(_PIPES)
    return d


def _probe(tmp_path: Path, dataset: dict[str, Any]) -> dict[str, Any]:
    spec = {
        "dataset": dataset,
        "config": LoaderConfig(batch_size=2, num_workers=0).to_dict(),
        "transfer": None,
        "item_s_budget": 0.5,
        "max_items": 4,
        "profile_items": 1,
    }
    m = measure(spec, tmp_path / "bd", timeout_s=240)
    err = (tmp_path / "bd" / "breakdown.err").read_text()
    assert m is not None, err
    return m


def _timings(m: dict[str, Any]) -> ItemTimings:
    return ItemTimings(m["getitem_s"], m["decode_s"], m["collate_s"], m["loop_s"])


@pytest.mark.timeout(300)
def test_a_real_probe_over_ssv2clips_adds_up_to_its_own_item_time(synth_root: Path, tmp_path: Path) -> None:
    m = _probe(tmp_path, {"root": str(synth_root), "split": "train", "num_frames": 8, "size": 64, "train": True})
    t = _timings(m)
    s = stages(t)
    assert math.isclose(sum(v["share"] for v in s.values()), 1.0, rel_tol=1e-9)
    rec = record(t, item_rate=None, transfer=None, cores=1, achieved=None, hot=m["profile"]["hot"])
    assert rec["item_s"] == m["loop_s"] / len(m["getitem_s"])  # the probe's own item time
    assert "decord.VideoReader.get_batch" in m["wrapped"]
    assert all(d > 0 for d in m["decode_s"])  # SSv2Clips decodes through the wrapped reader
    assert m["decode_calls"] >= 2 * len(m["getitem_s"]) and m["decode_alone_s"] > 0  # open + get_batch, replayed
    alone = record(t, item_rate=None, transfer=None, cores=2, achieved=None, decode_alone_s=m["decode_alone_s"])
    assert alone["ceilings"]["decode"] == 2 / m["decode_alone_s"]  # the ceiling is the decoder timed alone
    assert "decode_at_size" not in m  # SSv2Clips opens its readers at its own size already
    assert 1 <= len(rec["hot"]) <= 5 and all(h["s_per_item"] >= 0 and h["line"] >= 0 for h in rec["hot"])


@pytest.mark.timeout(300)
def test_a_deliberately_slow_transform_is_named_binding(synth_root: Path, pipes: Path, tmp_path: Path) -> None:
    ds = {"root": str(synth_root), "split": "train", "factory": "bd_pipes:slow", "factory_path": [str(pipes)]}
    m = _probe(tmp_path, ds)
    rec = record(_timings(m), item_rate=None, transfer=None, cores=1, achieved=None, hot=m["profile"]["hot"])
    assert rec["binding"] == "transform"
    assert any(h["function"] == "__getitem__" and h["file"].endswith("bd_pipes.py") for h in rec["hot"])


@pytest.mark.timeout(300)
def test_a_factory_decoding_with_pyav_is_attributed_to_decode(synth_root: Path, pipes: Path, tmp_path: Path) -> None:
    ds = {"root": str(synth_root), "split": "train", "factory": "bd_pipes:pyav", "factory_path": [str(pipes)]}
    m = _probe(tmp_path, ds)
    assert {"av.open", "av.container.InputContainer.decode", "av.video.frame.VideoFrame.reformat"} <= set(m["wrapped"])
    rec = record(_timings(m), item_rate=None, transfer=None, cores=1, achieved=None)
    assert rec["binding"] == "decode"
    assert all(d > 0 for d in m["decode_s"])
    assert m["decode_calls"] > 0 and m["decode_alone_s"] > 0  # PyAV's calls replay too (open, decode, next)


def test_the_transfer_ceiling_carries_the_items_real_structure_and_bytes() -> None:
    import torch

    small = [{"clip": torch.zeros(4, 8, 8, 3, dtype=torch.uint8)} for _ in range(2)]
    big = [{"clip": torch.zeros(4, 8, 8, 3, dtype=torch.float64)} for _ in range(2)]  # 8x the bytes
    cfg = LoaderConfig(batch_size=2, num_workers=1)
    a = transfer_rate(small, cfg, None, seconds=0.05)
    b = transfer_rate(big, cfg, None, seconds=0.05)
    assert b["bytes_per_batch"] == 8 * a["bytes_per_batch"] == 8 * 2 * 4 * 8 * 8 * 3
    assert a["batches"] >= 1 and a["videos_per_s"] > 0 and a["label"] == cfg.label


class _Reader:
    """A stand-in decoder: records every call it gets, so a replay can be checked call for call."""

    calls: list[tuple[Any, ...]] = []

    def __init__(self, path: str, width: int = -1, height: int = -1) -> None:
        self.path, self.size = path, (height, width)
        _Reader.calls.append(("init", path, width, height))

    def get_batch(self, idx: list[int]) -> Any:
        import numpy as np

        _Reader.calls.append(("get_batch", self.path, list(idx)))
        return np.zeros((len(idx), 240, 320, 3), dtype=np.uint8)

    def frames(self) -> Any:
        yield from range(3)


def test_a_replay_makes_the_same_decoder_calls_with_the_same_arguments_outside_the_item() -> None:
    from ssv2_fixtures.run.breakdown_probe import DecodeClock, replay

    clock = DecodeClock()
    orig_init, orig_get, orig_frames = _Reader.__init__, _Reader.get_batch, _Reader.frames
    init = clock.timed(orig_init, "decord.VideoReader.__init__", init=True)
    get = clock.timed(orig_get, "decord.VideoReader.get_batch")
    frames = clock.timed_iter(orig_frames, "x.frames")
    _Reader.calls = []
    clock.start_item(record=True)
    r = _Reader.__new__(_Reader)
    init(r, "a.webm")
    get(r, [0, 2, 4])
    assert list(frames(r)) == [0, 1, 2]
    log = clock.end_item()
    assert clock.total > 0 and [c.kind for c in log] == ["init", "call", "call", "next", "next", "next", "next"]
    made = list(_Reader.calls)
    _Reader.calls = []
    assert replay(log) >= 0
    assert _Reader.calls == made  # same calls, same arguments, on a reader of its own


def test_at_size_reopens_native_size_readers_at_the_items_short_side_only() -> None:
    from ssv2_fixtures.run.breakdown_probe import DecodeClock, at_size, item_size

    clock = DecodeClock()
    init = clock.timed(_Reader.__init__, "decord.VideoReader.__init__", init=True)
    get = clock.timed(_Reader.get_batch, "decord.VideoReader.get_batch")
    clock.start_item(record=True)
    r = _Reader.__new__(_Reader)
    init(r, "a.webm")
    get(r, [0, 1])
    log = clock.end_item()
    sized = at_size(log, 112)
    assert sized is not None and sized[0].kwargs == {"width": 149, "height": 112}  # 240x320 -> short side 112
    assert at_size(log, 240) is None  # already no larger than the item: nothing to gain
    import numpy as np

    assert item_size((np.zeros((16, 112, 112, 3)), 0)) == 112  # (T, H, W, C)
    assert item_size([{"x": np.zeros((3, 16, 224, 224), dtype=np.float32)}]) == 224  # (C, T, H, W)
    assert item_size(3) is None
