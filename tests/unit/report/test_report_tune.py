"""ssv2_fixtures.report.tune: the ``tune`` section and a confirmed tuned config shown first."""

from __future__ import annotations

from typing import Any

import numpy as np
from report_helpers import fixture, section, table

from ssv2_fixtures.report import recommend, render_summary, tune_section


def tuned(data: Any, label: str = "bs8-w4-pf2", confirmed: bool = True) -> Any:
    data["tune"] = [
        {
            "batch_size": 8,
            "best": {"config": label, "videos_per_s": 70.0, "interval": [66.0, 74.0]},
            "confirmed": confirmed,
            "ties": [
                {
                    "config": {"batch_size": 8, "num_workers": 4, "prefetch_factor": 2},
                    "videos_per_s": 70.0,
                    "interval": [66.0, 74.0],
                },
                {
                    "config": {"batch_size": 8, "num_workers": 2, "prefetch_factor": 2},
                    "videos_per_s": 68.0,
                    "interval": [65.0, 71.0],
                },
            ],
            "tried": [
                {
                    "config": {"batch_size": 8, "num_workers": w, "prefetch_factor": 2},
                    "stage": "grow",
                    "batches": 30,
                    "seconds": 4.0,
                    "videos_per_s": 60.0 + w,
                }
                for w in (2, 4)
            ]
            + [
                {
                    "config": {"batch_size": 8, "num_workers": 8},
                    "stage": "grow",
                    "batches": 1,
                    "seconds": 1.0,
                    "kind": "shm_exhausted",
                }
            ],
            "budget_s": 120,
            "spent_s": 96.5,
            "target_videos_per_s": 60,
        }
    ]
    return data


def test_no_tune_no_section() -> None:
    assert tune_section(fixture("healthy")) == []
    assert "## Tune" not in render_summary(fixture("healthy"))


def test_tune_table_as_recorded() -> None:
    rows = table(tune_section(tuned(fixture("healthy"))))
    assert rows == [
        ["8", "bs8-w4-pf2", "70.0 ± 4.0", "yes", "bs8-w4-pf2, bs8-w2-pf2", "3 (2 passed)", "96.5 of 120.0", "60.0"]
    ]
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
    rec = recommend(tuned(fixture("healthy"), confirmed=False))
    assert rec is not None and not rec.tuned and rec.label == "bs8-w4-pf2"  # the tie rule's pick, not tune's
    data = tuned(fixture("healthy"), label="bs8-w6-pf2")  # never ran here: not recommended
    rec = recommend(data)
    assert rec is not None and not rec.tuned and rec.label == "bs8-w4-pf2"
    assert "no passed run record here" in "\n".join(section(render_summary(data), "Recommended configuration"))


def test_the_section_says_how_the_time_was_spent() -> None:
    data = tuned(fixture("healthy"))
    data["tune"][0]["tried"].append(
        {"config": "bs8-w6-pf2", "stage": "workers", "batches": 0, "seconds": 0.0, "kind": "predicted_unfit"}
    )  # not run: no time, not counted
    lines = tune_section(data)
    assert (
        "- How batch size 8's time went: grow 9.0 s (3 runs); 87.5 s between runs (start-up, the decode-rate probe)."
    ) in lines


def test_search_plot_lines_per_prefetch_rejected_kinds_and_the_pick() -> None:
    from ssv2_fixtures.report.tune import plot_tune

    assert plot_tune(fixture("healthy")) is None
    data = tuned(fixture("healthy"))
    data["tune"][0]["tried"] += [  # prefetch 4 at 2 workers, re-measured longer; 6 workers never run
        {
            "config": {"batch_size": 8, "num_workers": 2, "prefetch_factor": 4},
            "stage": "knobs",
            "batches": 20,
            "seconds": 3.0,
            "videos_per_s": 50.0,
            "interval": [45.0, 55.0],
        },
        {
            "config": {"batch_size": 8, "num_workers": 2, "prefetch_factor": 4},
            "stage": "halving",
            "batches": 40,
            "seconds": 6.0,
            "videos_per_s": 58.0,
            "interval": [56.0, 60.0],
        },
        {"config": "bs8-w6-pf2", "stage": "workers", "batches": 0, "seconds": 0.0, "kind": "predicted_unfit"},
        {
            "config": {"batch_size": 8, "num_workers": 4, "prefetch_factor": 2},
            "stage": "confirm",
            "batches": 100,
            "seconds": 20.0,
            "videos_per_s": 1.0,
        },
    ]  # a confirmation is no point of the search
    fig = plot_tune(data)
    assert fig is not None
    (ax,) = fig.axes
    lines = {
        str(ln.get_label()): (list(np.asarray(ln.get_xdata())), list(np.asarray(ln.get_ydata())))
        for ln in ax.get_lines()
        if not str(ln.get_label()).startswith("_")
    }
    assert lines == {"prefetch 2": ([2, 4], [62.0, 64.0]), "prefetch 4": ([2], [58.0])}  # the latest probe
    gids = {c.get_gid(): np.asarray(c.get_offsets()) for c in ax.collections}
    assert list(gids["rejected"][:, 0]) == [8]
    assert list(gids["predicted_unfit"][:, 0]) == [6]
    assert list(gids["pick"][0]) == [4, 70.0]
    notes = [t.get_text() for t in ax.texts]
    assert "pf2: shm_exhausted" in notes and "pf2: predicted_unfit" in notes


def test_summarize_writes_the_search_plot_into_the_tune_section(tmp_path) -> None:
    from report_helpers import run_dir

    from ssv2_fixtures.report import summarize

    d = run_dir(tmp_path, "healthy", tuned(fixture("healthy")))
    text = summarize(d).read_text()
    assert (d / "tune.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![tune search](tune.png)" in section(text, "Tune: the search per batch size")
    (tmp_path / "plain").mkdir()
    plain = run_dir(tmp_path / "plain", "healthy")
    assert "tune.png" not in summarize(plain).read_text() and not (plain / "tune.png").exists()


def test_confirmed_best_across_batch_sizes_is_the_tie_rules_pick() -> None:
    from ssv2_fixtures.report.tune import confirmed_best

    def entry(bs: int, w: int, vps: float, iv: list[float]) -> dict[str, Any]:
        return {
            "batch_size": bs,
            "confirmed": True,
            "best": {
                "config": {"batch_size": bs, "num_workers": w, "prefetch_factor": 2},
                "videos_per_s": vps,
                "interval": iv,
            },
        }

    # bs16 is faster by its point rate, but the two tie: the cheaper (fewer workers) is the answer
    data = {"tune": [entry(8, 2, 70.0, [66.0, 74.0]), entry(16, 4, 72.0, [68.0, 76.0])]}
    best = confirmed_best(data)
    assert best is not None and best.label == "bs8-w2-pf2"
    # clear of each other (and of the margin): the faster one
    data = {"tune": [entry(8, 2, 40.0, [39.0, 41.0]), entry(16, 4, 72.0, [70.0, 74.0])]}
    best = confirmed_best(data)
    assert best is not None and best.label == "bs16-w4-pf2"
