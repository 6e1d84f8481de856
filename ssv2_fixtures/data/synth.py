"""Synthetic Something-Something-v2 fixture sets in the official SSv2 layout.

The stress suite needs SSv2-shaped data (VP9/VP8 ``.webm`` clips at 12 fps,
240 px high, the four annotation JSON files) without downloading 19 GiB of
real video.  This module encodes a small pool of *smooth* synthetic clips
(gradient background plus a few moving shapes -- noise would encode ~100x
slower and decode unlike real footage) and writes annotation files that
match the real schema.  With ``full_size`` the annotation files have the
real split sizes and every one of the 220,847 video files is a hard link to
one of the pool clips, so directory-listing and path-handling costs are
realistic while the disk cost stays at a few hundred KiB.

Layout written under ``root``::

    20bn-something-something-v2/<id>.webm
    something-something-v2-{labels,train,validation,test}.json   (naming "20bn")
    labels/{labels,train,validation,test}.json, labels/test-answers.csv
                                                                   (naming "labels")
    .pool/clip_NNNN.webm                                           (full_size only)
    synth.json                                                     (manifest)

Sets are published atomically: everything is built in a temporary sibling
directory and then ``os.rename``-d into place, and ``synth.json`` is the
last file written, so a reader never sees a half-built set.

Only numpy, PyAV and the standard library are imported here: the module is
loaded by the pytest plugin process and by encoder child processes, neither
of which should pay for (or fork with) torch/decord.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import errno
import hashlib
import json
import multiprocessing
import os
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import av
import numpy as np

__all__ = [
    "GENERATOR_VERSION",
    "SynthSpec",
    "build_synthetic",
    "ensure_synthetic",
    "default_cache_dir",
    "read_manifest",
    "frames_by_id",
    "main",
    "TEMPLATES",
    "FULL_SIZE_SPLITS",
    "VIDEO_DIR",
    "MANIFEST",
]

# Bump whenever the bytes or the layout produced for a given spec change:
# it is part of the cache key, so stale caches are never reused.
GENERATOR_VERSION: int = 1

VIDEO_DIR = "20bn-something-something-v2"
POOL_DIR = ".pool"
MANIFEST = "synth.json"
HEIGHT = 240
FPS = 12
WIDTHS: tuple[int, ...] = (320, 352, 400, 427)  # 427 is odd on purpose (real SSv2 has it)
MIN_FRAMES, MAX_FRAMES = 24, 60  # 2-5 s at 12 fps
MAX_ID = 220_847  # real SSv2 ids are 1..220847
FULL_SIZE_SPLITS: dict[str, int] = {"train": 168_913, "validation": 24_777, "test": 27_157}
NUM_CLASSES = 174
CODECS: dict[str, tuple[str, dict[str, str]]] = {
    "vp9": ("libvpx-vp9", {"deadline": "realtime", "cpu-used": "8"}),
    "vp8": ("libvpx", {"deadline": "realtime", "cpu-used": "16"}),
}
NAMINGS = ("20bn", "labels")
_BIT_RATE = 300_000  # close to real SSv2 clips, so decode cost is comparable
_TMP_TAG = ".tmp-"


# --------------------------------------------------------------------------- templates

# Real SSv2 templates; the rest of the 174 are generated below.
_REAL_TEMPLATES: tuple[str, ...] = (
    "Holding [something] next to [something]",
    "Holding [something] behind [something]",
    "Pushing [something] from left to right",
    "Pushing [something] from right to left",
    "[Something] falling like a rock",
    "[Something] falling like a feather or paper",
    "[Something] colliding with [something] and both come to a halt",
    "[Something] colliding with [something] and both are being deflected",
    "[Something] being deflected from [something]",
    "Putting [something] on a surface",
    "Putting [something] next to [something]",
    "Moving [something] up",
    "Moving [something] down",
    "Turning [something] upside down",
    "Tearing [something] into two pieces",
    "Tearing [something] just a little bit",
    "Pretending to pick [something] up",
    "Covering [something] with [something]",
    "Uncovering [something]",
    "Dropping [something] into [something]",
    "Opening [something]",
    "Closing [something]",
    "Squeezing [something]",
    "Letting [something] roll along a flat surface",
    "Throwing [something] in the air and catching it",
    "Wiping [something] off of [something]",
)

_GEN_VERBS = (
    "Lifting", "Rolling", "Spinning", "Shaking", "Sliding", "Poking", "Tilting",
    "Stacking", "Rotating", "Tapping", "Flicking", "Nudging", "Balancing",
)
_GEN_SUFFIXES = (
    "slowly", "quickly", "towards the camera", "away from the camera",
    "behind [something]", "onto [something]", "with [something]",
    "across [something]", "in front of [something]", "until it stops",
    "a few times", "without touching it",
)
_GEN_SUBJECT_SUFFIXES = (
    "sliding down [something]", "rolling off [something]", "tipping over",
    "bouncing on a surface", "spinning in place", "being pulled by [something]",
)


def _make_templates() -> tuple[str, ...]:
    out: list[str] = list(_REAL_TEMPLATES)
    seen = {t.replace("[", "").replace("]", "").lower() for t in out}
    candidates = [f"[Something] {s}" for s in _GEN_SUBJECT_SUFFIXES]
    candidates += [f"{v} [something] {s}" for v in _GEN_VERBS for s in _GEN_SUFFIXES]
    for c in candidates:
        plain = c.replace("[", "").replace("]", "").lower()
        if plain not in seen:
            seen.add(plain)
            out.append(c)
        if len(out) == NUM_CLASSES:
            break
    assert len(out) == NUM_CLASSES, len(out)
    return tuple(out)


TEMPLATES: tuple[str, ...] = _make_templates()

_OBJECTS = (
    "a cup", "a pen", "a book", "a phone", "a remote control", "a bottle",
    "a spoon", "a coin", "a tissue", "a box", "a ball", "a key", "a shoe",
    "a pillow", "a mug", "a lighter", "a paper", "a toy car", "a banana",
    "a glass", "scissors", "a charger", "a wallet", "a towel",
)


def _plain(template: str) -> str:
    """Template with the placeholder brackets removed (labels.json key form)."""
    return template.replace("[", "").replace("]", "")


def _slot_count(template: str) -> int:
    return template.lower().count("[something]")


def _fill(template: str, placeholders: Sequence[str]) -> str:
    """Lower-case the template and put the placeholders into its slots, in order."""
    parts = template.lower().split("[something]")
    out = parts[0]
    for obj, rest in zip(placeholders, parts[1:]):
        out += obj + rest
    return out


def _labels_index() -> dict[str, str]:
    # Real SSv2 numbers the templates alphabetically; values are strings.
    return {name: str(i) for i, name in enumerate(sorted(_plain(t) for t in TEMPLATES))}


# --------------------------------------------------------------------------- spec


@dataclass(frozen=True)
class SynthSpec:
    """What to build; two equal specs produce identical sets (same ``key()``)."""

    videos: int = 64  # number of distinct encoded clips
    codec: str = "vp9"  # "vp9" | "vp8"
    seed: int = 0
    full_size: bool = False
    naming: str = "20bn"  # "20bn" | "labels"

    def __post_init__(self) -> None:
        if isinstance(self.videos, bool) or not isinstance(self.videos, int) or self.videos < 3:
            raise ValueError(
                f"videos={self.videos!r}: need an integer >= 3 (one clip each for train, "
                "validation and test); pass videos=3 or more"
            )
        if self.videos > MAX_ID:
            raise ValueError(
                f"videos={self.videos}: more clips than SSv2 has videos ({MAX_ID}); "
                f"pass videos <= {MAX_ID}"
            )
        if self.codec not in CODECS:
            raise ValueError(
                f"codec={self.codec!r}: unknown codec; pass one of {', '.join(sorted(CODECS))}"
            )
        if self.naming not in NAMINGS:
            raise ValueError(
                f"naming={self.naming!r}: unknown naming; pass one of {', '.join(NAMINGS)}"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed={self.seed!r}: need a non-negative integer")

    def key(self) -> str:
        """Content address: first 16 hex chars of sha256(json(fields + version))."""
        payload = dict(dataclasses.asdict(self), generator_version=GENERATOR_VERSION)
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


# --------------------------------------------------------------------------- clips


@dataclass(frozen=True)
class _ClipJob:
    path: str
    codec: str
    seed: int
    index: int


def _clip_params(seed: int, index: int) -> tuple[np.random.Generator, int, int]:
    # Seeded per (seed, index) so clips are identical whatever the process layout.
    rng = np.random.default_rng([seed, index, 0x55F2])
    width = int(rng.choice(WIDTHS))
    frames = int(rng.integers(MIN_FRAMES, MAX_FRAMES + 1))
    return rng, width, frames


def _frames(rng: np.random.Generator, width: int, n: int) -> Iterator[np.ndarray]:
    """Smooth content: a static two-colour gradient and 1-3 shapes bouncing linearly."""
    h, w = HEIGHT, width
    c0, c1 = rng.integers(0, 256, size=(2, 3))
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = (np.cos(angle) * xx / w + np.sin(angle) * yy / h)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    bg = (c0 * (1 - ramp[..., None]) + c1 * ramp[..., None]).astype(np.uint8)

    shapes = []
    for _ in range(int(rng.integers(1, 4))):
        size = int(rng.integers(24, 80))
        shapes.append(
            (
                bool(rng.integers(0, 2)),  # disc?
                size,
                rng.uniform(0, w - size), rng.uniform(0, h - size),  # start
                rng.uniform(-6, 6), rng.uniform(-4, 4),  # px per frame
                rng.integers(0, 256, size=3).astype(np.uint8),
            )
        )
    discs = {s: ((np.mgrid[0:s, 0:s] - (s - 1) / 2) ** 2).sum(0) <= (s / 2) ** 2
             for disc, s, *_ in shapes if disc}

    def bounce(p: float, span: float) -> int:
        # Triangle wave keeps the shape inside the frame without branching logic.
        span = max(span, 1.0)
        p = p % (2 * span)
        return int(p if p <= span else 2 * span - p)

    for t in range(n):
        f = bg.copy()
        for disc, s, x0, y0, vx, vy, col in shapes:
            x, y = bounce(x0 + vx * t, w - s), bounce(y0 + vy * t, h - s)
            if disc:
                f[y:y + s, x:x + s][discs[s]] = col
            else:
                f[y:y + s, x:x + s] = col
        yield f


def _encode_clip(job: _ClipJob) -> dict[str, Any]:
    """Encode one clip; returns its manifest entry (minus the relative file name)."""
    rng, width, n = _clip_params(job.seed, job.index)
    codec_name, options = CODECS[job.codec]
    packets = 0
    # +bitexact keeps the muxer from writing random segment UIDs: same spec, same bytes.
    with av.open(job.path, "w", format="webm", container_options={"fflags": "+bitexact"}) as out:
        stream = out.add_stream(codec_name, rate=FPS, options=dict(options))
        assert isinstance(stream, av.VideoStream)  # narrows add_stream's union for the type checker
        stream.width, stream.height = width, HEIGHT
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = _BIT_RATE
        # One thread per encoder: clips are parallelised across processes instead,
        # and a single thread keeps the output byte-deterministic.
        stream.codec_context.thread_count = 1
        for t, arr in enumerate(_frames(rng, width, n)):
            frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
            frame.pts = t
            for pkt in stream.encode(frame):
                out.mux(pkt)
                packets += 1
        for pkt in stream.encode(None):
            out.mux(pkt)
            packets += 1
    if packets != n:  # a dropped frame would make the manifest lie about frame counts
        raise RuntimeError(f"{job.path}: encoder produced {packets} packets for {n} frames")
    return {"frames": n, "width": width, "height": HEIGHT, "fps": FPS, "codec": job.codec}


def _check_processes(processes: int | None) -> None:
    if processes is not None and (isinstance(processes, bool) or processes < 1):
        raise ValueError(f"processes={processes!r}: need >= 1, or None for os.cpu_count()")


def _spawn_can_start() -> bool:
    # spawn re-imports the parent's __main__ by path; a main read from stdin
    # ("python - < script") has a __file__ that is not a file and would kill every child.
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    return main_file is None or os.path.exists(main_file)


def _encode_all(jobs: list[_ClipJob], processes: int | None) -> list[dict[str, Any]]:
    _check_processes(processes)
    procs = (os.cpu_count() or 1) if processes is None else processes
    procs = min(procs, len(jobs))
    if procs == 1 or not _spawn_can_start():
        return [_encode_clip(j) for j in jobs]
    # spawn, not fork: the caller may be a pytest process with torch/OpenMP threads,
    # and forking those can deadlock.  Children import only this module (numpy + av).
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=procs, mp_context=ctx) as pool:
        return list(pool.map(_encode_clip, jobs))


# --------------------------------------------------------------------------- annotations


def _split_sizes(n: int) -> dict[str, int]:
    train = max(1, round(0.75 * n))
    val = max(1, round(0.15 * n))
    while n - train - val < 1:  # test needs at least one; take it from the largest split
        if train >= val and train > 1:
            train -= 1
        else:
            val -= 1
    return {"train": train, "validation": val, "test": n - train - val}


def _annotate(ids: Sequence[str], rng: np.random.Generator) -> list[dict[str, Any]]:
    classes = rng.integers(0, NUM_CLASSES, size=len(ids))
    objs = rng.integers(0, len(_OBJECTS), size=(len(ids), 2))
    out = []
    for vid, c, (o1, o2) in zip(ids, classes.tolist(), objs.tolist()):
        template = TEMPLATES[c]
        ph = [_OBJECTS[o1], _OBJECTS[o2]][: _slot_count(template)]
        out.append({"id": vid, "label": _fill(template, ph), "template": template,
                    "placeholders": ph})
    return out


def _annotation_paths(naming: str) -> dict[str, str]:
    if naming == "20bn":
        return {k: f"something-something-v2-{k}.json"
                for k in ("labels", "train", "validation", "test")}
    paths = {k: f"labels/{k}.json" for k in ("labels", "train", "validation", "test")}
    paths["test_answers"] = "labels/test-answers.csv"
    return paths


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f)


# --------------------------------------------------------------------------- build


def _build_into(tmp: Path, spec: SynthSpec, processes: int | None) -> None:
    """Write a complete set into the (empty, private) directory ``tmp``."""
    rng = np.random.default_rng([spec.seed, 0xA11])
    video_dir = tmp / VIDEO_DIR
    video_dir.mkdir()

    if spec.full_size:
        # Ids are exactly 1..220847 (like real SSv2), shuffled across splits.
        sizes = dict(FULL_SIZE_SPLITS)
        all_ids = [str(i) for i in (rng.permutation(MAX_ID) + 1).tolist()]
        (tmp / POOL_DIR).mkdir()
        clip_files = [f"{POOL_DIR}/clip_{i:04d}.webm" for i in range(spec.videos)]
    else:
        sizes = _split_sizes(spec.videos)
        all_ids = [str(i) for i in (rng.choice(MAX_ID, size=spec.videos, replace=False) + 1).tolist()]
        clip_files = [f"{VIDEO_DIR}/{vid}.webm" for vid in all_ids]

    jobs = [_ClipJob(str(tmp / f), spec.codec, spec.seed, i) for i, f in enumerate(clip_files)]
    clips = _encode_all(jobs, processes)
    for i, (entry, f) in enumerate(zip(clips, clip_files)):
        entry["file"] = f
        if not spec.full_size:
            entry["id"] = all_ids[i]

    if spec.full_size:
        # Hard links, not copies: 220,847 directory entries for ~N clips of disk.
        # Clip for id k is clips[(k - 1) % N]; see frames_by_id().
        # Filesystems cap links per inode (ext4: 65,000; btrfs far fewer within one
        # directory), so on EMLINK the clip is copied to a byte-identical replica in
        # the pool and linking continues from that.
        sources = [str(tmp / f) for f in clip_files]
        n, link, vd = spec.videos, os.link, str(video_dir)
        for k in range(1, MAX_ID + 1):
            i = (k - 1) % n
            try:
                link(sources[i], f"{vd}/{k}.webm")
            except OSError as e:
                if e.errno != errno.EMLINK:
                    raise
                reps = clips[i].setdefault("replicas", [])
                rep = f"{POOL_DIR}/clip_{i:04d}.r{len(reps) + 1}.webm"
                shutil.copyfile(tmp / clip_files[i], tmp / rep)
                reps.append(rep)
                sources[i] = str(tmp / rep)
                link(sources[i], f"{vd}/{k}.webm")

    t_end = sizes["train"]
    v_end = t_end + sizes["validation"]
    split_ids = {"train": all_ids[:t_end], "validation": all_ids[t_end:v_end],
                 "test": all_ids[v_end:]}
    ann = {s: _annotate(split_ids[s], rng) for s in ("train", "validation", "test")}

    paths = _annotation_paths(spec.naming)
    _write_json(tmp / paths["labels"], _labels_index())
    _write_json(tmp / paths["train"], ann["train"])
    _write_json(tmp / paths["validation"], ann["validation"])
    _write_json(tmp / paths["test"], [{"id": e["id"]} for e in ann["test"]])
    if "test_answers" in paths:
        with open(tmp / paths["test_answers"], "w", encoding="utf-8") as answers:
            answers.writelines(f"{e['id']};{_plain(e['template'])}\n" for e in ann["test"])

    manifest = {
        "generator_version": GENERATOR_VERSION,
        "key": spec.key(),
        "spec": dataclasses.asdict(spec),
        "video_dir": VIDEO_DIR,
        "annotations": paths,
        "splits": {s: len(split_ids[s]) for s in ("train", "validation", "test")},
        "num_videos": len(all_ids),
        "num_classes": NUM_CLASSES,
        # "direct": each clip is its own video (entry has "id");
        # "round_robin": video id k is a hard link to clips[(k - 1) % len(clips)]
        # (to its "file" or, past the filesystem's link limit, one of its "replicas").
        "assignment": "round_robin" if spec.full_size else "direct",
        "clips": clips,
        "complete": True,
    }
    # Written last: a set with a manifest is a complete set.
    _write_json(tmp / MANIFEST, manifest)


def _make_tmp(target: Path) -> Path:
    # Same directory as the target, so the final rename is on one filesystem and atomic.
    # Host and pid in the name let later runs recognise orphans of killed builders.
    prefix = f".{target.name}{_TMP_TAG}{socket.gethostname()}-{os.getpid()}-"
    return Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))


def _is_complete(root: Path) -> bool:
    try:
        return bool(read_manifest(root).get("complete"))
    except (OSError, ValueError):
        return False


def _publish(tmp: Path, target: Path) -> bool:
    """Rename ``tmp`` to ``target``; False (and ``tmp`` removed) if ``target`` already exists.

    rename(2) onto an existing *non-empty* directory fails, so exactly one builder wins.
    """
    try:
        os.rename(tmp, target)
        return True
    except OSError as e:
        if e.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR, errno.ENOTDIR):
            raise
        shutil.rmtree(tmp, ignore_errors=True)
        return False


def _build_beside(target: Path, spec: SynthSpec, processes: int | None) -> Path:
    """Build into a fresh temp folder next to ``target`` (same filesystem, for the atomic rename)."""
    tmp = _make_tmp(target)
    try:
        _build_into(tmp, spec, processes)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp


def build_synthetic(out: str | os.PathLike[str], spec: SynthSpec,
                    processes: int | None = None) -> Path:
    """Build the set described by ``spec`` at ``out`` (which must not exist); returns ``out``.

    Built in a temporary sibling of ``out`` and renamed into place, so ``out``
    either does not exist or is complete.
    """
    _check_processes(processes)
    target = Path(out).absolute()
    if target.exists():
        raise FileExistsError(
            f"{target} already exists; remove it or choose another output directory "
            "(build_synthetic never overwrites)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _build_beside(target, spec, processes)
    if not _publish(tmp, target):
        raise FileExistsError(f"{target} appeared while building; left it untouched")
    return target


def default_cache_dir() -> Path:
    """``$SSV2_STRESS_CACHE`` if set, else ``~/.cache/ssv2-stress``."""
    env = os.environ.get("SSV2_STRESS_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ssv2-stress"


@contextlib.contextmanager
def _build_lock(path: Path) -> Iterator[None]:
    """Best-effort exclusive lock so concurrent callers wait instead of all encoding.

    Correctness does not depend on it (the atomic rename does); it only saves CPU
    when, e.g., every pytest-xdist worker asks for the same set at start-up.
    """
    try:
        import fcntl
    except ImportError:  # non-POSIX: fall back to racing on the rename
        yield
        return
    with open(path, "a+b") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX)
        except OSError:  # e.g. a filesystem without flock support
            yield
            return
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _remove_orphans(target: Path) -> None:
    """Delete temp dirs of this target left by builders on this host that died."""
    host = socket.gethostname()
    for p in target.parent.glob(f".{target.name}{_TMP_TAG}{host}-*"):
        try:
            pid = int(p.name[len(f".{target.name}{_TMP_TAG}{host}-"):].split("-", 1)[0])
        except ValueError:
            continue
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(p, ignore_errors=True)
        except PermissionError:
            pass  # alive, owned by someone else


def ensure_synthetic(spec: SynthSpec, cache_dir: str | os.PathLike[str] | None = None,
                     processes: int | None = None) -> Path:
    """Return ``<cache_dir>/ssv2-synth-<spec.key()>``, building it first if needed.

    Safe to call from several processes at once: each either returns the
    already-complete set or builds privately and renames into place; a loser
    of the rename race deletes its own copy and returns the winner's.
    """
    return _ensure(spec, cache_dir, processes, use_lock=True)


def _ensure(spec: SynthSpec, cache_dir: str | os.PathLike[str] | None,
            processes: int | None, use_lock: bool) -> Path:
    # use_lock=False is the path taken where flock is unavailable; tests use it to
    # exercise the rename race directly.
    _check_processes(processes)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = cache.absolute() / f"ssv2-synth-{spec.key()}"
    if _is_complete(target):
        return target
    cache.mkdir(parents=True, exist_ok=True)
    lock = (_build_lock(target.with_name(target.name + ".lock")) if use_lock
            else contextlib.nullcontext())
    with lock:
        if _is_complete(target):  # someone else finished while we waited
            return target
        if target.exists():
            raise RuntimeError(
                f"{target} exists but has no complete {MANIFEST}; it was not made by "
                "ensure_synthetic (which publishes atomically). Delete it and retry."
            )
        _remove_orphans(target)
        tmp = _build_beside(target, spec, processes)
        if not _publish(tmp, target) and not _is_complete(target):
            raise RuntimeError(f"{target} appeared while building but is not a complete set")
    return target


def read_manifest(root: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``synth.json`` manifest of a set (spec, splits, per-clip frames/width/fps/codec)."""
    with open(Path(root) / MANIFEST, encoding="utf-8") as f:
        return json.load(f)


