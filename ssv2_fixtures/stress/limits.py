"""``-m limits``: per worker count, the largest batch size that survives ``--limit-batches`` batches.

Grow (1, 2, 4, … up to ``--max-batch-size``), then bisect between the last pass and the first failure;
every probe is an isolated run. The search (:func:`boundary`) is pure: it asks a ``probe(batch_size) ->
passed`` callable, so it is tested without processes; :func:`search` runs it with real probes and
builds the session's ``limits`` entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..data.loader import LoaderConfig
from ..run.shm import shm_slots

if TYPE_CHECKING:
    from ..run.runner import RunResult
    from .campaign import Stress


def boundary(probe: Callable[[int], bool], max_batch_size: int) -> tuple[int, int | None]:
    """(largest passing batch size or 0, first failing batch size or None): grow by doubling (the last
    step lands on ``max_batch_size`` exactly), then bisect between the last pass and the first failure."""
    good, bad = 0, None
    bs = 1
    while bs <= max_batch_size:
        if not probe(bs):
            bad = bs
            break
        good = bs
        bs = bs * 2 if bs < max_batch_size else bs + 1
        if bs > max_batch_size and good < max_batch_size:
            bs = max_batch_size
    while bad is not None and bad - good > 1:
        mid = (good + bad) // 2
        if probe(mid):
            good = mid
        else:
            bad = mid
    return good, bad


def search_bound(max_batch_size: int, fitting: int | None) -> int:
    """The largest batch size the search tries: ``--max-batch-size``, lowered to just past twice the
    largest batch size whose predicted shm fits (``fitting``, from the measured bytes per item): the
    failure lies near the prediction (within 10 %), so batches far beyond it only cost time and memory.
    ``None`` (no shm in play): the option's value."""
    if fitting is None:
        return max_batch_size
    return max(1, min(max_batch_size, 2 * fitting + 2))


@dataclass
class LimitsResult:
    workers: int
    entry: dict[str, Any]  # the session's ``limits`` row (results.json)
    probes: dict[int, RunResult] = field(default_factory=dict)

    @property
    def unclassified(self) -> list[str]:
        """Labels of failing probes whose outcome is ``unknown`` (the search must name every failure)."""
        return [r.record["label"] for r in self.probes.values() if not r.passed and r.kind == "unknown"]

    @property
    def summary(self) -> str:
        e = self.entry
        if e["first_failing_batch_size"] is None:
            return f"W={self.workers}: no failure up to batch size {e['max_batch_size_tried']} (the largest tried)"
        return (
            f"W={self.workers}: boundary batch size {e['boundary_batch_size'] or 'none'}; "
            f"{e['first_failing_batch_size']} fails as {e['kind_beyond']}"
        )


def search(stress: Stress, workers: int) -> LimitsResult:
    """Run the search for ``workers`` with isolated probes, record every probe and the session's entry."""
    s = stress.settings
    pf = s.prefetch[0] if workers else None
    out = LimitsResult(workers, {})

    def probe(bs: int) -> bool:
        cfg = LoaderConfig(batch_size=bs, num_workers=workers, prefetch_factor=pf, sharing_strategy=s.sharing_strategy)
        r = stress.run(cfg, s.limit_batches, kind="limits", phase=f"w{workers}-bs{bs}")
        stress.record(r)
        out.probes[bs] = r
        return r.passed

    one = LoaderConfig(batch_size=1, num_workers=workers, prefetch_factor=pf, sharing_strategy=s.sharing_strategy)
    fitting = stress.largest_fitting_batch(one)
    # A main process faster than its workers holds as little as one batch in shm, not all W × prefetch + 1
    # (measured: bs12-w1-pf4 of 29 MiB batches passed under 64 MiB): the bound starts from the batch size
    # whose single batch fits (tests/unit/stress/test_small_split.py), so the failure stays in reach.
    bound = search_bound(s.max_batch_size, None if fitting is None else fitting * shm_slots(one))
    good, bad = boundary(probe, bound)
    beyond = out.probes[bad] if bad is not None else None
    out.entry = {
        "num_workers": workers,
        "prefetch_factor": pf,
        "boundary_batch_size": good or None,
        "first_failing_batch_size": bad,
        "kind_beyond": beyond.kind if beyond else None,
        "max_batch_size_tried": max(out.probes),
        "probes": [r.record["label"] for r in out.probes.values()],
        "emulated": s.sandbox.to_dict() if s.sandbox else None,
        "shm_need_beyond_bytes": beyond.record["budget"]["shm_bytes"] if beyond else None,
        # what a batch at the boundary really held (measured from its tensors in the child)
        "bytes_per_batch_at_boundary": out.probes[good].metrics.get("bytes_per_batch") if good else None,
        # the search's bound and the prediction it came from (measured bytes per item for a user's pipeline)
        "predicted_fitting_batch_size": fitting,
        "search_bound": bound,
        "bytes_per_item": stress.bytes_per_item,
    }
    stress.session.limits.append(out.entry)
    stress.session.flush()
    return out
