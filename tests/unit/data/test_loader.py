"""LoaderConfig validation, make_loader behaviour on real data, and the refusals of unbatchable configs
(the ladder/matrix config sets are tested with stress/plans.py)."""

from __future__ import annotations

import dataclasses
from itertools import islice
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as torch_mp
from hypothesis import given, settings
from hypothesis import strategies as st
from unit_helpers import RangeItems

from ssv2_fixtures.data.clips import SSv2Clips
from ssv2_fixtures.data.loader import (
    LoaderConfig,
    SplitTooSmallError,
    distributed_samples,
    make_loader,
    refuse_unbatchable,
)

T, SIZE = 4, 64


# --------------------------------------------------------------------------- LoaderConfig


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(num_workers=0, prefetch_factor=2), "prefetch_factor"),
        (dict(num_workers=2, prefetch_factor=0), "prefetch_factor"),
        (dict(num_workers=2, prefetch_factor=True), "prefetch_factor"),
        (dict(num_workers=2, prefetch_factor=2.0), "prefetch_factor"),
        (dict(batch_size=-1), "batch_size"),
        (dict(batch_size=0), "batch_size"),
        (dict(batch_size=True), "batch_size"),
        (dict(batch_size=8.0), "batch_size"),
        (dict(batch_size="8"), "batch_size"),
        (dict(num_workers=-1), "num_workers"),
        (dict(num_workers=False), "num_workers"),
        (dict(seed=True), "seed"),
        (dict(sharing_strategy="shm"), "sharing_strategy"),
        (dict(sharing_strategy="FILE_SYSTEM"), "sharing_strategy"),
        (dict(num_workers=0, persistent_workers=True), "persistent_workers"),
        (dict(persistent_workers="false"), "persistent_workers"),
        (dict(pin_memory=1), "pin_memory"),
        (dict(shuffle="yes"), "shuffle"),
        (dict(drop_last=None), "drop_last"),
        (dict(timeout=-1), "timeout"),
        (dict(timeout=True), "timeout"),
        (dict(timeout=float("nan")), "timeout"),
        (dict(num_workers=0, timeout=5), "timeout"),
        (dict(mp_context="threads"), "mp_context"),
    ],
)
def test_invalid_combinations_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"LoaderConfig\.{field}:"):
        LoaderConfig(**kwargs)


def test_valid_configs_and_defaults() -> None:
    c = LoaderConfig()
    assert (c.batch_size, c.num_workers, c.prefetch_factor, c.effective_prefetch) == (8, 2, None, 2)
    assert LoaderConfig(num_workers=0).effective_prefetch == 0
    assert LoaderConfig(num_workers=3, prefetch_factor=5).effective_prefetch == 5
    LoaderConfig(
        num_workers=1,
        persistent_workers=True,
        timeout=2.5,
        mp_context="spawn",
        sharing_strategy="file_system",
        pin_memory=True,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.batch_size = 4  # frozen


@pytest.mark.parametrize(
    "kwargs, label",
    [
        (dict(batch_size=1, num_workers=0), "bs1-w0"),
        (dict(batch_size=4, num_workers=2), "bs4-w2-pf2"),
        (dict(batch_size=4, num_workers=2, prefetch_factor=2), "bs4-w2-pf2"),
        (dict(batch_size=16, num_workers=8, prefetch_factor=4), "bs16-w8-pf4"),
        (dict(batch_size=8, num_workers=0, sharing_strategy="file_system"), "bs8-w0-fs"),
        (dict(batch_size=32, num_workers=4, prefetch_factor=1, sharing_strategy="file_system"), "bs32-w4-pf1-fs"),
    ],
)
def test_label(kwargs: dict, label: str) -> None:
    assert LoaderConfig(**kwargs).label == label


def test_dict_round_trip_and_unknown_field() -> None:
    c = LoaderConfig(batch_size=3, num_workers=1, prefetch_factor=3, shuffle=True, seed=7)
    assert LoaderConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match=r"spec\.json: unknown LoaderConfig field\(s\) \['num_wokers'\]"):
        LoaderConfig.from_dict({"batch_size": 2, "num_wokers": 1}, where="spec.json")
    with pytest.raises(ValueError, match=r"run 3: LoaderConfig\.prefetch_factor"):
        LoaderConfig.from_dict({"num_workers": 0, "prefetch_factor": 2}, where="run 3")


# --------------------------------------------------------------------------- make_loader


@pytest.fixture(scope="module")
def train_ds(synth_root: Path) -> SSv2Clips:
    return SSv2Clips(synth_root, "train", num_frames=T, size=SIZE, train=False)


