"""Under a real torch.distributed (gloo) group of two processes, each rank watches its own loader and
its rank is in every log line: one shared log file and a ``{rank}`` file per rank."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import DataLoader, TensorDataset

from ssv2_fixtures.watch import read_log, watch

WORLD = 2
STEPS = 6


def _rank_main(rank: int, tmp: str) -> None:
    dist.init_process_group(
        "gloo",
        init_method=f"file://{tmp}/rendezvous",
        rank=rank,
        world_size=WORLD,
        timeout=__import__("datetime").timedelta(seconds=30),
    )
    try:
        # each rank its own loader, of its own batch size (so the lines cannot be mixed up) and the
        # same number of batches (so the per-step collective pairs up)
        bs = 4 * (rank + 1)
        dl = DataLoader(TensorDataset(torch.zeros(STEPS * bs, 2)), batch_size=bs)
        for log in (f"{tmp}/shared.jsonl", f"{tmp}/own_{{rank}}.jsonl"):
            w = watch(dl, log=log, interval_s=0.05)
            for _batch in w:
                dist.all_reduce(torch.ones(1))  # a real collective per step, as a training step has
            w.close()
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _init_only(rank: int, tmp: str) -> None:
    dist.init_process_group(
        "gloo",
        init_method=f"file://{tmp}/rendezvous",
        rank=rank,
        world_size=WORLD,
        timeout=__import__("datetime").timedelta(seconds=30),
    )
    dist.barrier()
    dist.destroy_process_group()


def test_each_rank_logs_its_rank_in_every_line(tmp_path: Path) -> None:
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not built into this torch")
    # Whether a gloo group can form here is asked apart, with no watch in it: once it can, every
    # error of the real run fails the test (a rank whose watch yields fewer batches leaves its peer's
    # all_reduce with "Connection closed by peer", exactly the bug this test is for).
    probe = tmp_path / "probe"
    probe.mkdir()
    try:
        mp.spawn(_init_only, args=(str(probe),), nprocs=WORLD, join=True)
    except mp.ProcessRaisedException as exc:
        pytest.skip(f"a gloo group cannot form here: {str(exc).strip().splitlines()[-1]}")
    mp.spawn(_rank_main, args=(str(tmp_path),), nprocs=WORLD, join=True)
    shared = read_log(tmp_path / "shared.jsonl")
    assert {e["rank"] for e in shared} == {0, 1}
    for rank in range(WORLD):
        own = [json.loads(ln) for ln in (tmp_path / f"own_{rank}.jsonl").read_text().splitlines()]
        assert own and all(e["rank"] == rank for e in own)
        for events in (own, [e for e in shared if e["rank"] == rank]):
            start, summary = events[0], events[-1]
            assert start["ev"] == "start" and start["world_size"] == WORLD
            assert start["config"]["batch_size"] == 4 * (rank + 1)
            assert summary["ev"] == "summary" and summary["steps"] == STEPS
            assert summary["videos"] == STEPS * 4 * (rank + 1)
