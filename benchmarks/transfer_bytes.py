"""Transfer ceiling vs batch bytes (issue #23): ready-made items of the same shape, uint8 vs float64 (8× the
bytes), through the same DataLoader path (run/breakdown_probe.transfer_rate). Prints both rates.

    python benchmarks/transfer_bytes.py [--workers 2] [--batch-size 8] [--seconds 3]
"""

from __future__ import annotations

import argparse


def main() -> None:
    import torch

    from ssv2_fixtures.data.loader import LoaderConfig
    from ssv2_fixtures.run.breakdown_probe import transfer_rate

    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=3.0)
    a = ap.parse_args()
    cfg = LoaderConfig(batch_size=a.batch_size, num_workers=a.workers)
    for dtype in (torch.uint8, torch.float64):
        items = [{"clip": torch.zeros(16, 112, 112, 3, dtype=dtype)} for _ in range(4)]
        r = transfer_rate(items, cfg, None, a.seconds)
        print(
            f"{str(dtype):14} {r['bytes_per_batch'] / 1e6:8.1f} MB/batch",
            f"{r['videos_per_s']:8.1f} videos/s ({r['label']})",
        )


if __name__ == "__main__":
    main()