@pytest.fixture(autouse=True)
def _restore_sharing_strategy():
    before = torch_mp.get_sharing_strategy()
    yield
    torch_mp.set_sharing_strategy(before)


def _batches(loader) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(clips.clone(), labels.clone()) for clips, labels in loader]


def test_workers_do_not_change_the_batches(train_ds: SSv2Clips) -> None:
    # 9 train videos, batch 2: 5 batches, the last one short (drop_last off).
    ref = _batches(make_loader(train_ds, LoaderConfig(batch_size=2, num_workers=0, seed=3)))
    two = _batches(make_loader(train_ds, LoaderConfig(batch_size=2, num_workers=2, prefetch_factor=2, seed=3)))
    assert len(ref) == len(two) == 5 and ref[-1][0].shape[0] == 1
    for k, ((ca, la), (cb, lb)) in enumerate(zip(ref, two)):
        assert ca.shape == (ca.shape[0], T, SIZE, SIZE, 3) and ca.dtype == torch.uint8
        assert torch.equal(ca, cb), f"batch {k}: clips differ between 0 and 2 workers"
        assert torch.equal(la, lb), f"batch {k}: labels differ between 0 and 2 workers"
    labels = torch.cat([lb for _, lb in ref]).tolist()
    assert labels == [train_ds.index.label(i) for i in range(len(train_ds))]  # unshuffled order


def test_training_clips_reproducible_per_seed(synth_root: Path) -> None:
    """train=True samples random frames; the same LoaderConfig.seed must give the same clips."""
    ds = SSv2Clips(synth_root, "train", num_frames=T, size=SIZE, train=True, limit=6)

    def clips(seed: int) -> torch.Tensor:
        cfg = LoaderConfig(batch_size=3, num_workers=2, seed=seed)
        return torch.cat([c for c, _ in make_loader(ds, cfg)])

    a = clips(1)
    assert torch.equal(a, clips(1))
    assert not all(torch.equal(a, clips(s)) for s in (2, 3))
    # 0 workers: torch.manual_seed governs, as for any torch-random transform.
    torch.manual_seed(5)
    x = ds[0][0]
    torch.manual_seed(5)
    assert torch.equal(x, ds[0][0])


def test_shuffle_same_seed_same_order(train_ds: SSv2Clips) -> None:
    def order(seed: int, workers: int) -> list[int]:
        cfg = LoaderConfig(batch_size=3, num_workers=workers, shuffle=True, seed=seed)
        return [int(i) for batch in make_loader(RangeItems(len(train_ds)), cfg) for i in batch]

    a, b = order(11, 0), order(11, 0)
    assert a == b and sorted(a) == list(range(len(train_ds)))
    assert order(11, 2) == a  # the order comes from the seeded generator, not from the workers
    assert any(order(s, 0) != a for s in (12, 13, 14))  # and the seed matters
    # Shuffled batches of real clips are the same twice too.
    cfg = LoaderConfig(batch_size=3, num_workers=0, shuffle=True, seed=5)
    x = _batches(make_loader(train_ds, cfg))
    y = _batches(make_loader(train_ds, cfg))
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(x, y))


@pytest.mark.parametrize("strategy", ["file_system", "file_descriptor"])
def test_sharing_strategy_applied(train_ds: SSv2Clips, strategy: str) -> None:
    other = "file_descriptor" if strategy == "file_system" else "file_system"
    torch_mp.set_sharing_strategy(other)
    make_loader(train_ds, LoaderConfig(batch_size=2, num_workers=1, sharing_strategy=strategy))
    assert torch_mp.get_sharing_strategy() == strategy


def test_loader_gets_the_settings(train_ds: SSv2Clips) -> None:
    cfg = LoaderConfig(
        batch_size=3, num_workers=2, prefetch_factor=3, persistent_workers=True, drop_last=True, timeout=30.0
    )
    dl = make_loader(train_ds, cfg)
    assert (dl.batch_size, dl.num_workers, dl.prefetch_factor, dl.persistent_workers, dl.drop_last, dl.timeout) == (
        3,
        2,
        3,
        True,
        True,
        30.0,
    )
    assert len(dl) == len(train_ds) // 3
    dl0 = make_loader(train_ds, LoaderConfig(batch_size=4, num_workers=0), drop_last=True)
    assert dl0.num_workers == 0 and dl0.drop_last is True and len(dl0) == len(train_ds) // 4


def test_workers_get_one_torch_thread(train_ds: SSv2Clips) -> None:
    cfg = LoaderConfig(batch_size=1, num_workers=2)
    threads = [int(t) for t in make_loader(_Threads(), cfg)]
    assert threads == [1, 1]


