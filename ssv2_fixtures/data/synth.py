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

The clip encoder is :mod:`~ssv2_fixtures.data.synth_encode` and the annotation text
:mod:`~ssv2_fixtures.data.synth_templates`; this module lays out, publishes and caches sets
(and re-exports the public names of both).

Only numpy, PyAV and the standard library are imported here: the module is
loaded by the pytest plugin process and by encoder child processes, neither
of which should pay for (or fork with) torch/decord.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import hashlib
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .synth_encode import CODECS, FPS, HEIGHT, ClipJob, check_processes, encode_all
from .synth_templates import NUM_CLASSES, TEMPLATES, annotate, labels_index, plain

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
    "NUM_CLASSES",  # the rest are re-exported from synth_templates / synth_encode
    "CODECS",
    "FPS",
    "HEIGHT",
]

# Bump whenever the bytes or the layout produced for a given spec change:
# it is part of the cache key, so stale caches are never reused.
GENERATOR_VERSION: int = 1

VIDEO_DIR = "20bn-something-something-v2"
POOL_DIR = ".pool"
MANIFEST = "synth.json"
MAX_ID = 220_847  # real SSv2 ids are 1..220847
FULL_SIZE_SPLITS: dict[str, int] = {"train": 168_913, "validation": 24_777, "test": 27_157}
NAMINGS = ("20bn", "labels")
_TMP_TAG = ".tmp-"


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
                f"videos={self.videos}: more clips than SSv2 has videos ({MAX_ID}); pass videos <= {MAX_ID}"
            )
        if self.codec not in CODECS:
            raise ValueError(f"codec={self.codec!r}: unknown codec; pass one of {', '.join(sorted(CODECS))}")
        if self.naming not in NAMINGS:
            raise ValueError(f"naming={self.naming!r}: unknown naming; pass one of {', '.join(NAMINGS)}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed={self.seed!r}: need a non-negative integer")

    def key(self) -> str:
        """Content address: first 16 hex chars of sha256(json(fields + version))."""
        payload = dict(dataclasses.asdict(self), generator_version=GENERATOR_VERSION)
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


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


def _annotation_paths(naming: str) -> dict[str, str]:
    if naming == "20bn":
        return {k: f"something-something-v2-{k}.json" for k in ("labels", "train", "validation", "test")}
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
    sizes, all_ids, clip_files = _plan_ids(tmp, spec, rng)
    jobs = [ClipJob(str(tmp / f), spec.codec, spec.seed, i) for i, f in enumerate(clip_files)]
    clips = encode_all(jobs, processes)
    for i, (entry, f) in enumerate(zip(clips, clip_files)):
        entry["file"] = f
        if not spec.full_size:
            entry["id"] = all_ids[i]
    if spec.full_size:
        _link_round_robin(tmp, video_dir, clips, clip_files)

    t_end = sizes["train"]
    v_end = t_end + sizes["validation"]
    split_ids = {"train": all_ids[:t_end], "validation": all_ids[t_end:v_end], "test": all_ids[v_end:]}
    paths = _write_annotations(tmp, spec.naming, split_ids, rng)
    # Written last: a set with a manifest is a complete set.
    _write_json(tmp / MANIFEST, _manifest(spec, paths, split_ids, clips))


def _plan_ids(tmp: Path, spec: SynthSpec, rng: np.random.Generator) -> tuple[dict[str, int], list[str], list[str]]:
    """Split sizes, every video id (in split order) and the clip files to encode."""
    if spec.full_size:
        # Ids are exactly 1..220847 (like real SSv2), shuffled across splits.
        all_ids = [str(i) for i in (rng.permutation(MAX_ID) + 1).tolist()]
        (tmp / POOL_DIR).mkdir()
        return (dict(FULL_SIZE_SPLITS), all_ids, [f"{POOL_DIR}/clip_{i:04d}.webm" for i in range(spec.videos)])
    all_ids = [str(i) for i in (rng.choice(MAX_ID, size=spec.videos, replace=False) + 1).tolist()]
    return _split_sizes(spec.videos), all_ids, [f"{VIDEO_DIR}/{vid}.webm" for vid in all_ids]


def _link_round_robin(tmp: Path, video_dir: Path, clips: list[dict[str, Any]], clip_files: list[str]) -> None:
    """Video id k becomes a hard link to clips[(k - 1) % N]; see frames_by_id().

    Hard links, not copies: 220,847 directory entries for ~N clips of disk.  Filesystems cap
    links per inode (ext4: 65,000; btrfs far fewer within one directory), so on EMLINK the clip
    is copied to a byte-identical replica in the pool and linking continues from that.
    """
    sources = [str(tmp / f) for f in clip_files]
    n, link, vd = len(clip_files), os.link, str(video_dir)
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


