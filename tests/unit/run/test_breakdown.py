"""The breakdown's arithmetic on recorded timings (issue #23): stages add up, the binding rule."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ssv2_fixtures.run.breakdown import (
    STAGES,
    ItemTimings,
    binding,
    ceilings,
    finish,
    headroom,
    record,
    stages,
    with_achieved,
)

secs = st.floats(min_value=0.0, max_value=5.0, allow_nan=False)


@st.composite
def timings(draw: st.DrawFn) -> ItemTimings:
    n = draw(st.integers(min_value=1, max_value=12))
    getitem = draw(st.lists(secs, min_size=n, max_size=n))
    decode = draw(st.lists(secs, min_size=n, max_size=n))
    collate = draw(st.lists(secs, min_size=0, max_size=4))
    # the loop's wall time is at least its timed parts, save clock rounding (which stages() absorbs)
    slack = draw(st.floats(min_value=0.0, max_value=2.0))
    loop = max(1e-6, sum(getitem) + n * (sum(collate) / len(collate) if collate else 0) + slack - 1e-9)
    return ItemTimings(getitem, decode, collate, loop)


@given(timings())
def test_shares_add_up_to_one_and_seconds_to_the_item_time(t: ItemTimings) -> None:
    s = stages(t)
    assert set(s) == set(STAGES)
    assert math.isclose(sum(v["share"] for v in s.values()), 1.0, rel_tol=1e-9)
    assert math.isclose(sum(v["s_per_item"] for v in s.values()), t.item_s, rel_tol=1e-9)
    assert all(v["s_per_item"] >= 0 and v["share"] >= 0 for v in s.values())


@given(timings())
def test_record_item_s_is_the_probe_own_item_time(t: ItemTimings) -> None:
    rec = record(t, item_rate=1 / t.item_s, transfer=None, cores=2, achieved=None)
    assert rec["item_s"] == t.loop_s / len(t.getitem_s)
    assert rec["binding"] in STAGES


def test_stages_from_recorded_timings() -> None:
    t = ItemTimings(getitem_s=[0.08, 0.10], decode_s=[0.03, 0.03], collate_s=[0.005], loop_s=0.2)
    s = stages(t)
    assert s["decode"]["s_per_item"] == pytest.approx(0.03)
    assert s["transform"]["s_per_item"] == pytest.approx(0.06)
    assert s["collate"]["s_per_item"] == pytest.approx(0.005)
    assert s["other"]["s_per_item"] == pytest.approx(0.005)
    assert s["transform"]["share"] == pytest.approx(0.6)


def test_decode_counted_inside_getitem_only() -> None:
    s = stages(ItemTimings(getitem_s=[0.01], decode_s=[0.5], collate_s=[], loop_s=0.02))
    assert s["decode"]["s_per_item"] == pytest.approx(0.01)
    assert s["transform"]["s_per_item"] == 0.0


def test_bad_timings_are_refused() -> None:
    with pytest.raises(ValueError):
        ItemTimings(getitem_s=[], decode_s=[], collate_s=[], loop_s=1.0)
    with pytest.raises(ValueError):
        ItemTimings(getitem_s=[0.1], decode_s=[0.1, 0.2], collate_s=[], loop_s=1.0)


SHARES = {
    "decode": {"s_per_item": 0.03, "share": 0.3},
    "transform": {"s_per_item": 0.06, "share": 0.6},
    "collate": {"s_per_item": 0.005, "share": 0.05},
    "other": {"s_per_item": 0.005, "share": 0.05},
}


def test_transfer_binds_when_its_ceiling_is_closest_above_the_achieved_rate() -> None:
    c = {"decode": 190.0, "item": 19.0, "transfer": 12.0, "achieved": 9.8}
    assert binding(SHARES, c) == "transfer"  # type: ignore[arg-type]


def test_otherwise_the_largest_share_binds() -> None:
    c = {"decode": 190.0, "item": 19.0, "transfer": 420.0, "achieved": 9.8}
    assert binding(SHARES, c) == "transform"  # type: ignore[arg-type]
    assert binding(SHARES, {**c, "achieved": None}) == "transform"  # type: ignore[arg-type]


def test_compute_ceilings_below_the_achieved_rate_leave_the_binding_to_the_shares() -> None:
    # a probe measured beside other work: decode and item ceilings below what the configs reached
    c = {"decode": 30.2, "item": 29.2, "transfer": 144.0, "achieved": 32.3}
    assert binding(SHARES, c) == "transform"  # type: ignore[arg-type]


def test_ceilings_scale_with_cores_and_headroom_is_over_the_achieved_rate() -> None:
    c = ceilings(decode_s=0.02, item_rate=10.0, transfer=400.0, cores=2, achieved=8.0)
    assert c == {"decode": pytest.approx(100.0), "item": 20.0, "transfer": 400.0, "achieved": 8.0}
    assert headroom(c) == {"decode": pytest.approx(12.5), "item": 2.5, "transfer": 50.0}  # type: ignore[arg-type]
    assert headroom({**c, "achieved": None}) == {}  # type: ignore[arg-type]


def test_with_achieved_decides_the_binding_again() -> None:
    t = ItemTimings(getitem_s=[0.08, 0.10], decode_s=[0.03, 0.03], collate_s=[0.005], loop_s=0.2)
    rec = record(t, item_rate=10.0, transfer=15.0, cores=2, achieved=None)
    assert rec["binding"] == "transform"
    done = with_achieved(rec, 12.0)
    assert done["ceilings"]["achieved"] == 12.0
    assert done["binding"] == "transfer"  # 15 is closer above 12 than item 20 and decode ~67


def test_finish_takes_the_fastest_passed_run_and_scales_the_item_ceiling_by_the_decode_rate() -> None:
    t = ItemTimings(getitem_s=[0.08, 0.10], decode_s=[0.03, 0.03], collate_s=[0.005], loop_s=0.2)
    rec = record(t, item_rate=10.0, transfer=15.0, cores=2, achieved=None)
    results = [
        {"status": "passed", "metrics": {"videos_per_s": 9.0}},
        {"status": "failed", "metrics": {"videos_per_s": 50.0}},  # a failed run achieved nothing
        {"status": "passed", "metrics": {"videos_per_s": 12.0}},
        {"status": "passed", "metrics": {}},
    ]
    assert finish(None, 8.0, results) is None  # no breakdown measured
    done = finish(rec, None, results)  # type: ignore[arg-type]
    assert done is not None and done["ceilings"]["achieved"] == 12.0
    assert done["ceilings"]["item"] == rec["ceilings"]["item"]  # no decode rate: the probe's own ceiling
    scaled = finish(rec, 8.0, results)  # type: ignore[arg-type]
    assert scaled is not None and scaled["ceilings"]["item"] == pytest.approx(8.0 * 2)  # rate x the same cores
    assert finish(rec, None, [])["ceilings"]["achieved"] is None  # type: ignore[index]


def test_what_would_help_measures_what_it_can_and_words_the_rest_as_not_measured() -> None:
    from ssv2_fixtures.run.breakdown import NOT_MEASURED, help_for, what_would_help

    h = what_would_help(
        cores=2,
        decode_now=50.0,
        decode_at_size={"size": 112, "s": 0.01},
        transfer={"videos_per_s": 30.0, "bytes_per_batch": 800},
        transfer_uint8={"videos_per_s": 90.0, "bytes_per_batch": 100},
    )
    d = [x for x in h if x["stage"] == "decode" and x["measured"]]
    assert d and d[0]["ceiling"] == 2 / 0.01 and d[0]["now"] == 50.0  # × the cores, like the decode ceiling
    t = [x for x in h if x["stage"] == "transfer" and x["measured"]]
    assert t and (t[0]["ceiling"], t[0]["now"], t[0]["bytes_per_batch"], t[0]["bytes_now"]) == (90.0, 30.0, 100, 800)
    assert {x["stage"] for x in h if not x["measured"]} == set(NOT_MEASURED)
    rec = record(ItemTimings([0.1], [0.05], [], 0.1), item_rate=None, transfer=None, cores=1, achieved=None)
    rec["what_would_help"] = h
    assert help_for(rec)[0]["measured"] and {x["stage"] for x in help_for(rec)} == {rec["binding"]}
    # a uint8 pipeline (no float arrays: no uint8 measurement) and no native-size decode: advice only
    assert all(not x["measured"] for x in what_would_help(cores=2, decode_now=50.0, transfer={"videos_per_s": 1}))


def test_as_uint8_keeps_shapes_and_structure_and_skips_batches_with_no_float() -> None:
    import numpy as np
    import torch

    from ssv2_fixtures.run.breakdown_probe import as_uint8

    items = [([torch.zeros(3, 4, 5), torch.zeros(3, 4, 5)], np.zeros((2, 2), dtype=np.float32), 7)]
    got = as_uint8(items)
    assert got is not None
    (clips, arr, label) = got[0]
    assert [c.dtype for c in clips] == [torch.uint8] * 2 and clips[0].shape == (3, 4, 5)
    assert arr.dtype == np.uint8 and arr.shape == (2, 2) and label == 7
    assert as_uint8([(torch.zeros(2, dtype=torch.uint8), 1)]) is None


def test_a_configs_bar_adds_up_to_its_seconds_per_video_and_spreads_the_item_over_its_workers() -> None:
    from ssv2_fixtures.run.breakdown import BAR_PARTS, config_bar

    t = ItemTimings([0.08, 0.08], [0.03, 0.03], [0.01], 0.2)  # item 0.1 s: decode .03, transform .05, collate .01
    rec = record(t, item_rate=10.0, transfer=100.0, cores=4, achieved=None)
    bar = config_bar(rec, 10.0, 2, 4)  # 0.1 s per video in the main loop
    assert set(bar) == set(BAR_PARTS) and math.isclose(sum(bar.values()), 0.1)
    assert math.isclose(bar["decode"], 0.015) and math.isclose(bar["transform"], 0.025)
    assert math.isclose(bar["transfer"], 0.01) and math.isclose(bar["waiting"], 0.1 - 0.015 - 0.025 - 0.005 - 0.01)
    w0 = config_bar(rec, 10.0, 0, 4)  # no workers: nothing crosses processes, the main loop makes the items
    assert w0["transfer"] == 0 and math.isclose(w0["decode"], 0.03)
    fast = config_bar(rec, 200.0, 2, 4)  # beat the probe's per-item seconds: parts scaled to fit, no waiting
    assert fast["waiting"] == 0 and math.isclose(sum(fast.values()), 1 / 200)
    with pytest.raises(ValueError):
        config_bar(rec, 0.0, 2, 4)


def test_a_stalled_item_outside_the_decoder_is_left_out_of_the_stages() -> None:
    # measured once in the probe: one 0.71 s item among ~22 ms items, 35 ms of it decoding
    getitem = [0.022] * 23 + [0.710]
    decode = [0.021] * 23 + [0.035]
    t = ItemTimings(getitem, decode, [0.001] * 12, loop_s=sum(getitem) + 0.012)
    steady, stalls = t.steady()
    assert stalls == {"items": 1, "s": pytest.approx(0.710)}
    assert len(steady.getitem_s) == 23 and steady.item_s == pytest.approx((sum(getitem[:23]) + 0.012) / 23)
    st = stages(steady)
    assert st["decode"]["share"] > 0.9  # the built-in set is decode-bound once the stall is out
    assert sum(s["share"] for s in st.values()) == pytest.approx(1.0)


def test_a_slow_decode_is_not_a_stall_and_steady_timings_stay() -> None:
    t = ItemTimings([0.02] * 9 + [0.2], [0.019] * 9 + [0.19], [0.001], loop_s=0.4)
    assert t.steady() == (t, None)
