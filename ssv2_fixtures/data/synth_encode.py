"""Encoding the synthetic clips: smooth content (a gradient and a few moving shapes) as VP9/VP8 WebM.

Noise would encode ~100x slower and decode unlike real footage.  Each clip is seeded by
``(seed, index)``, so the bytes do not depend on how clips are spread over processes.
:mod:`ssv2_fixtures.data.synth` lays the clips out as an SSv2 set.  Imports only numpy, PyAV and
the stdlib: spawned encoder children import this module and nothing heavier.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import av
import numpy as np

__all__ = [
    "HEIGHT",
    "FPS",
    "WIDTHS",
    "MIN_FRAMES",
    "MAX_FRAMES",
    "CODECS",
    "ClipJob",
    "encode_clip",
    "encode_all",
    "check_processes",
]

HEIGHT = 240
FPS = 12
WIDTHS: tuple[int, ...] = (320, 352, 400, 427)  # 427 is odd on purpose (real SSv2 has it)
MIN_FRAMES, MAX_FRAMES = 24, 60  # 2-5 s at 12 fps
CODECS: dict[str, tuple[str, dict[str, str]]] = {
    "vp9": ("libvpx-vp9", {"deadline": "realtime", "cpu-used": "8"}),
    "vp8": ("libvpx", {"deadline": "realtime", "cpu-used": "16"}),
}
_BIT_RATE = 300_000  # close to real SSv2 clips, so decode cost is comparable


@dataclass(frozen=True)
class ClipJob:
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
    ramp = np.cos(angle) * xx / w + np.sin(angle) * yy / h
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    bg = (c0 * (1 - ramp[..., None]) + c1 * ramp[..., None]).astype(np.uint8)

    shapes = []
    for _ in range(int(rng.integers(1, 4))):
        size = int(rng.integers(24, 80))
        shapes.append(
            (
                bool(rng.integers(0, 2)),  # disc?
                size,
                rng.uniform(0, w - size),
                rng.uniform(0, h - size),  # start
                rng.uniform(-6, 6),
                rng.uniform(-4, 4),  # px per frame
                rng.integers(0, 256, size=3).astype(np.uint8),
            )
        )
    discs = {s: ((np.mgrid[0:s, 0:s] - (s - 1) / 2) ** 2).sum(0) <= (s / 2) ** 2 for disc, s, *_ in shapes if disc}

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
                f[y : y + s, x : x + s][discs[s]] = col
            else:
                f[y : y + s, x : x + s] = col
        yield f


def encode_clip(job: ClipJob) -> dict[str, Any]:
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


def check_processes(processes: int | None) -> None:
    if processes is not None and (isinstance(processes, bool) or processes < 1):
        raise ValueError(f"processes={processes!r}: need >= 1, or None for os.cpu_count()")


def _spawn_can_start() -> bool:
    # spawn re-imports the parent's __main__ by path; a main read from stdin
    # ("python - < script") has a __file__ that is not a file and would kill every child.
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    return main_file is None or os.path.exists(main_file)


def encode_all(jobs: list[ClipJob], processes: int | None) -> list[dict[str, Any]]:
    check_processes(processes)
    procs = (os.cpu_count() or 1) if processes is None else processes
    procs = min(procs, len(jobs))
    if procs == 1 or not _spawn_can_start():
        return [encode_clip(j) for j in jobs]
    # spawn, not fork: the caller may be a pytest process with torch/OpenMP threads,
    # and forking those can deadlock.  Children import only this module (numpy + av).
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=procs, mp_context=ctx) as pool:
        return list(pool.map(encode_clip, jobs))
