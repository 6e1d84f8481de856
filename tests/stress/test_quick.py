"""``-m quick``: the progressive 9-phase ladder, each phase isolated, a few batches each."""
from __future__ import annotations

import pytest

from ssv2_fixtures.stress.campaign import bridge_benchmark

pytestmark = pytest.mark.quick


def test_ladder(ladder_phase, stress, ssv2_session, ssv2_dataset, request):
    phase = ladder_phase
    cap = ssv2_session.settings.max_workers
    if phase.duplicate_of is not None:
        note = (f"phase{phase.number}: W={phase.requested_workers} capped to {cap} (--max-workers, default "
                f"2 × cores) is the same config as phase{phase.duplicate_of}; raise --max-workers to run it")
        ssv2_session.capped.append(note)
        pytest.skip(note)
    if ssv2_session.ladder_failure is not None:
        n, kind = ssv2_session.ladder_failure
        pytest.skip(f"phase {n} failed: {kind}")
    result = stress.run(phase.config, ssv2_session.settings.quick_batches, kind="quick",
                        phase=f"phase{phase.number}")
    if phase.requested_workers != phase.config.num_workers:
        result.record["requested_workers"] = phase.requested_workers
        ssv2_session.capped.append(f"phase{phase.number}: W={phase.requested_workers} capped to {cap}")
    stress.record(result)
    if not result.passed:
        ssv2_session.ladder_failure = (phase.number, result.kind or "unknown")
        pytest.fail(f"phase{phase.number} {result.describe()}", pytrace=False)
    bridge_benchmark(request, result, ssv2_dataset[1])
