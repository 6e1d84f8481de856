"""``-m sustained``: --batches (default 100) per config over --batch-sizes × --workers × --prefetch.

A config fails on a failure outcome, on memory growth (leak verdict) or on throughput decay
(degradation verdict); thresholds are in :mod:`ssv2_fixtures.stress.verdicts`.
"""

from __future__ import annotations

import pytest

from ssv2_fixtures.stress import bench, quick

pytestmark = pytest.mark.sustained


def test_sustained(sustained_config, stress, ssv2_dataset, request):
    config, requested = sustained_config
    step = quick.sustained(stress, config, requested)
    if step.failure:
        pytest.fail(step.failure, pytrace=False)
    assert step.result is not None  # a run that did not fail carries its result
    bench.bridge(request, step.result, ssv2_dataset[1])
