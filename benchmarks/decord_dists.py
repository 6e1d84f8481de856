"""Compare the two distributions that provide ``import decord`` (decord 0.6.0 and decord2) on the same clips.

Usage: python benchmarks/decord_dists.py --out FILE.json [--passes 3] [--videos 64] [--batches 100]
       python benchmarks/decord_dists.py --compare A.json B.json

Run it once under an interpreter that has ``decord`` installed and once under one that has ``decord2``
(never both in one environment: they install the same ``decord`` package over each other), then
``--compare`` the two files. Each run measures, on the suite's built-in full-size synthetic set:
- decode rate: every clip opened with ``decord.VideoReader`` and 16 uniformly spaced frames decoded with
  ``get_batch`` at native size, in this process, ``--passes`` passes (clips/s, median and range);
- the frames: a SHA-256 of each clip's decoded frames (identical across distributions or not, and the
  largest pixel difference where not);
- fork safety: a forked DataLoader (2 workers) over ``SSv2Clips``, whose readers open after the fork;
- RSS over a sustained run: the suite's isolated runner, ``--batches`` batches of BS=8, W=2, pf=2
  (the process tree's peak RSS and the run's videos/s).
Not a test: the numbers depend on the machine; benchmarks/README.md holds a dated measurement.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from ssv2_fixtures.data.synth import SynthSpec, ensure_synthetic, read_manifest

FRAMES = 16


def provider() -> str:
    """Which distribution provides ``import decord`` here (``decord 0.6.0`` or ``decord2 3.4.0``)."""
    found = [f"{d} {metadata.version(d)}" for d in ("decord", "decord2") if _installed(d)]
    return " + ".join(found) or "none"


def _installed(dist: str) -> bool:
    try:
        metadata.version(dist)
        return True
    except metadata.PackageNotFoundError:
        return False


def _frames(path: Path) -> np.ndarray:
    import decord

    reader = decord.VideoReader(str(path), num_threads=1)
    idx = np.linspace(0, len(reader) - 1, FRAMES).round().astype(int).tolist()
    return reader.get_batch(idx).asnumpy()


def decode(paths: list[Path], passes: int) -> dict:
    rates, digests, arrays = [], {}, {}
    for _ in range(passes):
        t0 = time.perf_counter()
        for p in paths:
            arrays[p.name] = _frames(p)
        rates.append(len(paths) / (time.perf_counter() - t0))
    for name, a in arrays.items():
        digests[name] = hashlib.sha256(a.tobytes()).hexdigest()
    return {"clips_per_s": rates, "digests": digests, "shape": list(next(iter(arrays.values())).shape)}


def fork_safety(root: Path) -> str:
    from ssv2_fixtures.data.clips import SSv2Clips
    from ssv2_fixtures.data.loader import LoaderConfig, make_loader

    ds = SSv2Clips(root, "train", FRAMES, 112)
    cfg = LoaderConfig(batch_size=4, num_workers=2, prefetch_factor=2, mp_context="fork")
    n = 0
    for _ in make_loader(ds, cfg):
        n += 1
        if n == 10:
            break
    return "ok: 10 batches through 2 forked workers (readers opened after the fork)"


def sustained(root: Path, batches: int) -> dict:
    from ssv2_fixtures.data.loader import LoaderConfig
    from ssv2_fixtures.run.request import RunRequest
    from ssv2_fixtures.run.runner import run_config

    res = run_config(RunRequest(str(root), LoaderConfig(batch_size=8, num_workers=2, prefetch_factor=2), batches))
    m = res.metrics
    return {
        "passed": res.passed,
        "kind": res.kind,
        "rss_peak_bytes": m.get("rss_peak_bytes"),
        "videos_per_s": m.get("videos_per_s"),
        "batches": m.get("batches"),
    }


def measure(a: argparse.Namespace) -> dict:
    root = ensure_synthetic(SynthSpec(videos=a.videos, full_size=True), cache_dir=a.cache)
    paths = sorted({root / c["file"] for c in read_manifest(root)["clips"]})
    out = {"decord": provider(), "python": sys.version.split()[0], "clips": len(paths)}
    out["decode"] = decode(paths, a.passes)
    out["fork"] = fork_safety(root)
    out["sustained"] = sustained(root, a.batches) if a.batches else {}
    Path(a.out).write_text(json.dumps(out, indent=1))
    r = out["decode"]["clips_per_s"]
    s = out["sustained"]
    ran = (
        f"; sustained {s['batches']} batches {'passed' if s['passed'] else s['kind']}, RSS peak "
        f"{(s['rss_peak_bytes'] or 0) / 2**20:.0f} MiB, {s['videos_per_s'] or 0:.1f} videos/s"
        if s
        else ""
    )
    print(
        f"{out['decord']}: decode {statistics.median(r):.1f} clips/s (min {min(r):.1f}, max {max(r):.1f}) of "
        f"{FRAMES} frames {out['decode']['shape'][1:3]}; {out['fork']}{ran}"
    )
    return out


def compare(a_path: str, b_path: str) -> None:
    a, b = (json.loads(Path(p).read_text()) for p in (a_path, b_path))
    same = [n for n in a["decode"]["digests"] if a["decode"]["digests"][n] == b["decode"]["digests"].get(n)]
    ra, rb = (statistics.median(x["decode"]["clips_per_s"]) for x in (a, b))
    print(f"{a['decord']} vs {b['decord']}:")
    print(f"  decode: {ra:.1f} vs {rb:.1f} clips/s (ratio {rb / ra:.3f})")
    print(f"  frames identical: {len(same)} of {len(a['decode']['digests'])} clips")
    sa, sb = a["sustained"], b["sustained"]
    if not (sa and sb):
        return
    print(
        f"  sustained RSS peak: {(sa['rss_peak_bytes'] or 0) / 2**20:.0f} vs {(sb['rss_peak_bytes'] or 0) / 2**20:.0f}"
        f" MiB; videos/s {sa['videos_per_s'] or 0:.1f} vs {sb['videos_per_s'] or 0:.1f}"
    )
    print(f"  fork: {a['fork']} / {b['fork']}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out")
    ap.add_argument("--compare", nargs=2, metavar=("A", "B"))
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--videos", type=int, default=64)
    ap.add_argument("--batches", type=int, default=100, help="sustained run's batches (0: no sustained run)")
    ap.add_argument("--cache", default=None, help="the synthetic set's cache (default: the suite's)")
    a = ap.parse_args()
    if a.compare:
        compare(*a.compare)
    elif a.out:
        measure(a)
    else:
        ap.error("pass --out FILE or --compare A B")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
