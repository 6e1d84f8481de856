"""The WebM header reader and the truncation check on files written for real by PyAV (libavformat's
webm muxer, the same code as the ``ffmpeg`` CLI): a video with a longer opus track, a single-track
video, a live-mode WebM (no Duration), and truncated/zeroed copies of them.
"""

from __future__ import annotations

import fractions
import os
from pathlib import Path

import av
import numpy as np
import pytest
import torch  # before decord (decord#251/#263)

from ssv2_fixtures.data import webm
from ssv2_fixtures.data.clips import ClipDecodeError, SSv2Clips
from ssv2_fixtures.data.webm import (
    NO_DURATION_REMEDY,
    Extent,
    check_complete,
    lacks_duration,
    read_layout,
    remedy_for,
    video_extent,
    webm_duration,
)

FPS, VIDEO_S, AUDIO_S, SIZE = 12, 3.0, 5.0, 64
VIDEO_FRAMES = int(FPS * VIDEO_S)
_TAGS_ID = b"\x12\x54\xc3\x67"


def make_webm(
    path: Path,
    *,
    video_s: float = VIDEO_S,
    audio_s: float | None = AUDIO_S,
    live: bool = False,
    keyframe_every: int = 0,
) -> Path:
    """A VP8 (+ opus) WebM: ``video_s`` of video at FPS, ``audio_s`` of mono 48 kHz audio (None: no audio);
    ``keyframe_every``: force a keyframe (and so a Cue point) every that many frames (0: the encoder's
    choice, which for these 36 frames is the first frame only)."""
    with av.open(str(path), "w", format="webm", options={"live": "1"} if live else {}) as c:
        v = c.add_stream("libvpx", rate=FPS)
        v.width = v.height = SIZE
        v.pix_fmt = "yuv420p"
        v.options = {"deadline": "realtime", "cpu-used": "8"}
        a = c.add_stream("libopus", rate=48000) if audio_s else None
        for i in range(int(video_s * FPS)):
            img = np.zeros((SIZE, SIZE, 3), np.uint8)
            img[:, :, 0] = i * 7 % 256
            img[i % SIZE, :, 1] = 255  # every frame differs
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts, f.time_base = i, fractions.Fraction(1, FPS)
            if keyframe_every and i % keyframe_every == 0:
                f.pict_type = av.video.frame.PictureType.I
            for p in v.encode(f):
                c.mux(p)
        for p in v.encode():
            c.mux(p)
        if a is not None and audio_s:
            step = 960
            for s in range(0, int(audio_s * 48000), step):
                buf = (np.sin(np.arange(s, s + step) * 0.05) * 0.3).astype(np.float32).reshape(1, -1)
                af = av.AudioFrame.from_ndarray(buf, format="flt", layout="mono")
                af.sample_rate, af.pts, af.time_base = 48000, s, fractions.Fraction(1, 48000)
                for p in a.encode(af):
                    c.mux(p)
            for p in a.encode():
                c.mux(p)
    return path


def remux(src: Path, dst: Path) -> Path:
    """What ``ffmpeg -i src -c copy dst`` does (the remedy the error names), through the same libavformat."""
    with av.open(str(src)) as i, av.open(str(dst), "w", format="webm") as o:
        streams = {s.index: o.add_stream_from_template(s) for s in i.streams}
        for pkt in i.demux():
            if pkt.dts is None:
                continue
            pkt.stream = streams[pkt.stream.index]
            o.mux(pkt)
    return dst


def void_tags(data: bytes) -> bytes:
    """The same file with its Tags element overwritten by a Void element of the same length (as a muxer
    that writes no statistics tags would leave it): the per-track DURATION tags are gone."""
    at, n = data.find(_TAGS_ID), 0
    while at >= 0:
        n = 9 - data[at + 4].bit_length()  # length of the size vint
        if data[at + 4 + n : at + 6 + n] == b"\x73\x73":  # its first child is a Tag: the element, not a SeekID
            break
        at = data.find(_TAGS_ID, at + 1)
    assert 0 < at < data.find(b"\x1f\x43\xb6\x75"), "no Tags element before the first Cluster"
    size = int.from_bytes(data[at + 4 : at + 4 + n], "big") & ((1 << (7 * n)) - 1)  # drop the length marker
    m = n + 3  # Void's 1-byte ID + an m-byte size vint == Tags' 4-byte ID + n-byte size vint
    vint = ((1 << (7 * m)) | size).to_bytes(m, "big")
    return data[:at] + b"\xec" + vint + bytes(size) + data[at + 4 + n + size :]


