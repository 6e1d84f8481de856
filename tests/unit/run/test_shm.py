"""The one shared-memory formula (run/shm.py), which the runner's evidence and the budget share."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ssv2_fixtures.data.loader import LoaderConfig
from ssv2_fixtures.run.shm import LABEL_BYTES, batch_bytes, shm_in_flight, shm_slots


def test_no_workers_put_nothing_in_shm() -> None:
    assert shm_slots(LoaderConfig(batch_size=32, num_workers=0)) == 0
    assert shm_in_flight(LoaderConfig(batch_size=32, num_workers=0), 10**9) == 0


def test_workers_times_prefetch_plus_the_batch_in_hand() -> None:
    assert shm_slots(LoaderConfig(batch_size=8, num_workers=4)) == 4 * 2 + 1  # torch's default prefetch 2
    assert shm_in_flight(LoaderConfig(batch_size=8, num_workers=1, prefetch_factor=4), 1000) == 5000


def test_predicted_batch_counts_clips_and_labels() -> None:
    assert batch_bytes(2, 16, 224) == 2 * 16 * 224 * 224 * 3 + 2 * LABEL_BYTES


@given(st.integers(1, 64), st.integers(1, 16), st.integers(1, 8), st.integers(0, 10**8))
def test_more_workers_or_prefetch_never_need_less(bs: int, w: int, pf: int, b: int) -> None:
    base = shm_in_flight(LoaderConfig(batch_size=bs, num_workers=w, prefetch_factor=pf), b)
    assert shm_in_flight(LoaderConfig(batch_size=bs, num_workers=w + 1, prefetch_factor=pf), b) >= base
    assert shm_in_flight(LoaderConfig(batch_size=bs, num_workers=w, prefetch_factor=pf + 1), b) >= base
