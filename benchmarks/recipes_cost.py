"""What each published recipe costs next to SSv2Clips: videos/s and bytes per batch, in one run.

    python benchmarks/recipes_cost.py [--videos 64] [--batches 8] [--rounds 2] [--batch-size 8] [--workers 2]

On the built-in synthetic set (train split, training mode), each recipe's factory from
``ssv2_fixtures.data.recipes`` runs a plain DataLoader loop (batch 8, 2 workers, prefetch 2, shuffle);
the recipes alternate round by round so that machine load drifts hit all of them alike. The first batch
of each loop (worker start-up) is not timed. Per recipe: the rate over all timed batches with its 95 %
batch-means interval (``run.stats.rate_interval``), the measured bytes per batch (``data.batch.describe``:
the sum of every tensor's nbytes) and the largest tensor's shape and dtype.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import torch  # before decord
from _args import loader_args
from torch.utils.data import default_collate

from ssv2_fixtures.data.batch import describe
from ssv2_fixtures.data.factory import Pipeline, load_pipeline
from ssv2_fixtures.data.loader import LoaderConfig, make_loader
from ssv2_fixtures.data.synth import SynthSpec, ensure_synthetic
from ssv2_fixtures.run.stats import rate_interval

RECIPES = ("ssv2clips", "tsm_uint8", "videomae_finetune")


def one_loop(pipe: Pipeline, cfg: LoaderConfig, batches: int) -> tuple[list[int], list[float], Any]:
    # endless (as the suite's child and pipeline_rate.py): a small split's epoch ends inside the loop, and
    # a new epoch's worker start-up would land in a timed next()
    loader = make_loader(
        pipe.dataset,
        cfg,
        endless=True,
        collate_fn=pipe.collate_fn or default_collate,
        worker_init_fn=pipe.worker_init_fn,
    )
    it = iter(loader)
    first = next(it)  # worker start-up and the first decode: not timed
    facts = describe(first, videos=cfg.batch_size)
    items, secs = [], []
    for _ in range(batches):
        t = time.perf_counter()
        batch = next(it)
        secs.append(time.perf_counter() - t)
        items.append(cfg.batch_size)
        del batch
    del it, loader
    return items, secs, facts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    loader_args(ap, batch_size=8)
    ap.add_argument("--batches", type=int, default=8, help="timed batches per recipe per round")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)

    root = ensure_synthetic(SynthSpec(videos=args.videos), cache_dir=args.cache, processes=os.cpu_count() or 1)
    cfg = LoaderConfig(
        batch_size=args.batch_size, num_workers=args.workers, prefetch_factor=args.prefetch, shuffle=True
    )
    pipes = {
        name: load_pipeline(
            {"factory": f"ssv2_fixtures.data.recipes:{name}", "root": str(root), "split": "train"}, train=True
        )
        for name in RECIPES
    }
    items: dict[str, list[int]] = {n: [] for n in RECIPES}
    secs: dict[str, list[float]] = {n: [] for n in RECIPES}
    facts: dict[str, Any] = {}
    print(
        f"synthetic set {root} ({args.videos} clips), BS={cfg.batch_size} W={cfg.num_workers} "
        f"PF={cfg.effective_prefetch}, {args.rounds} rounds × {args.batches} timed batches, "
        f"{os.cpu_count()} cores, torch {torch.__version__}",
        flush=True,
    )
    for r in range(args.rounds):
        for name in RECIPES:
            i, s, f = one_loop(pipes[name], cfg, args.batches)
            items[name] += i
            secs[name] += s
            facts[name] = f
            print(f"  round {r + 1} {name:18s} {sum(i) / sum(s):7.1f} videos/s", flush=True)
    base = sum(items["ssv2clips"]) / sum(secs["ssv2clips"])
    print()
    print("| recipe | videos/s (95 % interval) | × SSv2Clips | MB/batch | clips/batch | largest tensor |")
    print("|---|---|---|---|---|---|")
    for name in RECIPES:
        ri = rate_interval(items[name], secs[name], round_size=cfg.num_workers)
        rate = sum(items[name]) / sum(secs[name])
        band = f"{ri.lo:.1f}–{ri.hi:.1f}" if ri else "n/a"
        f = facts[name]
        print(
            f"| {name} | {rate:.1f} ({band}) | {rate / base:.2f} | {f['bytes'] / 1e6:.1f} | {f['clips']} | "
            f"{'×'.join(map(str, f['shape']))} {f['dtype'].replace('torch.', '')} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
