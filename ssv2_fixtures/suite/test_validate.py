"""``-m validate --train-config train.toml``: the training job's exact loader settings, run sustained,
against its targets (:mod:`ssv2_fixtures.stress.validate`); prints a target-vs-achieved table
(pre-flight checks run too: test_preflight)."""

from __future__ import annotations

import pytest

from ssv2_fixtures.stress import bench, validate

pytestmark = pytest.mark.validate


def test_validate_train_config(stress, ssv2_dataset, request):
    out = validate.run(stress)
    if out.shown_table:  # a missed target's table is in the failure message instead (shown once)
        print(out.shown_table)
    if out.failure:
        pytest.fail(out.failure, pytrace=False)
    assert out.result is not None  # a run that did not fail carries its result
    bench.bridge(request, out.result, ssv2_dataset[1])
