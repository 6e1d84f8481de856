"""ssv2_fixtures.run.growth: the leak rule needs growth past both floors, the absolute and the relative one."""

from __future__ import annotations

from ssv2_fixtures.run.growth import LEAK_MIN_BYTES, LEAK_MIN_FRACTION, leaks


def test_growth_past_both_floors_leaks() -> None:
    first = LEAK_MIN_BYTES  # small start: the absolute floor is the higher one
    assert leaks(LEAK_MIN_BYTES + 1, first)
    assert not leaks(LEAK_MIN_BYTES, first)  # at the floor is not past it


def test_growth_past_only_the_absolute_floor_of_a_large_process_is_noise() -> None:
    first = 100 * LEAK_MIN_BYTES  # large start: 15 % of it is far above the absolute floor
    grown = 2 * LEAK_MIN_BYTES
    assert grown < LEAK_MIN_FRACTION * first
    assert not leaks(grown, first)
    assert leaks(LEAK_MIN_FRACTION * first + 1, first)