def _decode(path: Path, decoder: str) -> torch.Tensor:
    from ssv2_fixtures.data.clips import _DECODE_FNS

    return _DECODE_FNS[decoder](str(path), 32, lambda n: np.arange(min(n, 4)))


def _put(path: str, data: bytes) -> None:
    os.unlink(path)  # never write through a link into the cached set
    Path(path).write_bytes(data)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("webm")
    return {
        "audio_longer": make_webm(d / "audio_longer.webm"),
        "video_only": make_webm(d / "video_only.webm", audio_s=None),
        "live": make_webm(d / "live.webm", live=True),
    }


# --------------------------------------------------------------------------- the header reader


def test_layout_of_audio_longer_file(files: dict[str, Path]) -> None:
    layout = read_layout(files["audio_longer"])
    assert layout is not None and layout.segment_end == layout.file_bytes
    with av.open(str(files["audio_longer"])) as c:
        assert c.duration is not None
        ffmpeg_duration = c.duration / 1e6
    assert layout.duration_s == pytest.approx(ffmpeg_duration, abs=1e-3)
    assert layout.duration_s == pytest.approx(AUDIO_S, abs=0.05)  # the longest track's
    assert sorted(t.type for t in layout.tracks) == [1, 2]
    assert layout.video is not None and layout.video.duration_s == pytest.approx(VIDEO_S, abs=1e-3)
    assert layout.video.default_duration_s == pytest.approx(1 / FPS, abs=1e-6)
    ext = video_extent(layout)
    assert ext is not None and ext.seconds == pytest.approx(VIDEO_S, abs=1e-3) and "DURATION tag" in ext.source


def test_live_mode_file_really_lacks_duration(files: dict[str, Path]) -> None:
    layout = read_layout(files["live"])
    assert layout is not None
    assert layout.duration_s is None and layout.segment_end is None  # no Duration, Segment of unknown size
    with av.open(str(files["live"])) as c:
        assert c.duration is None  # libavformat agrees
    assert lacks_duration(files["live"]) and not lacks_duration(files["audio_longer"])
    assert video_extent(layout) is None


def test_extent_falls_back_to_duration_only_for_a_single_track(files: dict[str, Path], tmp_path: Path) -> None:
    one = tmp_path / "one.webm"
    one.write_bytes(void_tags(files["video_only"].read_bytes()))
    layout = read_layout(one)
    assert layout is not None and layout.video is not None and layout.video.duration_s is None
    ext = video_extent(layout)
    assert ext is not None and "only track" in ext.source and ext.seconds == pytest.approx(VIDEO_S, abs=1e-3)
    two = tmp_path / "two.webm"
    two.write_bytes(void_tags(files["audio_longer"].read_bytes()))
    layout2 = read_layout(two)
    assert layout2 is not None and layout2.duration_s == pytest.approx(AUDIO_S, abs=0.05)
    # Two tracks and no tag: the file's Duration (the audio's) is never taken for the video's, and its
    # only Cue is the keyframe at 0 s, which bounds nothing: no extent, nothing checked
    assert layout2.video is not None and layout2.video.last_cue_s == 0.0
    assert video_extent(layout2) is None
    for decoder in ("decord", "pyav"):
        assert _decode(one, decoder).shape[0] == 4 and _decode(two, decoder).shape[0] == 4
    # with a keyframe every second, the last Cue (2 s) is the video's lower bound
    cued = tmp_path / "cued.webm"
    cued.write_bytes(void_tags(make_webm(tmp_path / "cued_src.webm", keyframe_every=FPS).read_bytes()))
    layout3 = read_layout(cued)
    assert layout3 is not None
    assert video_extent(layout3) == Extent(2.0, "the video track's last Cue point", False)


