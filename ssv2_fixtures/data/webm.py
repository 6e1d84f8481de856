"""What a Matroska/WebM file declares about itself, read without a decoder: enough to tell a complete
file from a truncated or damaged one.

The truncation check (:func:`check_complete`) compares where the decodable *video* frames end with the
*video track's own* extent. The file's Segment Duration is the longest track's, so a WebM whose audio
outlasts its video (3 s video, 5 s opus) declares 5 s and would look truncated; it is used only when the
file has one track. In order of preference the video extent is:

1. the video track's ``DURATION`` tag (written by FFmpeg's muxer and mkvmerge, in the Tags element
   before the first Cluster, so it survives a cut-off tail);
2. the Segment Duration, when the video is the file's only track;
3. the last Cue point of the video track (a lower bound: the start of its last keyframe).

Independently, a Segment whose declared size runs past the end of the file is incomplete, whatever
its tracks. A file with none of these (a WebM written in live mode or to a pipe) is not checked.
"""

from __future__ import annotations

import functools
import os
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

_EBML, _SEGMENT, _SEEKHEAD, _INFO, _TRACKS, _TAGS, _CUES, _CLUSTER = (
    0x1A45DFA3,
    0x18538067,
    0x114D9B74,
    0x1549A966,
    0x1654AE6B,
    0x1254C367,
    0x1C53BB6B,
    0x1F43B675,
)
_SEEK, _SEEK_ID, _SEEK_POS = 0x4DBB, 0x53AB, 0x53AC
_TIMECODE_SCALE, _DURATION = 0x2AD7B1, 0x4489
_TRACK_ENTRY, _TRACK_NUMBER, _TRACK_UID, _TRACK_TYPE, _DEFAULT_DURATION = 0xAE, 0xD7, 0x73C5, 0x83, 0x23E383
_TAG, _TARGETS, _TAG_TRACK_UID, _SIMPLE_TAG, _TAG_NAME, _TAG_STRING = 0x7373, 0x63C0, 0x63C5, 0x67C8, 0x45A3, 0x4487
_CUE_POINT, _CUE_TIME, _CUE_TRACK_POSITIONS, _CUE_TRACK = 0xBB, 0xB3, 0xB7, 0xF7
_VIDEO = 1

HEADER_BYTES = 64 * 1024  # Info, Tracks and (FFmpeg's) Tags lie well inside this
_MAX_INDEX_BYTES = 4 << 20  # Cues/Tags read at a SeekHead position: never more than this
TRUNCATION_SLACK_FRAMES = 2  # the frames may end this many frames before the video's extent ...
TRUNCATION_SLACK_FRACTION = 0.05  # ... or this fraction of it, whichever is more, before it is refused

NO_DURATION_REMEDY = (
    "remux it, which writes the Duration and Cues without re-encoding: `ffmpeg -i in.webm -c copy out.webm`; "
    "or decode it with PyAV, which needs no Duration (--decoder pyav, SSv2Clips(decoder='pyav'))"
)


NO_DURATION_MARK = "cannot open a WebM without a Duration"


class _Bad(ValueError):
    pass


def _vint(buf: bytes, pos: int, *, element_id: bool) -> tuple[int, int, bool]:
    """An EBML variable-length integer at ``pos``: (value, next pos, is the "unknown size" value)."""
    if pos >= len(buf):
        raise _Bad("EBML vint past the buffer")
    first = buf[pos]
    if first == 0:
        raise _Bad("invalid EBML vint")
    length = 9 - first.bit_length()
    if pos + length > len(buf):
        raise _Bad("EBML vint runs past the buffer")
    value = first if element_id else first & ((1 << (8 - length)) - 1)
    for b in buf[pos + 1 : pos + length]:
        value = (value << 8) | b
    unknown = not element_id and value == (1 << (7 * length)) - 1
    return value, pos + length, unknown