class _Threads(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> int:
        return torch.get_num_threads()


# --------------------------------------------------------------------------- endless, user pipelines


@pytest.mark.parametrize("workers", [0, 2])
def test_endless_loader_batches_are_full_on_a_split_smaller_than_a_batch(train_ds: SSv2Clips, workers: int) -> None:
    """9 videos, batch size 12, shuffle: no epoch, every batch 12 clips of the real dataset, each video
    once before any repeats."""
    cfg = LoaderConfig(batch_size=12, num_workers=workers, shuffle=True, seed=4, prefetch_factor=1 if workers else None)
    dl = make_loader(train_ds, cfg, endless=True)
    assert dl.drop_last is True
    with pytest.raises(TypeError):
        len(dl)  # no epoch
    got = list(islice(iter(dl), 3))
    assert [c.shape[0] for c, _ in got] == [12, 12, 12]
    labels = torch.cat([lb for _, lb in got]).tolist()
    first = sorted(labels[: len(train_ds)])
    assert first == sorted(train_ds.index.label(i) for i in range(len(train_ds)))


def test_endless_loader_unshuffled_is_range_over_and_over() -> None:
    dl = make_loader(RangeItems(5), LoaderConfig(batch_size=3, num_workers=0), endless=True)
    assert [b.tolist() for b in islice(iter(dl), 4)] == [[0, 1, 2], [3, 4, 0], [1, 2, 3], [4, 0, 1]]


def _user_init(worker_id: int) -> None:
    torch.set_num_threads(3)  # undone if the suite's set-up (one thread) ran after this


def _user_collate(items: list[int]) -> dict[str, torch.Tensor]:
    return {"ids": torch.tensor(items), "threads": torch.tensor([torch.get_num_threads()])}


def test_user_collate_and_worker_init_run_after_the_suites(train_ds: SSv2Clips) -> None:
    cfg = LoaderConfig(batch_size=1, num_workers=2)
    batches = list(make_loader(_Threads(), cfg, collate_fn=_user_collate, worker_init_fn=_user_init))
    assert [int(b["threads"]) for b in batches] == [3, 3]
    without = [int(t) for t in make_loader(_Threads(), cfg)]
    assert without == [1, 1]  # the suite's own set-up alone


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 60), world=st.integers(1, 8), drop_last=st.booleans())
def test_distributed_samples_is_torchs_rule(n: int, world: int, drop_last: bool) -> None:
    from torch.utils.data.distributed import DistributedSampler

    ref = DistributedSampler(list(range(n)), num_replicas=world, rank=0, drop_last=drop_last, shuffle=False)
    assert distributed_samples(n, world, drop_last=drop_last) == ref.num_samples


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 40), world=st.integers(1, 6), bs=st.integers(1, 12), drop_last=st.booleans())
def test_a_distributed_config_is_refused_exactly_when_a_rank_gets_no_batch(
    n: int, world: int, bs: int, drop_last: bool
) -> None:
    """Refused iff each rank's DataLoader over DistributedSampler would yield no batch per epoch."""
    from torch.utils.data.distributed import DistributedSampler

    cfg = LoaderConfig(batch_size=bs, num_workers=0, drop_last=drop_last)
    if n == 0:
        yields = 0
    else:
        sampler = DistributedSampler(list(range(n)), num_replicas=world, rank=0, drop_last=drop_last, shuffle=False)
        yields = len(torch.utils.data.DataLoader(list(range(n)), batch_size=bs, sampler=sampler, drop_last=drop_last))
    if yields == 0:
        with pytest.raises(SplitTooSmallError, match="no batch can form|no videos") as e:
            refuse_unbatchable(n, cfg, world_size=world, where="bs-x")
        assert "bs-x" in str(e.value)
    else:
        refuse_unbatchable(n, cfg, world_size=world)


def test_refusals_single_process() -> None:
    cfg = LoaderConfig(batch_size=24, num_workers=0, drop_last=True)
    refuse_unbatchable(12, cfg, endless=True)  # the endless sampler fills a batch from any split
    with pytest.raises(SplitTooSmallError, match="12 videos, fewer than batch_size=24.*drop_last=True"):
        refuse_unbatchable(12, cfg)  # an epoch-based loader: every epoch would be empty
    refuse_unbatchable(12, LoaderConfig(batch_size=24, num_workers=0))  # one short batch per epoch
    with pytest.raises(SplitTooSmallError, match="no videos"):
        refuse_unbatchable(0, cfg, endless=True)
