"""faults.py: which batch a drill fires at, across epochs, in torch's own DataLoader.

The drill kinds themselves are provoked for real in test_runner.py (each in an isolated child); here the
``exception`` drill is enough to see *where* a drill fires: a raising drill is re-raised by the main
process in order, so the loop has received exactly ``B`` batches when it raises. The loop is the child's
own ``batch_loop``, which tells the wrapper each epoch's start, over a tiny in-memory dataset.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from unit_helpers import EventLog, RangeItems

from ssv2_fixtures.run.faults import FaultSpec, FaultyDataset, parse_fault, refuse_unfit
from ssv2_fixtures.run.loop import Progress, batch_loop

# 3 workers on a 2-core machine is the point of one case, not a mistake
pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")


def _fires_at(
    items: int, bs: int, workers: int, at: int, total: int, *, persistent: bool = False, drop_last: bool = False
) -> int | None:
    """Run ``total`` batches through batch_loop with ``exception@at``; the batches received before the
    drill's error, or None if it never fired."""
    ds = FaultyDataset(RangeItems(items, width=1), FaultSpec("exception", at))
    loader = torch.utils.data.DataLoader(
        ds,
        batch_size=bs,
        num_workers=workers,
        drop_last=drop_last,
        persistent_workers=persistent and workers > 0,
        shuffle=False,
    )
    progress = Progress()
    try:
        batch_loop(EventLog(), loader, {"batches": total}, False, progress)
    except RuntimeError as exc:
        assert "injected fault" in str(exc), exc
        return progress.batch
    finally:
        progress.it = None
    return None


@settings(max_examples=60, deadline=None)
@given(items=st.integers(1, 9), bs=st.integers(1, 4), drop_last=st.booleans(), data=st.data())
def test_in_the_main_process_a_drill_fires_at_its_batch_in_any_epoch(items, bs, drop_last, data) -> None:
    per_epoch = items // bs if drop_last else -(-items // bs)
    assume(per_epoch > 0)  # drop_last with fewer items than a batch: no batch at all
    total = 4 * per_epoch + 1
    at = data.draw(st.integers(0, total - 1))
    assert _fires_at(items, bs, 0, at, total, drop_last=drop_last) == at


class _Numbered(FaultyDataset):
    """Puts the batch number the wrapper computes into every item of the batch: one pass over three
    epochs checks the count for every batch, in real forked workers, without a drill per batch."""

    def __getitems__(self, indices: list[int]) -> list[Any]:
        b = self.batch_now()
        self._built += 1
        return [(torch.tensor([float(b)]), i) for i in indices]


@pytest.mark.parametrize("persistent", [False, True], ids=["fresh-workers", "persistent-workers"])
@pytest.mark.parametrize("items,bs,workers", [(5, 2, 2), (7, 3, 2), (5, 1, 3)])
def test_in_workers_each_batch_knows_its_number_across_epochs(items, bs, workers, persistent) -> None:
    """3-5 batches an epoch (a short last one in 5/2 and 7/3), three epochs; persistent workers keep
    counting past an epoch's end, fresh ones are told the epoch when they start."""
    ds = _Numbered(RangeItems(items, width=1), FaultSpec("exception", 0))
    loader = torch.utils.data.DataLoader(ds, batch_size=bs, num_workers=workers, persistent_workers=persistent)
    total = 3 * len(loader)
    numbers: list[int] = []
    batch_loop(
        EventLog(),
        loader,
        {"batches": total},
        False,
        Progress(),
        on_batch=lambda epoch, item: numbers.extend({int(x) for x in item[0].flatten()}),
    )
    assert numbers == list(range(total))


@pytest.mark.parametrize("persistent", [False, True], ids=["fresh-workers", "persistent-workers"])
@pytest.mark.parametrize("items,bs,workers", [(5, 2, 2), (3, 4, 2), (5, 1, 3)])
def test_with_the_endless_sampler_the_run_is_one_epoch_and_each_batch_knows_its_number(
    items, bs, workers, persistent
) -> None:
    """What every single-process run now draws from: batch_loop tells the wrapper ``N = 0`` (no epoch
    end), and batch ``B`` is still the ``B``-th batch received, a batch larger than the split included."""
    from ssv2_fixtures.data.loader import LoaderConfig, make_loader

    ds = _Numbered(RangeItems(items, width=1), FaultSpec("exception", 0))
    cfg = LoaderConfig(batch_size=bs, num_workers=workers, persistent_workers=persistent)
    numbers: list[int] = []
    ev = EventLog()
    batch_loop(
        ev,
        make_loader(ds, cfg, endless=True),
        {"batches": 9},
        False,
        Progress(),
        on_batch=lambda epoch, item: numbers.extend({int(x) for x in item[0].flatten()}),
    )
    assert numbers == list(range(9)) and not [e for e in ev.seen if e["ev"] == "epoch"]
    assert ds._epoch == 0 and ds._per_epoch == 0


