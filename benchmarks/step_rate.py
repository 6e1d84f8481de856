"""One throughput under a training step: the suite's videos/s against ``watch`` over the same loop.

    python benchmarks/step_rate.py [--step 0.05] [--batch-size 4] [--workers 2] [--batches 60]
        [--size 64] [--frames 4]

- **same loop**: in this process, the child's own batch loop (``run.loop.batch_loop``, the ``--step-time``
  sleep after each batch) over a DataLoader wrapped in ``watch()``. The loop's batch events go through the
  record builder (``run.record.batch_metrics``) and the watch keeps its own clock reads: two computations of
  videos / the loop's wall time over the same batches. Prints both, their ratio (1.00: the suite and the
  watch measure the same quantity), both wait fractions, and what videos / summed waits (the former
  definition) would have claimed.
- **the suite's run**: ``run_config`` with ``step_s`` (an isolated child, as ``pytest -m sustained
  --step-time`` runs it): its rate ± interval, wait fraction and bound, against batch size / step (the most a
  loop with this step can receive) and the item ceiling (single-process rate × cores, the single-process
  rate from a W=0 run of the same clips: videos over the time spent decoding).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Any

import torch  # before decord
from _args import loader_args

from ssv2_fixtures import watch
from ssv2_fixtures.data.loader import LoaderConfig, make_loader
from ssv2_fixtures.data.synth import SynthSpec, ensure_synthetic
from ssv2_fixtures.run.child import build_dataset
from ssv2_fixtures.run.loop import Progress, batch_loop
from ssv2_fixtures.run.record import batch_metrics, single_process_rate
from ssv2_fixtures.run.request import RunRequest
from ssv2_fixtures.run.runner import dataset_spec, run_config


class Events:
    """The child's event writer, kept in a list (``t``: when emitted, unless the loop gives it)."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def emit(self, ev: str, /, **fields: Any) -> None:
        fields.setdefault("t", time.time())
        self.seen.append({"ev": ev, **fields})


class Watched:
    """The loader as the batch loop sees it (batch_size, dataset, sampler …), iterated through the watch."""

    def __init__(self, loader: Any, w: Any) -> None:
        self._loader, self._w = loader, w

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)

    def __iter__(self) -> Any:
        return iter(self._w)


def same_loop(spec: dict[str, Any], cfg: LoaderConfig, batches: int, step: float) -> None:
    built = build_dataset({"config": cfg.to_dict(), "dataset": spec}, rank=0)  # type: ignore[typeddict-item]
    loader = make_loader(built.dataset, cfg, endless=True)
    w = watch(loader, interval_s=0.5)
    events = Events()
    batch_loop(events, Watched(loader, w), {"batches": batches, "step_s": step}, False, Progress())  # type: ignore[typeddict-item]
    batch_events = [e for e in events.seen if e["ev"] == "batch"]
    rec = batch_metrics(batch_events, workers=cfg.num_workers)
    s = w.summary()
    waits = [float(e["wait_s"]) for e in batch_events[1:]]
    old = sum(int(e["videos"]) for e in batch_events[1:]) / sum(waits)
    v, wv = float(rec["videos_per_s"]), float(s["videos_per_s"] or 0.0)
    print(
        f"same loop ({len(batch_events)} batches, step {step * 1000:.0f} ms): record {v:.2f} videos/s "
        f"{[round(x, 2) for x in rec.get('videos_per_s_interval') or []]}, watch {wv:.2f} "
        f"{s['videos_per_s_interval']}; ratio record / watch {v / wv:.3f}"
    )
    print(
        f"  wait fraction: record {rec['wait_fraction']:.3f} ({rec['bound']}-bound), watch {s['wait_fraction']:.3f}; "
        f"batch size / step {cfg.batch_size / step:.2f} videos/s; videos / summed waits would say {old:.1f} "
        f"({old / v:.1f} × the rate the loop received)"
    )


def suite_run(spec: dict[str, Any], cfg: LoaderConfig, batches: int, step: float, tmp: str) -> None:
    w0 = LoaderConfig(batch_size=cfg.batch_size, num_workers=0)
    single = run_config(RunRequest(spec, w0, 17, run_dir=tmp, name="single"))  # type: ignore[arg-type]
    r = run_config(RunRequest(spec, cfg, batches, step_s=step, run_dir=tmp, name="stepped"))  # type: ignore[arg-type]
    if not (single.passed and r.passed):
        print(single.describe())
        print(r.describe())
        return
    m, cores = r.metrics, len(os.sched_getaffinity(0))
    one = single_process_rate(single.metrics) or 0.0
    iv = m.get("videos_per_s_interval")
    rel = (iv[1] - iv[0]) / 2 / m["videos_per_s"] if iv else float("nan")
    print(f"suite run: {r.describe()}")
    print(
        f"  rate {m['videos_per_s']:.2f} (relative half-width {rel:.3f}), wait fraction {m['wait_fraction']:.3f}, "
        f"bound {m['bound']}; batch size / step {cfg.batch_size / step:.2f}; rate / (batch size / step) "
        f"{m['videos_per_s'] * step / cfg.batch_size:.3f}; item ceiling {one:.1f} × {cores} cores = {one * cores:.1f} "
        f"videos/s (rate / ceiling {m['videos_per_s'] / (one * cores):.3f})"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    loader_args(ap, batch_size=4)
    ap.add_argument("--step", type=float, default=0.05, help="seconds held after each batch (--step-time)")
    ap.add_argument("--batches", type=int, default=60)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--frames", type=int, default=4)
    a = ap.parse_args(argv)
    root = ensure_synthetic(SynthSpec(videos=a.videos), cache_dir=a.cache)
    spec = dict(dataset_spec(root, "train", size=a.size, num_frames=a.frames))
    cfg = LoaderConfig(batch_size=a.batch_size, num_workers=a.workers, prefetch_factor=a.prefetch)
    torch.set_num_threads(1)  # as the suite's child: workers decode, the main thread only receives
    print(f"{cfg.label}, {a.frames} frames at {a.size}², cores: {len(os.sched_getaffinity(0))}")
    same_loop(spec, cfg, a.batches, a.step)
    with tempfile.TemporaryDirectory() as tmp:
        suite_run(spec, cfg, a.batches, a.step, tmp)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
