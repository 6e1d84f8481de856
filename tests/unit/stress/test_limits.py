"""The grow-and-bisect search of ``-m limits``, on a pure probe (no processes)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ssv2_fixtures.stress.limits import boundary


def _probe(limit: int, seen: list[int]):
    def probe(bs: int) -> bool:
        seen.append(bs)
        return bs <= limit

    return probe


@given(st.integers(1, 300), st.integers(0, 400))
def test_finds_the_exact_boundary(max_bs: int, limit: int) -> None:
    seen: list[int] = []
    good, bad = boundary(_probe(limit, seen), max_bs)
    if limit >= max_bs:
        assert (good, bad) == (max_bs, None) and max(seen) == max_bs
    else:
        assert (good, bad) == (limit, limit + 1)
    assert len(seen) == len(set(seen)), "a batch size was probed twice"
    assert len(seen) <= 2 * max(1, max_bs.bit_length()) + 1


def test_grow_order_lands_on_the_maximum() -> None:
    seen: list[int] = []
    boundary(_probe(1000, seen), 100)
    assert seen == [1, 2, 4, 8, 16, 32, 64, 100]


def test_first_probe_failing_means_no_boundary() -> None:
    assert boundary(lambda bs: False, 128) == (0, 1)


@given(st.integers(1, 300), st.one_of(st.none(), st.integers(0, 400)))
def test_search_bound_keeps_the_predicted_failure_in_reach(max_bs: int, fitting: int | None) -> None:
    from ssv2_fixtures.stress.limits import search_bound

    bound = search_bound(max_bs, fitting)
    assert 1 <= bound <= max_bs
    if fitting is None or 2 * fitting + 2 >= max_bs:
        assert bound == max_bs  # no shm in play, or the prediction is beyond the option: unchanged
    else:
        assert bound > fitting  # the search still reaches the first batch size predicted not to fit


def test_search_bound_from_measured_bytes() -> None:
    from ssv2_fixtures import LoaderConfig
    from ssv2_fixtures.stress.budget import largest_fitting_batch, predict
    from ssv2_fixtures.stress.limits import search_bound

    cfg = LoaderConfig(batch_size=1, num_workers=2, prefetch_factor=2)
    per_item = 2 * 3 * 16 * 224 * 224 * 4  # two float32 views: 8× the built-in uint8 clip
    fit = largest_fitting_batch(cfg, 2**30, bytes_per_item=per_item)
    assert fit is not None
    assert (
        predict(LoaderConfig(batch_size=fit, num_workers=2, prefetch_factor=2), bytes_per_item=per_item).shm_bytes
        <= 2**30
    )
    assert (
        predict(LoaderConfig(batch_size=fit + 1, num_workers=2, prefetch_factor=2), bytes_per_item=per_item).shm_bytes
        > 2**30
    )
    assert search_bound(128, fit) == 2 * fit + 2 < 128
    assert (largest_fitting_batch(cfg, 2**30) or 0) > fit  # the uint8 arithmetic would search 8× further
    assert largest_fitting_batch(LoaderConfig(batch_size=1, num_workers=0), 2**30) is None
