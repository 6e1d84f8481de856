"""rank_child.py: the indexed batches (in-process, through torch's DistributedSampler) and real torchrun
ranks: batch facts and per-rank distinct videos, and a split too small for one batch per rank refused
before the process group forms."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psutil
import pytest
import torch
from torch.utils.data.distributed import DistributedSampler
from unit_helpers import EventLog, RangeItems

from ssv2_fixtures.data.loader import LoaderConfig, make_loader
from ssv2_fixtures.run.faults import FaultSpec, FaultyDataset
from ssv2_fixtures.run.loop import Progress, batch_loop
from ssv2_fixtures.run.rank_child import WorkerReport, _Indexed, _IndexedCollate, worker_pids


def _user_collate(items: list[Any]) -> dict[str, Any]:
    return {"x": torch.stack([x for x, _ in items]), "y": [y for _, y in items]}


@pytest.mark.parametrize("collate", [None, _user_collate], ids=["default-collate", "user-collate"])
def test_indexed_batches_carry_what_the_sampler_gave_this_rank(collate: Any) -> None:
    """9 items, rank 1 of 2, batch 2: 5 samples an epoch (2 + 2 + 1); the indices beside each batch are
    the sampler's, and the dataset's own batch keeps its structure."""
    ds = _Indexed(RangeItems(9, width=3))
    sampler = DistributedSampler(ds, num_replicas=2, rank=1, shuffle=True, seed=3)  # type: ignore[arg-type]
    loader = make_loader(
        ds,
        LoaderConfig(batch_size=2, num_workers=0),
        sampler=sampler,
        shuffle=False,
        collate_fn=_IndexedCollate(collate),
    )
    seen: list[int] = []
    ev = EventLog()
    batch_loop(
        ev,
        loader,
        {"batches": 3},
        False,
        Progress(),
        on_batch=lambda e, item: seen.extend(item[1]),
        videos_of=lambda item: len(item[1]),
    )
    assert seen == list(sampler)
    assert [e["videos"] for e in ev.seen if e["ev"] == "batch"] == [2, 2, 1]
    assert [e["shape"] for e in ev.seen if e["ev"] == "batch"] == [[2, 3], [2, 3], [1, 3]]
    batch, idx = next(iter(loader))
    values = batch["x"] if collate else batch[0]
    assert values[:, 0].tolist() == [float(i) for i in idx]


def test_a_drill_counts_batches_through_the_indexed_wrapper() -> None:
    ds = _Indexed(FaultyDataset(RangeItems(8, width=3), FaultSpec("exception", 5)))
    sampler = DistributedSampler(ds, num_replicas=2, rank=0, shuffle=False)  # type: ignore[arg-type]
    loader = make_loader(
        ds, LoaderConfig(batch_size=2, num_workers=0), sampler=sampler, shuffle=False, collate_fn=_IndexedCollate(None)
    )
    progress = Progress()
    with pytest.raises(RuntimeError, match="injected fault"):
        batch_loop(EventLog(), loader, {"batches": 8}, False, progress, on_epoch=sampler.set_epoch)
    assert progress.batch == 5 and progress.epoch == 2  # 2 batches an epoch: batch 5 is epoch 2's second


@pytest.mark.parametrize("persistent", [False, True])
def test_the_rank_reports_each_iterators_worker_pids_once(persistent: bool) -> None:
    """A real 2-worker loader over 3 epochs (batch_loop, as a rank runs it): one ``workers`` event per
    iterator, its pids the live worker processes of this process at that moment; persistent workers are
    one iterator, so one report."""
    ds = _Indexed(RangeItems(4, width=3))
    loader = make_loader(
        ds,
        LoaderConfig(batch_size=2, num_workers=2, persistent_workers=persistent, prefetch_factor=2),
        shuffle=False,
        collate_fn=_IndexedCollate(None),
    )
    ev = EventLog()
    report = WorkerReport(ev)
    progress = Progress()
    alive: list[set[int]] = []

    def on_batch(epoch: int, item: Any) -> None:
        before = len(ev.seen)
        report.check(progress.it)
        if len(ev.seen) > before:  # what ran when the report was made
            alive.append({c.pid for c in psutil.Process().children() if c.pid in ev.seen[-1]["pids"]})

    batch_loop(ev, loader, {"batches": 6}, False, progress, on_batch=on_batch)
    reports = [e for e in ev.seen if e["ev"] == "workers"]
    assert len(reports) == (1 if persistent else 3), reports
    for e, live in zip(reports, alive):
        assert len(e["pids"]) == 2 and set(e["pids"]) == live, (e, live)
    if not persistent:  # each epoch's iterator starts its own workers
        assert len({p for e in reports for p in e["pids"]}) == 6
    del loader


def test_a_single_process_iterator_reports_no_workers() -> None:
    it = iter(
        make_loader(
            _Indexed(RangeItems(4, width=3)),
            LoaderConfig(batch_size=2, num_workers=0),
            shuffle=False,
            collate_fn=_IndexedCollate(None),
        )
    )
    assert worker_pids(it) == []
    assert worker_pids(object()) is None  # an iterator that says nothing of its workers: not observed


# --- real ranks under torchrun ------------------------------------------------------------------------


@pytest.fixture
def ranks(synth_root: Path, tmp_path: Path):
    from ssv2_fixtures.run.request import RunRequest
    from ssv2_fixtures.run.runner import Watchdog, dataset_spec, run_distributed

    def go(cfg: LoaderConfig, batches: int, **ds_kw: Any) -> tuple[Any, list[dict[str, Any]]]:
        seen: list[dict[str, Any]] = []
        ds = dataset_spec(synth_root, "train", size=32, num_frames=2, **ds_kw)
        request = RunRequest(
            ds,
            cfg,
            batches,
            run_dir=tmp_path,
            watchdog=Watchdog(startup_s=120, stall_s=30),
            on_event=lambda ev, _m: seen.append(dict(ev)),
        )
        r = run_distributed(request, nproc_per_node=2)
        return r, seen

    return go


@pytest.mark.timeout(300)
def test_two_ranks_report_batch_facts_and_their_distinct_videos(ranks) -> None:
    """9 videos on 2 ranks, batch 2, no drop_last: 5 per rank an epoch (2 + 2 + 1), 4 batches cross into
    the second epoch; distinct_videos is what the rank received (the gathered indices)."""
    r, seen = ranks(LoaderConfig(batch_size=2, num_workers=0, shuffle=True, seed=3), 4)
    assert r.passed, r.describe()
    for rank in (0, 1):
        b = [e for e in seen if e["ev"] == "batch" and e.get("rank") == rank]
        assert [e["videos"] for e in b] == [2, 2, 1, 2] and [e["clips"] for e in b] == [2, 2, 1, 2]
        assert all(e["shape"][1:] == [2, 32, 32, 3] and e["dtype"] == "torch.uint8" for e in b)
        # num_workers=0: each epoch's iterator is reported, with no worker pids
        assert [e["pids"] for e in seen if e["ev"] == "workers" and e.get("rank") == rank] == [[], []]
        (fin,) = [e for e in seen if e["ev"] == "finished" and e.get("rank") == rank]
        assert fin["split_size"] == 9 and fin["epochs"] == 2 and fin["videos"] == 7
        gathered = json.loads((Path(r.record["run_dir"]) / "indices.json").read_text())
        mine = next(x for x in gathered["ranks"] if x["rank"] == rank)
        assert fin["distinct_videos"] == len({i for e in mine["epochs"] for i in e})
        s = DistributedSampler(range(9), num_replicas=2, rank=rank, shuffle=True, seed=3)
        assert mine["epochs"][0] == list(s)


@pytest.mark.timeout(300)
def test_a_split_too_small_for_a_batch_per_rank_is_refused_with_the_reason(ranks) -> None:
    """3 videos on 2 ranks with drop_last: 1 per rank, batch 2: every epoch would be empty (before, the
    run restarted empty epochs until the watchdog named it a hang)."""
    r, seen = ranks(LoaderConfig(batch_size=2, num_workers=1, drop_last=True), 4, limit=3)
    assert not r.passed
    errors = [e for e in seen if e["ev"] == "error"]
    assert errors and all(e["type"] == "SplitTooSmallError" and e["batch"] == 0 for e in errors)
    assert "each of the 2 ranks 1 per epoch, fewer than batch_size=2" in errors[0]["message"]
    assert not [e for e in seen if e["ev"] == "batch"]
    assert r.kind != "hang", r.describe()
