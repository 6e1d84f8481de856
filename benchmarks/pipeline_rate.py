"""Does the suite measure a user's pipeline right? Its videos/s vs an independent timing of the same loop.

    python benchmarks/pipeline_rate.py [--factory userpipe.data:build] [--path tests/userpipe]
        [--arg size=64 --arg frames=8] [--batch-size 4] [--workers 2] [--batches 24] [--rounds 3]

Per round, alternating (machine-load drift hits both alike):
- **suite**: ``run_config`` with the dataset spec a ``--dataset-factory`` session passes (an isolated child:
  fresh interpreter, its own TMPDIR, the watchdog); its ``videos_per_s`` (steady state: videos / the loop's
  wall time for the batches after the first, whole worker rounds);
- **plain**: in this process, the factory called the same way (``load_pipeline``) and a DataLoader made with
  the same config, collate_fn and worker_init_fn; videos / wall time of the batches after the first.

Prints each round with its 95 % batch-means interval (``run.stats.rate_interval``, the suite's one rule:
the suite's from its record, plain's from its per-batch times), then each side's median with the min–max
over rounds, and the ratio suite / plain of the medians with the min–max of the per-round ratios (1.00: the
suite reports what a training loop over the same pipeline gets).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch  # before decord
from _args import loader_args

from ssv2_fixtures.data.factory import load_pipeline
from ssv2_fixtures.data.loader import LoaderConfig, make_loader
from ssv2_fixtures.data.synth import SynthSpec, ensure_synthetic
from ssv2_fixtures.options import dataset_arg
from ssv2_fixtures.run.request import RunRequest
from ssv2_fixtures.run.runner import dataset_spec, run_config
from ssv2_fixtures.run.stats import rate_interval

HERE = Path(__file__).resolve().parent


def plain(spec: dict, cfg: LoaderConfig, batches: int) -> tuple[float, list[float] | None]:
    """Videos/s over the loop's wall time after the first batch, and its interval from per-batch times."""
    pipe = load_pipeline(spec, train=True)
    # endless, as the suite's child: one epoch of a small split is shorter than the run
    loader = make_loader(
        pipe.dataset, cfg, endless=True, collate_fn=pipe.collate_fn, worker_init_fn=pipe.worker_init_fn
    )
    it = iter(loader)
    next(it)  # worker start-up and the first decode: not timed, as the suite's steady state
    t0 = time.perf_counter()
    secs = []
    for _ in range(batches - 1):
        t = time.perf_counter()
        next(it)
        secs.append(time.perf_counter() - t)
    wall = time.perf_counter() - t0
    del it, loader
    iv = rate_interval([cfg.batch_size] * len(secs), secs, round_size=cfg.num_workers)
    return (batches - 1) * cfg.batch_size / wall, None if iv is None else iv.as_list()


def _iv(iv: list[float] | None) -> str:
    return f" [{iv[0]:.2f}, {iv[1]:.2f}]" if iv else " [no interval: too few batches]"


def _spread(xs: list[float]) -> str:
    return f"{statistics.median(xs):.2f} (min–max {min(xs):.2f}–{max(xs):.2f})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--factory", default="userpipe.data:build")
    ap.add_argument("--path", action="append", default=None, help="folder for the factory's import")
    ap.add_argument("--arg", action="append", default=None, help="KEY=VALUE for the factory")
    loader_args(ap, batch_size=4)
    ap.add_argument("--batches", type=int, default=24)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args(argv)
    paths = [str(Path(p).resolve()) for p in (a.path or [HERE.parent / "tests" / "userpipe"])]
    kwargs = dict(dataset_arg(t, "--arg") for t in (a.arg or ["size=64", "frames=8"]))
    root = ensure_synthetic(SynthSpec(videos=a.videos), cache_dir=a.cache)
    spec = dict(dataset_spec(root, "train"), factory=a.factory, factory_kwargs=kwargs, factory_path=paths, train=True)
    cfg = LoaderConfig(batch_size=a.batch_size, num_workers=a.workers, prefetch_factor=a.prefetch, shuffle=True)
    torch.set_num_threads(1)  # as the suite's child: workers decode, the main thread only receives
    sys.path[:0] = paths
    print(
        f"{a.factory}({kwargs}) on {root} (train), {cfg.label}, {a.batches} batches per run, "
        f"{a.rounds} rounds, alternating; cores: {len(os.sched_getaffinity(0))}"
    )
    suite_s, plain_s = [], []
    suite_iv: list[list[float] | None] = []
    plain_iv: list[list[float] | None] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(a.rounds):
            order = ("suite", "plain") if i % 2 == 0 else ("plain", "suite")
            for side in order:
                if side == "suite":
                    r = run_config(RunRequest(spec, cfg, a.batches, run_dir=tmp, name=f"round{i}"))  # type: ignore[arg-type]
                    if not r.passed:
                        print(r.describe())
                        return 1
                    suite_s.append(float(r.metrics["videos_per_s"]))
                    suite_iv.append(r.metrics.get("videos_per_s_interval"))
                else:
                    rate, iv = plain(spec, cfg, a.batches)
                    plain_s.append(rate)
                    plain_iv.append(iv)
            print(
                f"round {i}: suite {suite_s[-1]:.2f}{_iv(suite_iv[-1])} videos/s, "
                f"plain {plain_s[-1]:.2f}{_iv(plain_iv[-1])} videos/s"
            )
    s, p = (statistics.median(x) for x in (suite_s, plain_s))
    ratios = [x / y for x, y in zip(suite_s, plain_s)]
    print(f"over {a.rounds} rounds: suite {_spread(suite_s)}, plain {_spread(plain_s)} videos/s")
    print(f"ratio suite/plain of the medians {s / p:.3f} (per round {min(ratios):.3f}–{max(ratios):.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
