"""``-m limits``: per worker count, the largest batch size that survives --limit-batches batches.

Grow (1, 2, 4, … up to --max-batch-size), then bisect between the last pass and the first failure;
every probe is an isolated run. Passes when the boundary is found (or none up to the largest size
tried, itself a result) and every failing probe is classified (never ``unknown``).
"""
from __future__ import annotations

import pytest

from ssv2_fixtures.data.loader import LoaderConfig

pytestmark = pytest.mark.limits


def test_limits(limits_workers, stress, ssv2_session):
    s = ssv2_session.settings
    w = limits_workers
    pf = s.prefetch[0] if w else None
    probes: dict[int, object] = {}

    def probe(bs: int) -> bool:
        cfg = LoaderConfig(batch_size=bs, num_workers=w, prefetch_factor=pf, sharing_strategy=s.sharing_strategy)
        r = stress.run(cfg, s.limit_batches, kind="limits", phase=f"w{w}-bs{bs}")
        stress.record(r)
        probes[bs] = r
        return r.passed

    good, bad = 0, None
    bs = 1
    while bs <= s.max_batch_size:
        if probe(bs):
            good = bs
            bs = bs * 2 if bs < s.max_batch_size else bs + 1
            if bs > s.max_batch_size and good < s.max_batch_size:
                bs = s.max_batch_size
        else:
            bad = bs
            break
    while bad is not None and bad - good > 1:
        mid = (good + bad) // 2
        if probe(mid):
            good = mid
        else:
            bad = mid
    beyond = probes[bad].kind if bad is not None else None  # type: ignore[attr-defined]
    entry = {
        "num_workers": w, "prefetch_factor": pf, "boundary_batch_size": good or None,
        "first_failing_batch_size": bad, "kind_beyond": beyond, "max_batch_size_tried": max(probes),
        "probes": [r.record["label"] for r in probes.values()],  # type: ignore[attr-defined]
        "emulated": s.sandbox.to_dict() if s.sandbox else None,
        "shm_need_beyond_bytes": probes[bad].record["budget"]["shm_bytes"] if bad else None,  # type: ignore[attr-defined]
    }
    ssv2_session.limits.append(entry)
    ssv2_session.flush()
    unknown = [r.record["label"] for r in probes.values() if not r.passed and r.kind == "unknown"]  # type: ignore[attr-defined]
    assert not unknown, f"failing probes not classified: {unknown}"
    if bad is None:
        print(f"W={w}: no failure up to batch size {max(probes)} (the largest tried)")
    else:
        print(f"W={w}: boundary batch size {good or 'none'}; {bad} fails as {beyond}")
