"""The shared-memory budget against measurement: the predicted bytes in flight vs the sampled /dev/shm peak.

    python benchmarks/shm_prediction.py [--videos 64] [--rounds 2] [--batches 10] [--step 0.4]

Each run is isolated (``run_config``) in a private 1 GiB /dev/shm, so nothing else on the machine is
counted, and holds each batch for ``--step`` seconds (longer than a batch takes to load), so the prefetch
queues fill to ``num_workers × prefetch_factor`` — the state the prediction describes. Configs: the
built-in uint8 clips at three configs (the arithmetic of ``stress.budget``), and a user's float32 nested
pipeline (``tests/userpipe``, two views per video) whose bytes per item come from the pipeline probe.

Prints, per config and round, predicted and measured MiB and their ratio, then each config's min–max ratio
over rounds. The peak is sampled (every 0.1 s), so it can only miss bytes, never invent them; the budget's
claim is "within 10 %" (issue 13), which a row outside 0.90–1.10 contradicts.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch  # noqa: F401  (before decord)
from _args import loader_args

from ssv2_fixtures.data.loader import LoaderConfig
from ssv2_fixtures.data.synth import SynthSpec, ensure_synthetic
from ssv2_fixtures.run.request import RunRequest
from ssv2_fixtures.run.runner import dataset_spec, run_config
from ssv2_fixtures.run.sandbox import Sandbox, unavailable
from ssv2_fixtures.stress.budget import predict
from ssv2_fixtures.stress.probe import pipeline_probe

HERE = Path(__file__).resolve().parent
PRIVATE_SHM = Sandbox(shm_bytes=2**30)
BUILTIN = (
    LoaderConfig(batch_size=4, num_workers=1, prefetch_factor=2),
    LoaderConfig(batch_size=4, num_workers=2, prefetch_factor=2),
    LoaderConfig(batch_size=2, num_workers=2, prefetch_factor=4, sharing_strategy="file_system"),
)
USER = LoaderConfig(batch_size=4, num_workers=2, prefetch_factor=2)
FRAMES, SIZE = 8, 112


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    loader_args(ap, batch_size=4)
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--step", type=float, default=0.4, help="seconds each batch is held (a training step)")
    a = ap.parse_args(argv)
    why = unavailable(PRIVATE_SHM)
    if why is not None:
        print(f"cannot isolate /dev/shm here: {why}")
        return 2
    root = ensure_synthetic(SynthSpec(videos=a.videos), cache_dir=a.cache)
    builtin = dict(dataset_spec(root, "train", num_frames=FRAMES, size=SIZE))
    user: dict[str, Any] = dict(
        dataset_spec(root, "train"),
        factory="userpipe.data:build",
        factory_kwargs={"frames": FRAMES, "size": SIZE},
        factory_path=[str(HERE.parent / "tests" / "userpipe")],
    )
    ratios: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        probe = run_config(
            RunRequest(
                user,  # type: ignore[arg-type]
                LoaderConfig(batch_size=2, num_workers=0),
                3,
                run_dir=tmp,
                name="probe",
            )
        )
        p = pipeline_probe(probe.record) if probe.passed else None
        if p is None:
            print(f"the pipeline probe failed: {probe.describe()}")
            return 1
        cases: list[tuple[str, dict[str, Any], LoaderConfig, int]] = [
            (f"ssv2clips {c.label}", builtin, c, predict(c, frames=FRAMES, size=SIZE).shm_bytes) for c in BUILTIN
        ]
        cases.append(
            (
                f"userpipe float32 ×2 views {USER.label}",
                user,
                USER,
                predict(USER, bytes_per_item=p["bytes_per_item"]).shm_bytes,
            )
        )
        print(f"{a.batches} batches per run, {a.step} s step, private /dev/shm 1 GiB, {FRAMES}×{SIZE}² clips")
        for i in range(a.rounds):
            for name, ds, cfg, predicted in cases:
                r = run_config(
                    RunRequest(
                        ds,  # type: ignore[arg-type]
                        cfg,
                        a.batches,
                        sandbox=PRIVATE_SHM,
                        step_s=a.step,
                        run_dir=tmp,
                        name=f"r{i}",
                    )
                )
                if not r.passed:
                    print(f"round {i} {name}: {r.describe()}")
                    return 1
                measured = float(r.metrics["shm_peak_bytes"])
                ratios.setdefault(name, []).append(measured / predicted)
                print(
                    f"round {i} {name}: predicted {predicted / 2**20:.1f} MiB, measured peak "
                    f"{measured / 2**20:.1f} MiB, measured/predicted {measured / predicted:.3f}"
                )
    for name, rs in ratios.items():
        print(f"{name}: measured/predicted {min(rs):.3f}–{max(rs):.3f} over {len(rs)} rounds")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    raise SystemExit(main())
