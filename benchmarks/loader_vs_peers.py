"""Our loader against the decode limit, the common SSv2 recipe and other decoders, in one run.

    python benchmarks/loader_vs_peers.py [--videos 64] [--batches 30] [--reps 3] [--workers N]

Prints a table (median videos/s over --reps repetitions, with min–max spread) and the ratios the
project tracks: ours / L (the decode limit: single-process decode rate × min(workers, cores)),
ours / common recipe, runner / in-process, and each decoder backend / decord.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

import torch  # before decord
from torch.utils.data import Dataset

from ssv2_fixtures import LoaderConfig, RunRequest, SSv2Clips, dataset_spec, make_loader, run_config
from ssv2_fixtures.data.clips import decoder_available
from ssv2_fixtures.data.synth import SynthSpec, ensure_synthetic

FRAMES, SIZE = 16, 224


class CommonRecipe(Dataset):
    """What popular SSv2 training code does: a VideoReader per sample with decord's own threads,
    frames to float32, normalised and permuted inside the worker."""

    def __init__(self, ds: SSv2Clips) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        import decord

        # decord's default (num_threads=0, "auto") fails on every synthetic VP9 clip here with
        # "avcodec_send_packet ... Error sending packet"; threads = cores is the nearest that decodes.
        vr = decord.VideoReader(self.ds.index.path(i), width=SIZE, height=SIZE, num_threads=os.cpu_count() or 2)
        idx = self.ds.indices_for(len(vr))
        x = torch.from_numpy(vr.get_batch(idx.tolist()).asnumpy()).float() / 255.0
        mean = torch.tensor([0.485, 0.456, 0.406])
        std = torch.tensor([0.229, 0.224, 0.225])
        x = ((x - mean) / std).permute(3, 0, 1, 2).contiguous()
        return x, self.ds.index.label(i)


def rate(loader, batches: int) -> float:
    it = iter(loader)
    next(it)  # start-up and the first batch are not steady state
    n, t0 = 0, time.perf_counter()
    for _ in range(batches):
        try:
            x, _ = next(it)
        except StopIteration:
            it = iter(loader)
            x, _ = next(it)
        n += x.shape[0]
    return n / (time.perf_counter() - t0)


def decode_rate(ds: SSv2Clips, n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        ds[i % len(ds)]
    return n / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=64)
    ap.add_argument("--batches", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    args = ap.parse_args()
    # Full-size annotations over the encoded pool: the loader never drains at an epoch boundary, so
    # the rate is the steady state the decode limit describes.
    root = ensure_synthetic(SynthSpec(videos=args.videos, full_size=True))
    cores = len(os.sched_getaffinity(0))
    w = args.workers
    cfg = LoaderConfig(
        batch_size=args.batch_size,
        num_workers=w,
        prefetch_factor=4,
        persistent_workers=True,
        shuffle=True,
        drop_last=True,
        sharing_strategy="file_descriptor",
    )
    cfg_fs = LoaderConfig(**{**cfg.to_dict(), "sharing_strategy": "file_system"})
    ds = SSv2Clips(root, "train", FRAMES, SIZE)
    torch.set_num_threads(1)
    rows: dict[str, list[float]] = {}

    def measure(name: str, fn) -> None:
        rows[name] = [fn() for _ in range(args.reps)]
        med = statistics.median(rows[name])
        print(f"  {name:<34} {med:7.1f} videos/s   (min {min(rows[name]):.1f}, max {max(rows[name]):.1f})", flush=True)

    print(
        f"{len(ds)} train entries over {args.videos} encoded clips, {FRAMES}×{SIZE}², "
        f"batch {args.batch_size}, W={w}, {cores} cores, "
        f"{args.reps} reps × {args.batches} batches"
    )
    measure("decode, 1 process (decord)", lambda: decode_rate(ds, 48))
    limit = statistics.median(rows["decode, 1 process (decord)"]) * min(w, cores)
    measure("ours in-process (file_descriptor)", lambda: rate(make_loader(ds, cfg), args.batches))
    measure("ours in-process (file_system)", lambda: rate(make_loader(ds, cfg_fs), args.batches))
    runs = tempfile.mkdtemp(prefix="ssv2-bench-")
    measure(
        "ours through the runner",
        lambda: float(
            run_config(
                RunRequest(
                    dataset_spec(root, "train", num_frames=FRAMES, size=SIZE), cfg, args.batches + 1, run_dir=runs
                )
            ).metrics.get("videos_per_s", 0)
        ),
    )
    shutil.rmtree(runs, ignore_errors=True)
    recipe = LoaderConfig(batch_size=args.batch_size, num_workers=w, shuffle=True, drop_last=True)
    measure("common recipe (float32 in workers)", lambda: rate(make_loader(CommonRecipe(ds), recipe), args.batches))
    for dec in ("pyav", "torchcodec"):
        ok, why = decoder_available(dec)
        if not ok:
            print(f"  {dec:<34} skipped: {why}")
            continue
        dsd = SSv2Clips(root, "train", FRAMES, SIZE, decoder=dec)
        measure(f"decode, 1 process ({dec})", lambda dsd=dsd: decode_rate(dsd, 48))

    med = {k: statistics.median(v) for k, v in rows.items()}
    ours = med["ours in-process (file_descriptor)"]
    print("\nratios")
    print(
        f"  decode limit L = {med['decode, 1 process (decord)']:.1f} × min(W={w}, cores={cores}) = {limit:.1f} videos/s"
    )
    print(f"  ours / L                      {ours / limit:.2f}   (goal >= 0.95 steady)")
    print(f"  ours / common recipe          {ours / med['common recipe (float32 in workers)']:.2f}   (goal >= 1.5)")
    print(f"  runner / in-process           {med['ours through the runner'] / ours:.2f}   (goal >= 0.97)")
    print(f"  file_system / file_descriptor {med['ours in-process (file_system)'] / ours:.2f}")
    for dec in ("pyav", "torchcodec"):
        k = f"decode, 1 process ({dec})"
        if k in med:
            print(f"  {dec} / decord (decode)       {med[k] / med['decode, 1 process (decord)']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
