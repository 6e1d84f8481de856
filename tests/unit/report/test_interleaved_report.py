"""The interleaved decision in the report: summary.md's table and decision, and the recommendation that follows
the decision over the ladder's tie (the pick it names, else the cheapest of those it could not tell apart)."""

from __future__ import annotations

from typing import Any

from ssv2_fixtures.report.drift import interleaved_lines
from ssv2_fixtures.report.recommend import recommend
from ssv2_fixtures.run.drift import interleaved


def run(w: int, v: float, iv: tuple[float, float]) -> dict[str, Any]:
    return {
        "id": f"test_ladder[w{w}]",
        "phase": f"phase-w{w}",
        "kind": "quick",
        "label": f"bs8-w{w}-pf2",
        "status": "passed",
        "config": {"batch_size": 8, "num_workers": w, "prefetch_factor": 2},
        "metrics": {"videos_per_s": v, "videos_per_s_interval": list(iv)},
    }


# the ladder: w4 fastest, w2 and w3 tie with it by the tie rule; today the cheapest (w2) is recommended
RESULTS = [run(2, 47.0, (45.0, 49.0)), run(3, 49.0, (47.0, 51.0)), run(4, 51.0, (49.0, 53.0))]
W4, W2, W3 = "bs8-w4-pf2", "bs8-w2-pf2", "bs8-w3-pf2"


def decision(rounds: list[dict[str, float]]) -> dict[str, Any]:
    d: dict[str, Any] = dict(interleaved(rounds))
    d.update(round_s=2.0, seconds=19.0, stopped=f"{len(rounds)} rounds")
    return d


def test_without_a_decision_the_tie_goes_to_the_cheapest() -> None:
    rec = recommend({"results": RESULTS})  # type: ignore[typeddict-item]
    assert rec is not None and rec.label == W2 and set(rec.ties) == {W2, W3, W4}


def test_a_decision_naming_the_faster_is_the_pick() -> None:
    rounds = [{W4: 50.0, W2: 44.0, W3: 45.0}, {W4: 40.0, W2: 35.5, W3: 36.0}, {W4: 45.0, W2: 39.8, W3: 40.1}]
    dec = decision(rounds)
    assert dec["faster"] == W4
    rec = recommend({"results": RESULTS, "interleaved": dec})  # type: ignore[typeddict-item]
    assert rec is not None and rec.label == W4 and rec.ties == (W4,)
    assert "re-measured in alternating windows: " + W4 + " is faster" in rec.reason


def test_a_tied_decision_drops_the_measured_slower_and_the_cheapest_left_wins() -> None:
    rounds = [{W4: 50.0, W3: 49.0, W2: 40.0}, {W4: 40.0, W3: 40.5, W2: 32.0}, {W4: 45.0, W3: 44.0, W2: 36.0}]
    dec = decision(rounds)
    assert dec["faster"] is None and set(dec["tie"]) == {W4, W3}
    rec = recommend({"results": RESULTS, "interleaved": dec})  # type: ignore[typeddict-item]
    assert rec is not None and rec.label == W3 and rec.ties == (W3, W4)


def test_a_decision_over_other_configs_changes_nothing() -> None:
    dec = decision([{"bs4-w1-pf2": 10.0, W4: 20.0}, {"bs4-w1-pf2": 11.0, W4: 21.0}])
    rec = recommend({"results": RESULTS, "interleaved": dec})  # type: ignore[typeddict-item]
    assert rec is not None and rec.label == W2


def test_rounds_that_cannot_tell_a_config_outside_the_tie_from_the_fastest_bring_it_in() -> None:
    """w1 read 40 (a slow minute) where the fastest read 51: outside the tie by the sequential numbers. Re-measured
    in alternating windows it cannot be told from the fastest, so the tie rule's cheapest is w1."""
    results = [*RESULTS, run(1, 40.0, (38.0, 42.0))]
    w1 = "bs8-w1-pf2"
    assert recommend({"results": results}).label == W2  # type: ignore[typeddict-item, union-attr]
    dec = decision([{W4: 50.0, w1: 49.0}, {W4: 44.0, w1: 45.0}, {W4: 47.0, w1: 46.5}])
    assert dec["faster"] is None and set(dec["tie"]) == {W4, w1}
    rec = recommend({"results": results, "interleaved": dec})  # type: ignore[typeddict-item]
    assert rec is not None and rec.label == w1 and rec.ties == (w1, W2, W3, W4)


def test_summary_lines_show_rounds_ratios_and_the_decision() -> None:
    rounds = [{W4: 50.0, W2: 44.0}, {W4: 40.0, W2: 35.5}, {W4: 45.0, W2: 39.8}]
    text = "\n".join(interleaved_lines({"interleaved": decision(rounds)}))
    assert "### The fastest and its close configs re-measured in alternating windows" in text
    assert f"those that tie with it or would with the machine's drift): {W4}, {W2}." in text
    assert "paused between its windows" not in text  # a record without its windows' kind says nothing of them
    paused = "\n".join(interleaved_lines({"interleaved": {**decision(rounds), "windows": "paused", "startup_s": 8.7}}))
    assert "Each candidate's child started once (8.7 s for all) and was paused between its windows." in paused
    assert "Windows of 2.0 s" in text and "3 rounds in 19 s" in text
    assert f"| round | {W4} | {W2} |" in text and "| 2 | 40.0 | 35.5 |" in text
    r = decision(rounds)["ratios"][W2]
    assert f"{r['mean']:.3f} [{r['interval'][0]:.3f}, {r['interval'][1]:.3f}]" in text
    assert f"Decision: **{W4} is faster" in text
    skipped = {"candidates": [W4, W2], "rounds": [], "text": "not re-measured (skipped: no time)"}
    assert "not re-measured (skipped: no time)" in "\n".join(interleaved_lines({"interleaved": skipped}))
    assert interleaved_lines({}) == []
