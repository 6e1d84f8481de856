"""What the breakdown costs (issue #23): a session's extra seconds for it, and the runner's rate with and without it.

The breakdown runs once per session, in its own process (run/breakdown_probe.py), before the configs; the
measured runs never see its timers. This script measures both claims on the built-in synthetic set:

- **extra time**: the wall seconds of the breakdown probe as a session starts it (the same spec,
  stress/breakdown.probe_spec, with the config's workers as the transfer config), per round — the target
  is under 15 s;
- **decode agreement**: each probe's decoder timed alone (its replay) over its decode seconds inside
  ``__getitem__`` (the issue's target: within 25 %);
- **runner's rate**: rounds alternate the order of a plain ``run_config`` and one right after a
  breakdown probe (``with``); the ratio with / without is printed next to the run-to-run spread of the
  plain runs (the noise it must stay within).

    python benchmarks/breakdown_cost.py [--videos 64] [--batch-size 8] [--workers 2] [--rounds 3] [--batches 40]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _args import loader_args  # noqa: E402

from ssv2_fixtures.data.loader import LoaderConfig  # noqa: E402
from ssv2_fixtures.data.synth import SynthSpec, ensure_synthetic  # noqa: E402
from ssv2_fixtures.run.breakdown_probe import measure  # noqa: E402
from ssv2_fixtures.run.request import RunRequest  # noqa: E402
from ssv2_fixtures.run.runner import dataset_spec, run_config  # noqa: E402
from ssv2_fixtures.stress.breakdown import probe_spec  # noqa: E402


def _spread(xs: list[float]) -> str:
    return f"median {statistics.median(xs):.2f} (min–max {min(xs):.2f}–{max(xs):.2f})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    loader_args(ap, batch_size=8)
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args(argv)
    root = ensure_synthetic(SynthSpec(videos=a.videos), cache_dir=a.cache)
    ds = dict(dataset_spec(root, "train"), train=True)
    cfg = LoaderConfig(batch_size=a.batch_size, num_workers=a.workers, prefetch_factor=a.prefetch)
    spec = probe_spec(ds, [a.batch_size], cfg)  # type: ignore[arg-type]
    print(
        f"SSv2Clips on {root} (train), {cfg.label}, {a.batches} batches per run, {a.rounds} rounds alternating; "
        f"cores: {len(os.sched_getaffinity(0))}"
    )
    plain: list[float] = []
    after: list[float] = []
    extra: list[float] = []
    agree: list[float] = []  # the decoder timed alone / the decode seconds inside __getitem__
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(a.rounds):
            for side in ("with", "without") if i % 2 == 0 else ("without", "with"):
                if side == "with":
                    t = time.perf_counter()
                    m = measure(spec, Path(tmp) / f"bd{i}")
                    extra.append(time.perf_counter() - t)
                    if m is None:
                        print((Path(tmp) / f"bd{i}" / "breakdown.err").read_text()[-2000:])
                        return 1
                    inside = sum(m["decode_s"]) / len(m["decode_s"])
                    agree.append(m["decode_alone_s"] / inside)
                    print(
                        f"  probe: decode {inside * 1e3:.1f} ms/video inside __getitem__, "
                        f"{m['decode_alone_s'] * 1e3:.1f} ms timed alone ({agree[-1] - 1:+.0%}); "
                        f"transfer {m['transfer']['videos_per_s']:.0f} videos/s"
                    )
                r = run_config(RunRequest(ds, cfg, a.batches, run_dir=tmp, name=f"{side}{i}"))  # type: ignore[arg-type]
                if not r.passed:
                    print(r.describe())
                    return 1
                (after if side == "with" else plain).append(float(r.metrics["videos_per_s"]))
            print(f"round {i}: without {plain[-1]:.1f} videos/s, with {after[-1]:.1f}; breakdown {extra[-1]:.1f} s")
    ratio = statistics.median(after) / statistics.median(plain)
    noise = (max(plain) - min(plain)) / statistics.median(plain)
    print(f"runner without the breakdown: {_spread(plain)} videos/s")
    print(f"runner right after it:        {_spread(after)} videos/s")
    print(
        f"ratio with / without: {ratio:.3f} (the plain runs' own spread: ±{noise / 2:.1%} of their median; "
        f"{'within' if abs(ratio - 1) <= noise else 'outside'} the noise)"
    )
    print(f"session's extra time for the breakdown: {_spread(extra)} s (target < 15 s)")
    print(f"decoder alone / decode inside __getitem__: {_spread(agree)} (target: within 25 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
