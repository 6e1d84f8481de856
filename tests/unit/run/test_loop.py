"""loop.py: the measured window (pure), batch facts and the batch loop over real DataLoaders (NOTE [measured
window]); the child's events around it and real children: tests/unit/run/test_child.py."""

from __future__ import annotations

import random
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from unit_helpers import EventLog

from ssv2_fixtures.data.loader import LoaderConfig, SplitTooSmallError, make_loader
from ssv2_fixtures.run.loop import MeasureSpec, Progress, Window, batch_loop, check_measure, videos_in_batch
from ssv2_fixtures.run.stats import rate_interval

pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")


def _m(**kw: Any) -> MeasureSpec:
    base: dict[str, Any] = dict(warmup_batches=2, min_batches=6, max_batches=100, max_s=30.0, target_rel=0.05)
    base.update(kw)
    return check_measure(base)


# --------------------------------------------------------------------------- the measured window (pure)


def _feed(w: Window, stream: list[tuple[int, float]], step: float = 0.0) -> tuple[str | None, int]:
    """Feed (videos, wait_s) pairs on a fake clock: each batch arrives ``wait_s`` after the loop asked for it,
    and the loop holds ``step`` seconds after it (a training step); (reason, batches fed)."""
    now = w.opened
    for k, (v, s) in enumerate(stream, start=1):
        now += s
        if (why := w.add(v, s, now)) is not None:
            return why, k
        now += step
    return None, len(stream)


def test_a_steady_stream_converges_once_min_batches_are_measured() -> None:
    w = Window(_m(warmup_batches=3, min_batches=20), opened=0.0)
    why, fed = _feed(w, [(8, 9.0)] * 3 + [(8, 0.1)] * 50)  # slow warm-up (worker start), then steady
    assert (why, fed) == ("converged", 3 + 20)
    r = w.result("converged")
    assert r["batches"] == 20 and r["videos"] == 160 and r["stopped"] == "converged"
    assert r["rate"] == pytest.approx(80.0) and r["lo"] == pytest.approx(80.0) == r["hi"]  # warm-up left out


_rng = random.Random(0)
noisy = [(4, _rng.uniform(0.05, 0.5)) for _ in range(200)]  # far from ±0.1 % in 200 batches


def test_a_noisy_stream_stops_at_the_time_cap_and_reports_its_interval() -> None:
    w = Window(_m(warmup_batches=1, target_rel=0.001, max_s=2.0), opened=0.0)
    why, fed = _feed(w, noisy)
    assert why == "time"
    r = w.result("time")
    assert r["seconds"] >= 2.0 and r["batches"] == fed - 1
    iv = rate_interval(w.videos, w.seconds)
    assert iv is not None and (r["rate"], r["lo"], r["hi"]) == (iv.rate, iv.lo, iv.hi)
    assert r["lo"] < r["rate"] < r["hi"]


def test_convergence_needs_five_groups_whatever_min_batches_says() -> None:
    # 8 measured batches make only 2 groups of 3: a perfectly steady stream still waits for 5 × 3
    w = Window(_m(warmup_batches=3, min_batches=8), opened=0.0)
    assert _feed(w, [(8, 9.0)] * 3 + [(8, 0.1)] * 50) == ("converged", 3 + 5 * 3)
    w4 = Window(_m(warmup_batches=0, min_batches=1), opened=0.0, round_size=4)  # groups of whole rounds
    assert _feed(w4, [(8, 0.1)] * 50) == ("converged", 5 * 4)


def test_with_a_step_the_window_measures_the_loop_not_the_waits() -> None:
    # a loader that keeps up with a 50 ms step: waits of 0–4 ms, so videos / summed waits would read
    # 8 / 0.002 = 4000 videos/s; the loop received 8 videos per (wait + step)
    waits = [0.004 if k % 2 else 0.0 for k in range(60)]
    w = Window(_m(warmup_batches=2, min_batches=12, target_rel=0.05), opened=0.0)
    why, fed = _feed(w, [(8, s) for s in waits], step=0.05)
    assert why == "converged"
    walls = [s + 0.05 for s in waits[2:fed]]  # each measured batch: the step before it, then its wait
    assert w.seconds == pytest.approx(walls)
    r = w.result(why)
    assert r["rate"] == pytest.approx(8 * len(walls) / sum(walls))
    assert r["rate"] <= 8 / 0.05 < 8 * len(walls) / sum(waits[2:fed])


def test_max_batches_counts_the_warm_up_too() -> None:
    w = Window(_m(warmup_batches=4, max_batches=10, target_rel=0.001), opened=0.0)
    assert _feed(w, noisy) == ("batches", 10)
    assert w.result("batches")["batches"] == 6


def test_too_few_batches_for_an_interval_give_a_rate_without_one() -> None:
    w = Window(_m(warmup_batches=0, min_batches=1, max_batches=3), opened=0.0)
    assert _feed(w, [(2, 0.5)] * 5) == ("batches", 3)
    r = w.result("batches")
    assert r["rate"] == pytest.approx(4.0) and r["lo"] is None and r["hi"] is None