def _write_annotations(
    tmp: Path, naming: str, split_ids: dict[str, list[str]], rng: np.random.Generator
) -> dict[str, str]:
    """labels.json and the three split files (plus test-answers.csv for "labels"); their paths."""
    ann = {s: annotate(split_ids[s], rng) for s in ("train", "validation", "test")}
    paths = _annotation_paths(naming)
    _write_json(tmp / paths["labels"], labels_index())
    _write_json(tmp / paths["train"], ann["train"])
    _write_json(tmp / paths["validation"], ann["validation"])
    _write_json(tmp / paths["test"], [{"id": e["id"]} for e in ann["test"]])
    if "test_answers" in paths:
        with open(tmp / paths["test_answers"], "w", encoding="utf-8") as answers:
            answers.writelines(f"{e['id']};{plain(e['template'])}\n" for e in ann["test"])
    return paths


def _manifest(
    spec: SynthSpec, paths: dict[str, str], split_ids: dict[str, list[str]], clips: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "generator_version": GENERATOR_VERSION,
        "key": spec.key(),
        "spec": dataclasses.asdict(spec),
        "video_dir": VIDEO_DIR,
        "annotations": paths,
        "splits": {s: len(split_ids[s]) for s in ("train", "validation", "test")},
        "num_videos": sum(len(v) for v in split_ids.values()),
        "num_classes": NUM_CLASSES,
        # "direct": each clip is its own video (entry has "id");
        # "round_robin": video id k is a hard link to clips[(k - 1) % len(clips)]
        # (to its "file" or, past the filesystem's link limit, one of its "replicas").
        "assignment": "round_robin" if spec.full_size else "direct",
        "clips": clips,
        "complete": True,
    }


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


def build_synthetic(out: str | os.PathLike[str], spec: SynthSpec, processes: int | None = None) -> Path:
    """Build the set described by ``spec`` at ``out`` (which must not exist); returns ``out``.

    Built in a temporary sibling of ``out`` and renamed into place, so ``out``
    either does not exist or is complete.
    """
    check_processes(processes)
    target = Path(out).absolute()
    if target.exists():
        raise FileExistsError(
            f"{target} already exists; remove it or choose another output directory (build_synthetic never overwrites)"
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
            pid = int(p.name[len(f".{target.name}{_TMP_TAG}{host}-") :].split("-", 1)[0])
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


def ensure_synthetic(
    spec: SynthSpec, cache_dir: str | os.PathLike[str] | None = None, processes: int | None = None
) -> Path:
    """Return ``<cache_dir>/ssv2-synth-<spec.key()>``, building it first if needed.

    Safe to call from several processes at once: each either returns the
    already-complete set or builds privately and renames into place; a loser
    of the rename race deletes its own copy and returns the winner's.
    """
    return _ensure(spec, cache_dir, processes, use_lock=True)


def _ensure(spec: SynthSpec, cache_dir: str | os.PathLike[str] | None, processes: int | None, use_lock: bool) -> Path:
    # use_lock=False is the path taken where flock is unavailable; tests use it to
    # exercise the rename race directly.
    check_processes(processes)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = cache.absolute() / f"ssv2-synth-{spec.key()}"
    if _is_complete(target):
        return target
    cache.mkdir(parents=True, exist_ok=True)
    lock = _build_lock(target.with_name(target.name + ".lock")) if use_lock else contextlib.nullcontext()
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
    p.add_argument(
        "--videos",
        type=int,
        default=SynthSpec.videos,
        help="number of distinct encoded clips (>= 3; default %(default)s)",
    )
    p.add_argument("--codec", default=SynthSpec.codec, help="vp9 | vp8 (default %(default)s)")
    p.add_argument("--seed", type=int, default=SynthSpec.seed)
    p.add_argument(
        "--full-size", action="store_true", help="real split sizes (220,847 videos) as hard links to the clip pool"
    )
    p.add_argument(
        "--naming", default=SynthSpec.naming, help="20bn (something-something-v2-*.json) | labels (labels/*.json)"
    )
    p.add_argument("--processes", type=int, default=None, help="encoder processes (default: os.cpu_count())")
    a = p.parse_args(argv)
    try:
        check_processes(a.processes)
        spec = SynthSpec(videos=a.videos, codec=a.codec, seed=a.seed, full_size=a.full_size, naming=a.naming)
        t0 = time.perf_counter()
        root = build_synthetic(a.out, spec, processes=a.processes)
    except (ValueError, FileExistsError) as e:
        print(f"synth: error: {e}", file=sys.stderr)
        return 2
    m = read_manifest(root)
    print(
        f"built {root} ({len(m['clips'])} clips, {m['num_videos']} videos, "
        f"splits {m['splits']}) in {time.perf_counter() - t0:.1f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
