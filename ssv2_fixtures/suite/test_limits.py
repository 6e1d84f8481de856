"""``-m limits``: per worker count, the largest batch size that survives --limit-batches batches
(grow, then bisect: :mod:`ssv2_fixtures.stress.limits`). Passes when the boundary is found (or none up
to the largest size tried, itself a result) and every failing probe is classified (never ``unknown``).
"""

from __future__ import annotations

import pytest

from ssv2_fixtures.stress import limits

pytestmark = pytest.mark.limits


def test_limits(limits_workers, stress):
    found = limits.search(stress, limits_workers)
    assert not found.unclassified, f"failing probes not classified: {found.unclassified}"
    print(found.summary)
