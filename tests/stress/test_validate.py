"""``-m validate --train-config train.toml``: the training job's exact loader settings, run sustained,
against its targets; prints a target-vs-achieved table (pre-flight checks run too: test_preflight)."""
from __future__ import annotations

import os

import pytest

from ssv2_fixtures.stress.campaign import bridge_benchmark
from ssv2_fixtures.stress.traincfg import TrainConfigError, check, load

pytestmark = pytest.mark.validate


def test_validate_train_config(stress, ssv2_session, ssv2_dataset, request):
    s = ssv2_session.settings
    if s.train_config is None:
        pytest.fail("-m validate needs --train-config train.toml (a [loader] and a [target] table)", pytrace=False)
    try:
        tc = load(s.train_config)
    except TrainConfigError as exc:
        pytest.fail(str(exc), pytrace=False)
    batches = tc.batches or s.batches
    base = None
    if tc.tmpdir:
        os.makedirs(tc.tmpdir, exist_ok=True)
        base = os.path.join(tc.tmpdir, f"ssv2-stress-{ssv2_session.run_id}")
    result = stress.run(tc.loader, batches, kind="validate", train=True, live=True, run_base=base)
    rows = check(tc.targets, result.metrics) if result.passed else []
    if result.passed:
        stress.judge(result)
    ssv2_session.validate = {"config_file": str(tc.path), "config": tc.loader.to_dict(), "tmpdir": tc.tmpdir,
                             "batches": batches, "rows": rows,
                             "passed": result.passed and all(r["ok"] for r in rows)}
    stress.record(result)
    table = ["target                 wanted      achieved    ok"] + [
        f"{r['target']:<22} {r['wanted']:<11g} {'-' if r['achieved'] is None else format(r['achieved'], '.4g'):<11} "
        f"{'yes' if r['ok'] else 'NO'}" for r in rows]
    print("\n".join(table))
    if not result.passed:
        pytest.fail(result.describe(), pytrace=False)
    missed = [r for r in rows if not r["ok"]]
    assert not missed, "targets missed:\n" + "\n".join(table)
    bridge_benchmark(request, result, ssv2_dataset[1])