def test_a_layout_is_read_once_per_file_version(files: dict[str, Path], tmp_path: Path) -> None:
    f = tmp_path / "v.webm"
    f.write_bytes(files["video_only"].read_bytes())
    first = read_layout(f)
    hits = webm._cached_layout.cache_info().hits
    assert read_layout(f) is first and webm._cached_layout.cache_info().hits == hits + 1
    # cut short (as a copy interrupted mid-write): a new size, so read again, and the cut is seen
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    cut = read_layout(f)
    assert first is not None and cut is not None and cut.file_bytes == len(data) // 2 != first.file_bytes
    assert cut.segment_end is not None and cut.segment_end > cut.file_bytes
    assert webm._cached_layout.cache_info().maxsize == webm.LAYOUT_CACHE_SIZE  # bounded


def test_not_a_webm(tmp_path: Path) -> None:
    text = tmp_path / "x.webm"
    text.write_text("not a video")
    assert read_layout(text) is None and webm_duration(text) is None
    assert read_layout(tmp_path / "absent.webm") is None
    check_complete(text, 1, 0.1, 25.0)  # nothing declared, nothing checked


# --------------------------------------------------------------------------- decoding through SSv2Clips


@pytest.mark.parametrize("decoder", ["decord", "pyav"])
def test_audio_longer_than_video_decodes(bad_root: Path, files: dict[str, Path], decoder: str) -> None:
    ds = SSv2Clips(bad_root, "train", num_frames=8, size=32, decoder=decoder)
    _put(ds.index.path(0), files["audio_longer"].read_bytes())
    clip, _ = ds[0]
    assert clip.shape == (8, 32, 32, 3)
    assert len({bytes(f.numpy()) for f in clip}) == 8  # 8 distinct frames sampled across 36, no repeats


@pytest.mark.parametrize("decoder", ["decord", "pyav"])
@pytest.mark.parametrize("keep", [0.3, 0.5, 0.8, 0.999])
def test_truncated_audio_longer_file_is_refused(
    bad_root: Path, files: dict[str, Path], decoder: str, keep: float
) -> None:
    ds = SSv2Clips(bad_root, "train", num_frames=8, size=32, decoder=decoder)
    data = files["audio_longer"].read_bytes()
    _put(ds.index.path(0), data[: int(len(data) * keep)])
    with pytest.raises(ClipDecodeError, match="truncated or damaged") as info:
        ds[0]
    assert "bytes but the file has only" in info.value.reason


@pytest.mark.parametrize("decoder", ["decord", "pyav"])
@pytest.mark.parametrize("keep", [0.02, 0.3, 0.5])
def test_zeroed_video_is_refused_by_the_video_tracks_extent(
    bad_root: Path, files: dict[str, Path], decoder: str, keep: float
) -> None:
    # The file keeps its length (so the Segment size looks right); the video frames after `keep` are
    # zeros. Only the comparison with the video track's own 3 s can tell.
    ds = SSv2Clips(bad_root, "train", num_frames=8, size=32, decoder=decoder)
    data = files["audio_longer"].read_bytes()
    k = int(len(data) * keep)
    _put(ds.index.path(0), data[:k] + bytes(len(data) - k))
    with pytest.raises(ClipDecodeError, match="truncated or damaged: the video track's DURATION tag says 3.000 s"):
        ds[0]


def test_live_mode_webm_with_decord_names_the_remedy(bad_root: Path, files: dict[str, Path], tmp_path: Path) -> None:
    ds = SSv2Clips(bad_root, "train", num_frames=8, size=32, decoder="decord")
    path = ds.index.path(0)
    _put(path, files["live"].read_bytes())
    with pytest.raises(ClipDecodeError) as info:
        ds[0]
    err = info.value
    assert err.path == path and "without a Duration" in err.reason
    assert "ffmpeg -i in.webm -c copy out.webm" in err.reason and "--decoder pyav" in err.reason
    assert NO_DURATION_REMEDY in str(err)
    # What run/outcome.py's decode_error remedy reads back from the child's error text.
    assert remedy_for(f"ClipDecodeError: {err}") == NO_DURATION_REMEDY
    assert remedy_for("ClipDecodeError: cannot decode ...: truncated or damaged: ...") is None
    # Both remedies work: PyAV decodes the file as is, and after the remux decord does too.
    assert SSv2Clips(bad_root, "train", num_frames=8, size=32, decoder="pyav")[0][0].shape == (8, 32, 32, 3)
    fixed = remux(files["live"], tmp_path / "out.webm")
    assert webm_duration(fixed) is not None
    _put(path, fixed.read_bytes())
    assert ds[0][0].shape == (8, 32, 32, 3)
