"""The grow-and-bisect search of ``-m limits``, on a pure probe (no processes)."""
from __future__ import annotations

from hypothesis import given, strategies as st

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
