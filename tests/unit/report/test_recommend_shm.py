"""A config that would not fit the (emulated) /dev/shm in training is never recommended nor listed as a
tie (report/recommend.py ``shm_unfit``), and the environment advice judges the emulated target."""

from __future__ import annotations

from typing import Any

from ssv2_fixtures.data.loader import LoaderConfig
from ssv2_fixtures.report.model import Run
from ssv2_fixtures.report.recommend import environment, recommend, shm_unfit
from ssv2_fixtures.stress.budget import predict

MB = 2**20
DOCKER = {"shm_bytes": 64 * MB, "profile": "docker-default"}


def _rec(bs: int, w: int, vps: float, kind: str = "quick", **metrics: Any) -> dict[str, Any]:
    cfg = LoaderConfig(batch_size=bs, num_workers=w)
    need = predict(cfg).shm_bytes
    return {
        "id": f"{kind}-{cfg.label}",
        "label": cfg.label,
        "kind": kind,
        "status": "passed",
        "config": cfg.to_dict(),
        "sandbox": DOCKER,
        "metrics": {"videos_per_s": vps, "videos_per_s_interval": [vps * 0.97, vps * 1.03], **metrics},
        # the campaign's budget: the one fits rule against the emulated 64 MB (stress.campaign.fits)
        "budget": {"shm_bytes": need, "shm_available_bytes": 64 * MB, "fits": not w or need <= 64 * MB},
    }


def _session() -> dict[str, Any]:
    # what `pytest -m quick --emulate docker-default` recorded: bs8-w2 and bs8-w4 passed without a step
    # (their queues never filled) and tie with the fastest that fits
    return {
        "results": [
            _rec(1, 0, 40.0),
            _rec(2, 2, 76.0, shm_peak_bytes=20 * MB),
            _rec(8, 2, 79.0, shm_peak_bytes=40 * MB),
            _rec(8, 4, 80.0, shm_peak_bytes=50 * MB),
        ]
    }


def test_configs_predicted_not_to_fit_are_neither_recommended_nor_tied() -> None:
    data = _session()
    unfit = {r["label"] for r in data["results"] if r["budget"]["fits"] is False}
    assert unfit == {"bs8-w2-pf2", "bs8-w4-pf2"}  # 92 and 165 MB predicted against 64 MB
    rec = recommend(data)
    assert rec is not None and rec.label == "bs2-w2-pf2"
    assert not unfit & set(rec.ties) and not unfit & {rec.label}
    assert "left out as too large for /dev/shm in training: bs8-w2-pf2, bs8-w4-pf2" in rec.reason
    # the same records with a /dev/shm that holds them: the fastest is back, and the tie with it
    for r in data["results"]:
        r["budget"]["fits"] = True
    back = recommend(data)
    assert back is not None and {"bs8-w2-pf2", "bs8-w4-pf2"} <= set(back.ties)


def test_a_measured_full_queue_over_the_available_shm_is_unfit_too() -> None:
    r = _rec(2, 2, 76.0, shm_full_queue_bytes=70 * MB)
    assert r["budget"]["fits"] and shm_unfit(Run(r)) == "its full prefetch queues exceeded /dev/shm"
    assert shm_unfit(Run(_rec(2, 2, 76.0, shm_full_queue_bytes=20 * MB))) is None


def test_nothing_that_fits_passed_gives_no_recommendation() -> None:
    assert recommend({"results": [_rec(8, 2, 79.0), _rec(8, 4, 80.0)]}) is None


def test_environment_is_judged_against_the_emulated_target_not_this_host() -> None:
    data = {"results": [_rec(2, 2, 76.0, shm_peak_bytes=20 * MB, shm_full_queue_bytes=20 * MB)]}
    rec = recommend(data)
    assert rec is not None
    host = {"shm_total_bytes": 24 * 2**30, "nofile": 1048576, "tmpdir": "/tmp", "tmp_free_bytes": 10 * 2**30}
    shm = environment(rec, host)[0]
    assert "the emulated target (docker-default) has a 64 MiB /dev/shm: **too small**" in shm
    assert "with every prefetch slot full" in shm and "24.0 GiB" not in shm
    plain = dict(data["results"][0], sandbox=None)
    rec2 = recommend({"results": [plain]})
    assert rec2 is not None and "this machine has a 24.0 GiB /dev/shm: enough" in environment(rec2, host)[0]
