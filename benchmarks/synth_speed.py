"""Time building a 64-clip synthetic SSv2 set (the suite's default pool size).

Usage: python benchmarks/synth_speed.py [--videos N] [--codec vp9|vp8] [--processes P] [--full-size]

Prints the wall seconds and seconds per encoded clip.  Target: 64 VP9 clips
in under 10 s on 2 cores.  Not a test: run it by hand after touching synth.py.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from ssv2_fixtures.data.synth import SynthSpec, build_synthetic, read_manifest


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--videos", type=int, default=64)
    p.add_argument("--codec", default="vp9")
    p.add_argument("--processes", type=int, default=None)
    p.add_argument("--full-size", action="store_true")
    a = p.parse_args()
    spec = SynthSpec(videos=a.videos, codec=a.codec, full_size=a.full_size)
    with tempfile.TemporaryDirectory(prefix="synth-speed-") as d:
        t0 = time.perf_counter()
        root = build_synthetic(Path(d) / "set", spec, processes=a.processes)
        wall = time.perf_counter() - t0
        m = read_manifest(root)
        frames = sum(c["frames"] for c in m["clips"])
        size = sum(os.path.getsize(root / c["file"]) for c in m["clips"])
    n = len(m["clips"])
    print(
        f"{n} {a.codec} clips ({frames} frames, {size / 1e6:.1f} MB, "
        f"{m['num_videos']} videos) on {os.cpu_count()} cores, "
        f"processes={a.processes or os.cpu_count()}: "
        f"{wall:.2f} s wall, {wall / n:.3f} s/clip"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