@settings(max_examples=15, deadline=None)
@given(items=st.integers(1, 9), bs=st.integers(1, 12), at=st.integers(0, 12))
def test_an_endless_drill_fires_at_its_batch(items, bs, at) -> None:
    from ssv2_fixtures.data.loader import LoaderConfig, make_loader

    ds = FaultyDataset(RangeItems(items, width=1), FaultSpec("exception", at))
    progress = Progress()
    with pytest.raises(RuntimeError, match="injected fault"):
        batch_loop(
            EventLog(),
            make_loader(ds, LoaderConfig(batch_size=bs, num_workers=0), endless=True),
            {"batches": 13},
            False,
            progress,
        )
    assert progress.batch == at


def test_corrupt_video_is_a_real_decode_error_of_that_item(synth_root) -> None:
    from ssv2_fixtures.data.clips import ClipDecodeError, SSv2Clips

    ds = SSv2Clips(synth_root, "train", num_frames=2, size=32)
    with pytest.raises(ClipDecodeError) as e:
        FaultyDataset(ds, FaultSpec("corrupt_video", 0)).__getitems__([3, 4])
    assert e.value.video_id == ds.index.video_id(3) and "ssv2-fault-corrupt-" in e.value.path
    assert not os.path.exists(e.value.path)  # the broken copy is removed
    assert ds.index.path(3) != e.value.path and ds[3][0].shape == (2, 32, 32, 3)  # the dataset is untouched


def test_a_drill_past_the_run_never_fires_here_and_run_config_refuses_it() -> None:
    assert _fires_at(4, 2, 0, 6, 6) is None  # what run_config's refusal prevents: a silent "pass"
    from ssv2_fixtures.data.loader import LoaderConfig
    from ssv2_fixtures.run.request import RunRequest
    from ssv2_fixtures.run.runner import run_config

    with pytest.raises(ValueError, match=r"exception@6 fires at batch 6, but this run loads batches 0\.\.5"):
        run_config(RunRequest("/nonexistent", LoaderConfig(batch_size=2), 6, fault="exception@6"))


@pytest.mark.parametrize(
    "text,spec",
    [
        ("bus_error", FaultSpec("bus_error", 0)),
        ("exception@2/1", FaultSpec("exception", 2, 1)),
        ("killed@7", FaultSpec("killed", 7)),
    ],
)
def test_parse_fault(text: str, spec: FaultSpec) -> None:
    assert parse_fault(text) == spec and str(spec) == text.replace("bus_error", "bus_error@0")


@pytest.mark.parametrize(
    "text,message", [("nope@1", "unknown fault 'nope'"), ("exception@x", "integers"), ("exception@-1", ">= 0")]
)
def test_parse_fault_names_the_source(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as e:
        parse_fault(text, where="train.toml [stress] fault")
    assert "train.toml [stress] fault" in str(e.value) and "KIND[@BATCH][/RANK]" in str(e.value)


class _Batched(RangeItems):
    """A dataset with its own ``__getitems__`` (a user's batched fetch): it marks what it builds."""

    def __getitems__(self, indices: list[int]) -> list[Any]:
        return [("batched", i) for i in indices]


def test_the_wrapper_fetches_through_the_datasets_own_getitems() -> None:
    inner = _Batched(6, width=1)
    ds = FaultyDataset(inner, FaultSpec("exception", 1))
    assert ds.__getitems__([0, 1]) == [("batched", 0), ("batched", 1)]  # batch 0: no drill
    with pytest.raises(RuntimeError, match="injected fault"):
        ds.__getitems__([2, 3])  # batch 1: the drill fires before any item is fetched
    plain = FaultyDataset(RangeItems(4), FaultSpec("exception", 9))
    assert plain.__getitems__([0, 3]) == [0, 3]  # no __getitems__ of its own: one __getitem__ per item


def test_corrupt_video_with_a_users_pipeline_is_refused_naming_both_options() -> None:
    with pytest.raises(ValueError) as e:
        refuse_unfit(FaultSpec("corrupt_video", 2), "mypkg.data:build")
    msg = str(e.value)
    assert "--inject-fault corrupt_video@2" in msg and "--dataset-factory mypkg.data:build" in msg and "Fix:" in msg
    refuse_unfit(FaultSpec("exception", 2), "mypkg.data:build")  # any other drill runs on a user's pipeline
    refuse_unfit(FaultSpec("corrupt_video", 2), None)  # and corrupt_video on the suite's dataset
    from ssv2_fixtures.data.loader import LoaderConfig
    from ssv2_fixtures.run.request import RunRequest
    from ssv2_fixtures.run.runner import dataset_spec, run_config

    with pytest.raises(ValueError, match="cannot run with --dataset-factory"):
        run_config(
            RunRequest(
                dataset_spec("/nonexistent", factory="mypkg.data:build"),
                LoaderConfig(batch_size=2),
                6,
                fault="corrupt_video@1",
            )
        )
