"""``-m sustained``: --batches (default 100) per config over --batch-sizes × --workers × --prefetch.

A config fails on a failure outcome, on memory growth (leak verdict) or on throughput decay
(degradation verdict); thresholds are in :mod:`ssv2_fixtures.stress.verdicts`.
"""
from __future__ import annotations

import pytest

from ssv2_fixtures.stress.campaign import bridge_benchmark

pytestmark = pytest.mark.sustained


def test_sustained(sustained_config, stress, ssv2_session, ssv2_dataset, request):
    config, requested = sustained_config
    result = stress.run(config, ssv2_session.settings.batches, kind="sustained", train=True, live=True)
    if requested != config.num_workers:
        result.record["requested_workers"] = requested
    crashed = not result.passed
    bad = [] if crashed else [v for v in stress.judge(result) if not v["ok"]]
    if bad:
        result.record["status"] = "failed"  # the run finished, but a verdict failed it
    stress.record(result)
    if crashed:
        pytest.fail(result.describe(), pytrace=False)
    if bad:
        pytest.fail(f"{config.label}: " + "; ".join(f"{v['name']}: {v['detail']}" for v in bad), pytrace=False)
    bridge_benchmark(request, result, ssv2_dataset[1])