def _children(buf: bytes, pos: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(id, data start, data end) of each element in ``buf[pos:end]``; stops at a damaged or unsized one."""
    end = min(end, len(buf))
    while pos < end:
        try:
            eid, pos, _ = _vint(buf, pos, element_id=True)
            size, pos, unknown = _vint(buf, pos, element_id=False)
        except _Bad:
            return
        if unknown:
            return
        yield eid, pos, min(pos + size, end)
        pos += size


def _uint(data: bytes) -> int:
    return int.from_bytes(data, "big") if 0 < len(data) <= 8 else 0


def _float(data: bytes) -> float | None:
    if len(data) in (4, 8):
        return float(struct.unpack(">f" if len(data) == 4 else ">d", data)[0])
    return None


_HMS = re.compile(r"^\s*(\d+):(\d{1,2}):(\d{1,2}(?:\.\d+)?)\s*$")


def _hms_seconds(text: str) -> float | None:
    m = _HMS.match(text)
    return int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3]) if m else None


@dataclass(frozen=True)
class Track:
    number: int
    uid: int
    type: int  # 1 video, 2 audio, 17 subtitle ...
    default_duration_s: float | None = None
    duration_s: float | None = None  # its DURATION tag
    last_cue_s: float | None = None  # start of its last Cue point


@dataclass(frozen=True)
class Layout:
    """What the file's EBML header says (all times in seconds)."""

    file_bytes: int
    segment_end: int | None  # declared end of the Segment, in bytes (None: unknown size)
    duration_s: float | None  # Segment Info Duration: the longest track's
    tracks: tuple[Track, ...] = field(default_factory=tuple)

    @property
    def video(self) -> Track | None:
        return next((t for t in self.tracks if t.type == _VIDEO), None)


@dataclass(frozen=True)
class Extent:
    seconds: float
    source: str  # how it was found, for the error message
    exact: bool  # False: a lower bound (the last cue)


LAYOUT_CACHE_SIZE = 8192
"""Layouts each process keeps (a few hundred bytes each): the decoders' workers ask for an item's layout
on every decode, and re-reading it (an open, 64 KiB, the EBML walk, maybe a seek to the Cues) would be
the suite's own cost charged to the config under test. Keyed on (path, size, mtime_ns), so a file
rewritten or cut short is read again."""


def read_layout(path: str | os.PathLike[str]) -> Layout | None:
    """The file's declared layout; None when it is not Matroska/WebM or its header is unreadable.
    Cached per process (:data:`LAYOUT_CACHE_SIZE`), one ``stat`` per call."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return _cached_layout(os.fspath(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=LAYOUT_CACHE_SIZE)
def _cached_layout(path: str, size: int, mtime_ns: int) -> Layout | None:
    return _read_layout(path)


def _read_layout(path: str) -> Layout | None:
    try:
        with open(path, "rb") as f:
            file_bytes = os.fstat(f.fileno()).st_size
            buf = f.read(HEADER_BYTES)
            return _parse(f, buf, file_bytes)
    except (OSError, _Bad, IndexError, struct.error):
        return None


def _parse(f: BinaryIO, buf: bytes, file_bytes: int) -> Layout | None:
    eid, pos, _ = _vint(buf, 0, element_id=True)
    if eid != _EBML:
        return None
    size, pos, _ = _vint(buf, pos, element_id=False)
    eid, pos, _ = _vint(buf, pos + size, element_id=True)
    if eid != _SEGMENT:
        return None
    seg_size, seg_start, seg_unknown = _vint(buf, pos, element_id=False)
    segment_end = None if seg_unknown else seg_start + seg_size
    scale, duration = 1_000_000, None
    tracks: dict[int, dict] = {}  # uid -> fields
    tags: dict[int, float] = {}  # track uid -> DURATION tag
    cues: dict[int, float] = {}  # track number -> last cue time (ticks)
    seek: dict[int, int] = {}  # element id -> absolute position
    seen: set[int] = set()
    for eid, start, end in _children(buf, seg_start, len(buf)):
        if eid == _CLUSTER:
            break  # frame data: the header is over
        seen.add(eid)
        if eid == _SEEKHEAD:
            seek.update(_seekhead(buf, start, end, seg_start))
        elif eid == _INFO:
            for cid, s, e in _children(buf, start, end):
                if cid == _TIMECODE_SCALE:
                    scale = _uint(buf[s:e]) or scale
                elif cid == _DURATION:
                    duration = _float(buf[s:e])
        elif eid == _TRACKS:
            tracks.update(_tracks(buf, start, end))
        elif eid == _TAGS:
            tags.update(_tags(buf, start, end))
    # Tags or Cues written after the frames (mkvmerge's Tags, FFmpeg's Cues): read them where the
    # SeekHead says, if they lie inside the file (past its end they were cut off with the tail).
    for eid, parse in ((_TAGS, "tags"), (_CUES, "cues")):
        at = seek.get(eid)
        if eid in seen or at is None or at >= file_bytes:
            continue
        f.seek(at)
        head = f.read(16)
        try:
            got, p, _ = _vint(head, 0, element_id=True)
            esize, p, unknown = _vint(head, p, element_id=False)
        except _Bad:
            continue
        if got != eid or unknown or esize > _MAX_INDEX_BYTES:
            continue
        f.seek(at + p)
        body = f.read(esize)
        if parse == "tags":
            tags.update(_tags(body, 0, len(body)))
        else:
            cues.update(_cues(body, 0, len(body)))
    tick = scale / 1e9
    out = []
    for uid, t in tracks.items():
        cue = cues.get(t.get("number", -1))
        out.append(
            Track(
                number=t.get("number", 0),
                uid=uid,
                type=t.get("type", 0),
                default_duration_s=(t["default_ns"] / 1e9) if t.get("default_ns") else None,
                duration_s=tags.get(uid),
                last_cue_s=None if cue is None else cue * tick,
            )
        )
    dur = duration * tick if duration is not None and duration > 0 else None
    return Layout(file_bytes=file_bytes, segment_end=segment_end, duration_s=dur, tracks=tuple(out))


def _seekhead(buf: bytes, start: int, end: int, seg_start: int) -> dict[int, int]:
    out = {}
    for s, e in _entries(buf, start, end, _SEEK):
        f = _uints(buf, s, e, {_SEEK_ID: "id", _SEEK_POS: "pos"})
        if "id" in f and "pos" in f:
            out[f["id"]] = seg_start + f["pos"]  # SeekPosition counts from the Segment's data
    return out


def _entries(buf: bytes, start: int, end: int, entry_id: int) -> Iterator[tuple[int, int]]:
    """(start, end) of each child of ``buf[start:end]`` whose element id is ``entry_id``."""
    for cid, s, e in _children(buf, start, end):
        if cid == entry_id:
            yield s, e


def _uints(buf: bytes, start: int, end: int, names: dict[int, str]) -> dict[str, int]:
    """The unsigned-integer children of ``buf[start:end]`` that ``names`` lists, by their name."""
    return {names[gid]: _uint(buf[gs:ge]) for gid, gs, ge in _children(buf, start, end) if gid in names}


def _tracks(buf: bytes, start: int, end: int) -> dict[int, dict]:
    out: dict[int, dict] = {}
    fields = {_TRACK_NUMBER: "number", _TRACK_UID: "uid", _TRACK_TYPE: "type", _DEFAULT_DURATION: "default_ns"}
    for s, e in _entries(buf, start, end, _TRACK_ENTRY):
        t = _uints(buf, s, e, fields)
        out[t.get("uid", t.get("number", len(out)))] = t
    return out


def _tags(buf: bytes, start: int, end: int) -> dict[int, float]:
    """Track UID -> its DURATION tag, in seconds."""
    out = {}
    for s, e in _entries(buf, start, end, _TAG):
        uids, seconds = [], None
        for gid, gs, ge in _children(buf, s, e):
            if gid == _TARGETS:
                uids += [_uint(buf[x:y]) for tid, x, y in _children(buf, gs, ge) if tid == _TAG_TRACK_UID]
            elif gid == _SIMPLE_TAG:
                name = value = ""
                for tid, x, y in _children(buf, gs, ge):
                    if tid == _TAG_NAME:
                        name = buf[x:y].decode("utf-8", "replace").rstrip("\0")
                    elif tid == _TAG_STRING:
                        value = buf[x:y].decode("utf-8", "replace").rstrip("\0")
                if name.upper() == "DURATION":
                    seconds = _hms_seconds(value)
        if seconds is not None and seconds > 0:
            for uid in uids:
                out[uid] = seconds
    return out


def _cues(buf: bytes, start: int, end: int) -> dict[int, float]:
    """Track number -> time of its last Cue point, in ticks of the TimecodeScale."""
    out: dict[int, float] = {}
    for s, e in _entries(buf, start, end, _CUE_POINT):
        time, numbers = None, []
        for gid, gs, ge in _children(buf, s, e):
            if gid == _CUE_TIME:
                time = _uint(buf[gs:ge])
            elif gid == _CUE_TRACK_POSITIONS:
                numbers += [_uint(buf[x:y]) for tid, x, y in _children(buf, gs, ge) if tid == _CUE_TRACK]
        if time is not None:
            for n in numbers:
                out[n] = max(out.get(n, 0), time)
    return out


def webm_duration(path: str | os.PathLike[str]) -> float | None:
    """The duration in seconds a Matroska/WebM file declares in its Segment Info; None if it has none."""
    layout = read_layout(path)
    return None if layout is None else layout.duration_s


def video_extent(layout: Layout) -> Extent | None:
    """Where the video track ends, by the file's own declarations (see the module docstring)."""
    video = layout.video
    if video is not None and video.duration_s:
        return Extent(video.duration_s, "the video track's DURATION tag", True)
    if layout.duration_s and len(layout.tracks) <= 1:
        return Extent(layout.duration_s, "the header's Duration (its only track)", True)
    if video is not None and video.last_cue_s:
        return Extent(video.last_cue_s, "the video track's last Cue point", False)
    return None


def check_complete(path: str | os.PathLike[str], frames: int, end_s: float, fps: float) -> None:
    """Raise ``ValueError`` when the file is cut short or the decodable frames (``frames``, ending at
    ``end_s``) stop well before the video track's declared extent."""
    layout = read_layout(path)
    if layout is None:
        return
    if layout.segment_end is not None and layout.segment_end > layout.file_bytes:
        raise ValueError(
            f"truncated or damaged: the header declares {layout.segment_end} bytes but the file has only "
            f"{layout.file_bytes} ({frames} frames decode, ending at {end_s:.3f} s)"
        )
    extent = video_extent(layout)
    if extent is None:
        return
    declared = extent.seconds
    frame_s = 1.0 / fps if fps > 0 else declared / max(frames, 1)
    slack = max(TRUNCATION_SLACK_FRAMES * frame_s, TRUNCATION_SLACK_FRACTION * declared)
    if end_s < declared - slack:
        expect = f" (~{round(declared * fps)} frames)" if fps > 0 and extent.exact else ""
        raise ValueError(
            f"truncated or damaged: {extent.source} says {declared:.3f} s{expect} but only {frames} "
            f"frames decode, ending at {end_s:.3f} s"
        )


def lacks_duration(path: str | os.PathLike[str]) -> bool:
    """A Matroska/WebM file without a Segment Duration (written in live mode or to a pipe)."""
    layout = read_layout(path)
    return layout is not None and layout.duration_s is None


def remedy_for(text: str) -> str | None:
    """The specific fix for a decode failure this module's messages name (None: no specific one).

    For :mod:`ssv2_fixtures.run.outcome`'s ``decode_error`` remedy: the message travels as text from
    the child (``ClipDecodeError`` in a worker → the child's error event)."""
    return NO_DURATION_REMEDY if NO_DURATION_MARK in text else None


__all__ = [
    "Layout",
    "Track",
    "Extent",
    "read_layout",
    "video_extent",
    "check_complete",
    "webm_duration",
    "lacks_duration",
    "remedy_for",
    "NO_DURATION_REMEDY",
]
