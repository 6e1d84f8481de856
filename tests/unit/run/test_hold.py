"""The full-queue hold (NOTE [full-queue hold] in run/hold.py) on a given clock and a fake iterator, the
remedy that names the largest batch size that fits, and used/free named apart."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ssv2_fixtures.run.hold import cap_for, hold_evidence, hold_full_queues, hold_metrics
from ssv2_fixtures.run.outcome import Evidence, classify
from ssv2_fixtures.run.shm import batch_bytes, fit_advice, largest_fitting_batch_for, shm_slots_for

MB = 2**20
SHM_ENOSPC = (
    "Caught RuntimeError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
    "RuntimeError: unable to allocate shared memory(shm) for file </torch_1_2_3>: No space left on device (28)"
)


@dataclass
class Events:
    log: list[dict[str, Any]] = field(default_factory=list)

    def emit(self, ev: str, /, **fields: Any) -> None:
        self.log.append({"ev": ev, **fields})


@dataclass
class Loader:
    """W × pf batches in flight; one more lands every ``every`` seconds of the fake clock."""

    in_flight: int
    every: float
    clock: list[float]
    taken: int = 0
    t_hold: float | None = None

    def __next__(self) -> int:
        self.taken += 1
        if self.t_hold is None:
            self.t_hold = self.clock[0]
        return self.taken

    def landed(self, _: Any) -> tuple[int, int]:
        n = int((self.clock[0] - (self.t_hold or 0.0)) / self.every)
        return min(n, self.in_flight), self.in_flight


def _hold(loader: Loader, clock: list[float], read: Any, count: Any, batch_s: float = 0.1) -> tuple[Events, Any]:
    ev = Events()

    def sleep(s: float) -> None:
        clock[0] += s

    out = hold_full_queues(
        ev, loader, workers=2, prefetch=2, batch_s=batch_s, now=lambda: clock[0], sleep=sleep,
        read_shm=read, count=count,
    )  # fmt: skip
    return ev, out


def test_the_hold_waits_until_every_slot_has_landed_then_drains_them() -> None:
    clock = [0.0]
    loader = Loader(in_flight=4, every=0.3, clock=clock)
    ev, out = _hold(loader, clock, lambda: int(loader.landed(None)[0] * 10 * MB), loader.landed)
    assert out is not None and out["stopped"] == "full" and out["landed"] == out["in_flight"] == 4
    assert out["shm_used_bytes"] == 40 * MB and out["shm_start_bytes"] == 0
    assert out["seconds"] >= 4 * 0.3  # not before the last batch landed
    assert [e["ev"] for e in ev.log] == ["hold", "held"]
    assert loader.taken == 1 + 4  # the held batch, then every batch in flight, as training takes them


def test_without_the_iterators_count_it_stops_when_shm_stops_growing() -> None:
    clock = [0.0]
    loader = Loader(in_flight=4, every=0.3, clock=clock)
    _, out = _hold(loader, clock, lambda: int(loader.landed(None)[0] * 10 * MB), lambda _: None)
    assert out is not None and out["stopped"] == "stable" and out["shm_used_bytes"] == 40 * MB
    assert out["landed"] is None and loader.taken == 1 + 4


def test_the_hold_is_bounded_by_the_loops_own_time_per_batch() -> None:
    clock = [0.0]
    never = Loader(in_flight=4, every=1e9, clock=clock)  # a worker that never delivers
    _, out = _hold(never, clock, lambda: 0, never.landed, batch_s=0.5)
    assert out is not None and out["stopped"] == "cap"
    assert cap_for(0.5, 2, 2) <= out["seconds"] < cap_for(0.5, 2, 2) + 0.1
    assert cap_for(0.001, 2, 2) == 2.0 and cap_for(100.0, 4, 4) == 20.0  # HOLD_MIN_S, HOLD_MAX_S


@dataclass
class Sample:
    t: float
    shm_used: int


def test_metrics_take_the_larger_of_the_childs_reading_and_the_monitors_samples_in_the_hold() -> None:
    events = [
        {"ev": "batch", "t": 1.0},
        {"ev": "hold", "t": 10.0},
        {"ev": "held", "t": 12.0, "seconds": 2.0, "landed": 4, "stopped": "full", "shm_used_bytes": 50 * MB},
    ]
    samples = [Sample(5.0, 90 * MB), Sample(11.0, 45 * MB), Sample(11.5, 47 * MB)]  # 90 MB: before the hold
    m = hold_metrics(events, samples, baseline=2 * MB)
    assert m == {
        "full_queue_s": 2.0,
        "full_queue_stopped": "full",
        "full_queue_batches": 5,  # the 4 landed and the one the hold kept
        "shm_full_queue_bytes": 48 * MB,
    }
    assert hold_metrics(events[:1], samples, 0) == {} and hold_evidence(events[:1]) == {}
    assert hold_evidence(events[:2]) == {"during": "full-queue hold"}


# --- the remedy: the largest batch size that fits, and used/free named apart ---------------------------


def _remedy(bs: int, free: int, *, emulated: bool = True) -> str:
    per_batch = batch_bytes(bs, 16, 224)
    ev = Evidence(
        exit_code=1,
        error={"type": "RuntimeError", "message": SHM_ENOSPC, "chain": ["RuntimeError"]},
        config={"num_workers": 2, "prefetch_factor": 2, "batch_size": bs},
        facts={
            "shm_need_bytes": 5 * per_batch,
            "shm_total_bytes": 64 * MB,
            "shm_free_bytes": free,
            "batch_bytes": per_batch,
            **({"emulated": {"shm_bytes": 64 * MB}} if emulated else {}),
        },
    )
    out = classify(ev)
    assert out["kind"] == "shm_exhausted"
    return out["remedy"]


def test_one_batch_larger_than_the_shm_is_said_and_the_largest_fitting_batch_size_named() -> None:
    remedy = _remedy(32, 64 * MB)
    per_item = batch_bytes(2, 16, 224) - batch_bytes(1, 16, 224)
    best = (64 * MB) // (5 * per_item)  # 5 batches in flight with 2 workers × prefetch 2
    assert best * 5 * per_item <= 64 * MB < (best + 1) * 5 * per_item
    assert "One batch of 32 videos alone (74 MiB) exceeds the emulated /dev/shm (64 MiB)" in remedy
    assert "no num_workers or prefetch_factor setting can help" in remedy
    assert f"use batch_size ≤ {best}, the largest whose 5 batches in flight fit (2.3 MiB per video)" in remedy
    assert "lower prefetch_factor×num_workers×batch_size" not in remedy and "--shm-size=1g" in remedy


def test_a_batch_that_fits_alone_gets_the_batch_size_and_the_queue_length_that_fit() -> None:
    remedy = _remedy(8, 9 * MB)
    assert "alone" not in remedy and "use batch_size ≤ 5" in remedy
    # 64 MiB holds 3 batches of 8 (18.4 MiB): W × prefetch + 1 ≤ 3
    assert "or keep batch_size=8 with num_workers × prefetch_factor ≤ 2 (now 2 × 2)" in remedy


def test_used_and_free_are_named_apart() -> None:
    # the failed allocation was refused whole: nothing in use, all of it free (never "fell to 64 MiB of 64 MiB")
    remedy = _remedy(32, 64 * MB)
    assert (
        "the emulated /dev/shm holds 64 MiB in all; at most 0 B of it was in use at a sample (64 MiB still free)"
        in remedy
    )
    assert "fell to" not in remedy
    host = _remedy(8, 9 * MB, emulated=False)
    assert "the /dev/shm holds 64 MiB in all; at most 55 MiB of it was in use at a sample (9 MiB still free)" in host


def test_advice_uses_the_one_formula() -> None:
    for w, pf, ranks in ((1, 1, 1), (2, 2, 1), (4, 3, 2)):
        best = largest_fitting_batch_for(w, pf, 1000.0, 10**6, ranks)
        assert best == 10**6 // (shm_slots_for(w, pf) * ranks * 1000)
    assert largest_fitting_batch_for(0, None, 1000.0, 10**6) is None and fit_advice(8, 0, None, 1e3, 10**6) == ("", "")
    alone, change = fit_advice(4, 1, 1, 10**6, 10**6 // 2)
    assert alone and change.startswith("lower num_workers × prefetch_factor: not even batch_size=1 fits")
