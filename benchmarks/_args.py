"""Options every loader benchmark shares (imported by the scripts beside it: ``python benchmarks/X.py``)."""

from __future__ import annotations

import argparse
import os


def loader_args(ap: argparse.ArgumentParser, *, batch_size: int, workers: int = 2, prefetch: int = 2) -> None:
    """The synthetic set and the DataLoader config a benchmark measures."""
    ap.add_argument("--videos", type=int, default=64, help="distinct clips in the synthetic set")
    ap.add_argument("--batch-size", type=int, default=batch_size)
    ap.add_argument("--workers", type=int, default=workers)
    ap.add_argument("--prefetch", type=int, default=prefetch)
    ap.add_argument("--cache", default=os.environ.get("SSV2_STRESS_CACHE", os.path.expanduser("~/.cache/ssv2-stress")))
