"""``-m tune``: the fastest stable loader settings per ``--batch-sizes`` entry within ``--tune-budget``
seconds (or, with ``--target-videos-per-s X``, the cheapest that reaches X). The search is
:mod:`ssv2_fixtures.stress.tune`; results.json gets ``"tune"`` and the run folder ``tuned.toml``.
"""

from __future__ import annotations

import pytest

from ssv2_fixtures.stress.tune_run import tune_session

pytestmark = pytest.mark.tune


def test_tune(stress):
    bad = tune_session(stress)
    if bad:
        pytest.fail("\n".join(bad), pytrace=False)