@settings(max_examples=100, deadline=None)
@given(
    warm=st.integers(0, 5),
    least=st.integers(1, 30),
    extra=st.integers(1, 40),
    waits=st.lists(st.floats(0.001, 1.0), min_size=80, max_size=80),
)
def test_the_window_never_stops_early_or_late(warm: int, least: int, extra: int, waits: list[float]) -> None:
    """Whatever the stream: never converged before min_batches measured, never past max_batches."""
    w = Window(_m(warmup_batches=warm, min_batches=least, max_batches=warm + extra, max_s=1e9), opened=0.0)
    why, fed = _feed(w, [(3, s) for s in waits])
    assert why in ("converged", "batches") and fed <= warm + extra
    if why == "converged":
        assert fed - warm >= least
        iv = rate_interval(w.videos, w.seconds)
        assert iv is not None and iv.relative_half_width <= 0.05 and iv.groups >= 5
    else:
        assert fed == warm + extra


@pytest.mark.parametrize(
    "change,needle",
    [
        ({"max_batches": 2}, "must exceed warmup_batches"),
        ({"min_batches": 0}, "min_batches: must be an integer >= 1"),
        ({"max_s": 0}, "max_s: must be a number > 0"),
        ({"target_rel": "0.05"}, "target_rel"),
        ({"oops": 1}, "unknown ['oops']"),
        ({"min_s": -1}, "min_s: must be a number >= 0"),
        ({"min_s": 31.0}, "must not exceed max_s (30.0)"),
    ],
)
def test_a_bad_measure_spec_names_its_key(change: dict[str, Any], needle: str) -> None:
    m: dict[str, Any] = dict(warmup_batches=2, min_batches=6, max_batches=100, max_s=30.0, target_rel=0.05)
    m.update(change)
    with pytest.raises(ValueError) as e:
        check_measure(m)
    assert needle in str(e.value)


# --------------------------------------------------------------------------- batch loop, real DataLoaders


class _Dicts(torch.utils.data.Dataset):
    """Items of a user's structure: a dict with two clips of a video (repeated augmentation) and a label."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"views": [torch.zeros(2, 4, 8, 8, 3, dtype=torch.uint8)], "label": i, "name": f"v{i}"}


def _dict_collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "clips": torch.cat([v for it in items for v in it["views"]]),
        "labels": torch.tensor([it["label"] for it in items]),
        "names": [it["name"] for it in items],
    }


def test_batch_events_measure_any_structure_and_every_endless_batch_is_full() -> None:
    """5 items, batch 4, user collate: 2 clips per video; no epoch event ever; facts from the tensors."""
    cfg = LoaderConfig(batch_size=4, num_workers=0, shuffle=True)
    ev, progress = EventLog(), Progress()
    batch_loop(ev, make_loader(_Dicts(5), cfg, endless=True, collate_fn=_dict_collate), {"batches": 7}, False, progress)
    b = ev.of("batch")
    assert [e["i"] for e in b] == list(range(7)) and not ev.of("epoch")
    assert all(
        e["videos"] == 4
        and e["clips"] == 8
        and e["shape"] == [8, 4, 8, 8, 3]
        and e["epoch"] == 0
        and e["dtype"] == "torch.uint8"
        and e["bytes"] == 8 * 4 * 8 * 8 * 3 + 4 * 8
        for e in b
    ), b[0]
    assert progress.videos == 28 and progress.measured is None


def test_a_finite_loader_counts_its_short_last_batch() -> None:
    dl = torch.utils.data.DataLoader(list(range(5)), batch_size=2)
    assert [videos_in_batch(dl, j) for j in range(3)] == [2, 2, 1]
    ev = EventLog()
    batch_loop(ev, dl, {"batches": 6}, False, Progress())
    assert [e["videos"] for e in ev.of("batch")] == [2, 2, 1, 2, 2, 1]
    assert [e["n"] for e in ev.of("epoch")] == [1]


def test_an_epoch_with_no_batch_is_refused_not_restarted_forever() -> None:
    dl = torch.utils.data.DataLoader(list(range(3)), batch_size=4, drop_last=True)
    with pytest.raises(SplitTooSmallError, match="yields no batch"):
        batch_loop(EventLog(), dl, {"batches": 2}, False, Progress())


def test_a_measured_loop_emits_measured_with_its_window() -> None:
    ev, progress = EventLog(), Progress()
    spec: Any = {
        "batches": 10**6,
        "measure": dict(warmup_batches=2, min_batches=6, max_batches=30, max_s=60.0, target_rel=1e-9),
    }
    batch_loop(
        ev, make_loader(list(range(7)), LoaderConfig(batch_size=3, num_workers=0), endless=True), spec, False, progress
    )
    (m,) = ev.of("measured")
    assert ev.seen[-1] is m and len(ev.of("batch")) == 30  # the cap, not spec["batches"]
    assert m["stopped"] == "batches" and m["batches"] == 28 and m["videos"] == 84
    assert set(m) == {"ev", "batches", "videos", "seconds", "rate", "lo", "hi", "stopped"}
