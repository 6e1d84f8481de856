"""ssv2_fixtures.report.tune: the ``tune`` section and a confirmed tuned config shown first."""
from __future__ import annotations

from typing import Any

from report_helpers import fixture, section, table

from ssv2_fixtures.report import recommend, render_summary, tune_section


def tuned(data: Any, label: str = "bs8-w4-pf2", confirmed: bool = True) -> Any:
    data["tune"] = [{"batch_size": 8, "best": {"config": label, "videos_per_s": 70.0, "interval": [66.0, 74.0]},
                     "confirmed": confirmed,
                     "ties": [{"config": {"batch_size": 8, "num_workers": 4, "prefetch_factor": 2},
                               "videos_per_s": 70.0, "interval": [66.0, 74.0]},
                              {"config": {"batch_size": 8, "num_workers": 2, "prefetch_factor": 2},
                               "videos_per_s": 68.0, "interval": [65.0, 71.0]}],
                     "tried": [{"config": {"batch_size": 8, "num_workers": w, "prefetch_factor": 2}, "stage": "grow",
                                "batches": 30, "seconds": 4.0, "videos_per_s": 60.0 + w} for w in (2, 4)]
                     + [{"config": {"batch_size": 8, "num_workers": 8}, "stage": "grow", "batches": 1, "seconds": 1.0,
                         "kind": "shm_exhausted"}],
                     "budget_s": 120, "spent_s": 96.5, "target_videos_per_s": 60}]
    return data


def test_no_tune_no_section() -> None:
    assert tune_section(fixture("healthy")) == []
    assert "## Tune" not in render_summary(fixture("healthy"))


def test_tune_table_as_recorded() -> None:
    rows = table(tune_section(tuned(fixture("healthy"))))
    assert rows == [["8", "bs8-w4-pf2", "70.0 ± 4.0", "yes", "bs8-w4-pf2, bs8-w2-pf2", "3 (2 passed)", "96.5 of 120.0",
                     "60.0"]]
    data = tuned(fixture("healthy"))
    data["tune"][0]["best"]["config"] = {"batch_size": 8, "num_workers": 2, "prefetch_factor": 2}
    assert table(tune_section(data))[0][1] == "bs8-w2-pf2"
    data["tune"][0]["best"] = None  # no config passed for this batch size
    assert table(tune_section(data))[0][1:4] == ["?", "—", "yes"]


def test_confirmed_tune_comes_first_in_the_recommendation() -> None:
    data = tuned(fixture("healthy"))
    rec = recommend(data)
    assert rec is not None and rec.tuned and rec.label == "bs8-w4-pf2" and rec.basis.kind == "sustained"
    assert rec.ties == ("bs8-w4-pf2", "bs8-w2-pf2")
    body = section(render_summary(data), "Recommended configuration")
    assert body[1].startswith("Tuned (`pytest -m tune`, batch size 8): **bs8-w4-pf2** — 70.0 ± 4.0 videos/s")
    assert "**bs8-w4-pf2** (measured: 70.0 ±? videos/s) — tuned by pytest -m tune" in "\n".join(body)


def test_unconfirmed_or_unmeasured_tune_does_not_decide() -> None:
    assert recommend(tuned(fixture("healthy"), confirmed=False)).label == "bs16-w4-pf2"  # type: ignore[union-attr]
    data = tuned(fixture("healthy"), label="bs8-w6-pf2")  # never ran here: not recommended
    assert recommend(data).label == "bs16-w4-pf2"  # type: ignore[union-attr]
    assert "no passed run record here" in "\n".join(section(render_summary(data), "Recommended configuration"))