def frames_by_id(root: str | os.PathLike[str]) -> dict[str, int]:
    """Map every video id in the set to its frame count (works for full_size sets too)."""
    m = read_manifest(root)
    clips = m["clips"]
    if m["assignment"] == "direct":
        return {c["id"]: c["frames"] for c in clips}
    n = len(clips)
    return {str(k): clips[(k - 1) % n]["frames"] for k in range(1, m["num_videos"] + 1)}


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m ssv2_fixtures.synth",
        description="Build a synthetic Something-Something-v2 fixture set (official layout).",
    )
    p.add_argument("out", help="output directory (must not exist)")
    p.add_argument("--videos", type=int, default=SynthSpec.videos,
                   help="number of distinct encoded clips (>= 3; default %(default)s)")
    p.add_argument("--codec", default=SynthSpec.codec, help="vp9 | vp8 (default %(default)s)")
    p.add_argument("--seed", type=int, default=SynthSpec.seed)
    p.add_argument("--full-size", action="store_true",
                   help="real split sizes (220,847 videos) as hard links to the clip pool")
    p.add_argument("--naming", default=SynthSpec.naming,
                   help="20bn (something-something-v2-*.json) | labels (labels/*.json)")
    p.add_argument("--processes", type=int, default=None,
                   help="encoder processes (default: os.cpu_count())")
    a = p.parse_args(argv)
    try:
        _check_processes(a.processes)
        spec = SynthSpec(videos=a.videos, codec=a.codec, seed=a.seed,
                         full_size=a.full_size, naming=a.naming)
        t0 = time.perf_counter()
        root = build_synthetic(a.out, spec, processes=a.processes)
    except (ValueError, FileExistsError) as e:
        print(f"synth: error: {e}", file=sys.stderr)
        return 2
    m = read_manifest(root)
    print(f"built {root} ({len(m['clips'])} clips, {m['num_videos']} videos, "
          f"splits {m['splits']}) in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
