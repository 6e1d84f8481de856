"""The item ceiling's base: is the single-process (W=0) rate one worker's rate, on an idle and on a busy host?

    python benchmarks/single_process_rate.py [--reps 4] [--batches 40] [--batch-size 4] [--workers 0 1 2]

The report calls a rate above the item ceiling (single-process rate × cores) by more than its interval a
measurement error. That holds only if a W=0 run decodes as fast as one worker, and if the machine gives one
process a whole core. This runs the suite's own isolated runs (``run_config``, no step) for each worker count,
interleaved rep by rep so that drift of a shared machine hits every side alike, and prints per run:

- the rate ± its interval (videos over the loop's wall time) and, for W=0, the single-process rate the
  suite derives from it (``single_process_rate``: videos over the time spent decoding);
- the child's CPU (this process's reaped children, ``os.times``, start-up included) in cores, and the
  foreign cores the record saw (``record["host"]``): how much of the machine the run got;
- the rate per worker, and per worker / the same rep's W=0 rate.

Then the medians over reps: rate(W) / rate(W=0) against W (what a ceiling of W=0 rate × cores assumes at
most), and rate per CPU-second of the run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from typing import Any

from _args import loader_args

from ssv2_fixtures.data.loader import LoaderConfig
from ssv2_fixtures.data.synth import SynthSpec, ensure_synthetic
from ssv2_fixtures.run.record import single_process_rate
from ssv2_fixtures.run.runner import dataset_spec, run_config


def one(spec: dict[str, Any], cfg: LoaderConfig, batches: int, tmp: str, name: str) -> dict[str, Any] | None:
    t0 = os.times()
    kw: dict[str, Any] = {"run_dir": tmp, "name": name, "hold": False}
    try:  # run_config's one argument where the tree has RunRequest, its keywords before
        from ssv2_fixtures.run.request import RunRequest  # type: ignore[import-not-found,unused-ignore]

        r = run_config(RunRequest(spec, cfg, batches, **kw))  # type: ignore[arg-type,call-arg,unused-ignore]
    except ImportError:
        r = run_config(spec, cfg, batches, **kw)  # type: ignore[arg-type,call-arg,unused-ignore]
    t1 = os.times()
    if not r.passed:
        print(f"  {cfg.label}: {r.describe()}")
        return None
    m = r.metrics
    host = dict(r.record.get("host") or {})
    secs = float(host.get("seconds") or 0.0)
    cpu = (t1.children_user + t1.children_system) - (t0.children_user + t0.children_system)
    return {
        "w": cfg.num_workers,
        "vps": float(m["videos_per_s"]),
        "iv": m.get("videos_per_s_interval"),
        "wait": float(m.get("wait_fraction") or 0.0),
        "single": single_process_rate(m),
        "cores_used": cpu / secs if secs else float("nan"),
        "foreign": float(host.get("foreign_cores") or 0.0),
        "videos": int(m.get("videos") or 0),
        "cpu_s": cpu,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    loader_args(ap, batch_size=4)
    ap.add_argument("--worker-counts", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--reps", type=int, default=4)
    ap.add_argument("--batches", type=int, default=40)
    a = ap.parse_args(argv)
    root = ensure_synthetic(SynthSpec(videos=a.videos), cache_dir=a.cache)
    spec = dict(dataset_spec(root, "train"))
    cores = len(os.sched_getaffinity(0))
    print(f"bs{a.batch_size}, workers {a.worker_counts}, {a.batches} batches, {a.reps} reps, cores {cores}")
    rows: dict[int, list[dict[str, Any]]] = {w: [] for w in a.worker_counts}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(a.reps):
            order = a.worker_counts if rep % 2 == 0 else list(reversed(a.worker_counts))
            got: dict[int, dict[str, Any]] = {}
            for w in order:
                cfg = LoaderConfig(batch_size=a.batch_size, num_workers=w, prefetch_factor=a.prefetch if w else None)
                if (x := one(spec, cfg, a.batches, tmp, f"r{rep}-w{w}")) is not None:
                    got[w] = x
                    rows[w].append(x)
            base = got.get(0, {}).get("vps")
            for w in a.worker_counts:
                if w not in got:
                    continue
                x = got[w]
                iv = [round(v, 1) for v in x["iv"]] if x["iv"] else None
                per = x["vps"] / max(1, w)
                rel = f", per worker / W=0 {per / base:.2f}" if base else ""
                single = f", single-process {x['single']:.1f}" if w == 0 and x["single"] else ""
                print(
                    f"rep {rep} W={w}: {x['vps']:.1f} {iv} videos/s{single}; wait {x['wait']:.2f}; child CPU "
                    f"{x['cores_used']:.2f} cores, foreign {x['foreign']:.2f}; per worker {per:.1f}{rel}"
                )
    print("medians over reps:")
    base_med = statistics.median(x["vps"] for x in rows.get(0, [])) if rows.get(0) else None
    for w in a.worker_counts:
        if not rows[w]:
            continue
        med = statistics.median(x["vps"] for x in rows[w])
        per_cpu = statistics.median(x["videos"] / x["cpu_s"] for x in rows[w] if x["cpu_s"] > 0)
        ratio = f", rate / W=0 rate {med / base_med:.2f} (a W=0 × cores ceiling allows {cores})" if base_med else ""
        print(
            f"  W={w}: {med:.1f} videos/s{ratio}; videos per child CPU-second (start-up included) {per_cpu:.1f}; "
            f"foreign cores {statistics.median(x['foreign'] for x in rows[w]):.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
