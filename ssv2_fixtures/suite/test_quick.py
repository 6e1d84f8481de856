"""``-m quick``: the progressive 9-phase ladder, each phase isolated, each a measured time window
(:func:`ssv2_fixtures.stress.plans.quick_measure`)."""

from __future__ import annotations

import pytest

from ssv2_fixtures.stress import bench, quick

pytestmark = pytest.mark.quick


def test_ladder(ladder_phase, stress, ssv2_dataset, request):
    step = quick.ladder_phase(stress, ladder_phase)
    if step.skip:
        pytest.skip(step.skip)
    if step.failure:
        pytest.fail(step.failure, pytrace=False)
    assert step.result is not None  # a run that did not fail carries its result
    bench.bridge(request, step.result, ssv2_dataset[1])
