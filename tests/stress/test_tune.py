"""``-m tune``: the fastest stable loader settings per ``--batch-sizes`` entry within ``--tune-budget``
seconds (or, with ``--target-videos-per-s X``, the cheapest that reaches X). The search is
:mod:`ssv2_fixtures.stress.tune`; results.json gets ``"tune"`` and the run folder ``tuned.toml``.
"""
from __future__ import annotations

import pytest

from ssv2_fixtures.stress.tune_run import run_tune, write_tuned

pytestmark = pytest.mark.tune


def test_tune(stress, ssv2_session):
    s = ssv2_session.settings
    results = run_tune(stress, budget_s=float(s.tune_budget), target=s.target_videos_per_s)
    for r in results:  # after the live line per probe, the outcome per batch size
        if stress.progress is not None:
            b = r.best
            stress.progress(f"  tune bs{r.batch_size}: " + (
                f"{b.config.label}{'-pw' if b.config.persistent_workers else ''} {b.rate:.1f} "
                f"[{b.lo:.1f}, {b.hi:.1f}] videos/s, {'confirmed' if r.confirmed else 'NOT confirmed'}"
                if b else "no pick") + f"; {len(r.tried)} probes, spent {r.spent_s:.0f} of {r.budget_s:.0f} s")
    ssv2_session.tune = [r.record() for r in results]
    ssv2_session.flush()
    write_tuned(ssv2_session.run_dir, results)
    bad = [r.failure() for r in results if not r.ok]
    if bad:
        pytest.fail("\n".join(bad), pytrace=False)
