"""Once per session, before its configs run: where the pipeline's item time goes (issue #23).

:func:`ensure_breakdown` runs the breakdown probe (:mod:`ssv2_fixtures.run.breakdown_probe`, one isolated
process) for the session's pipeline, SSv2Clips or a user's factory alike, and keeps its record on the
session; :meth:`.session.StressSession.file` fills in the achieved rate and decides the binding stage as
the configs finish (:func:`ssv2_fixtures.run.breakdown.finish`). A failed probe leaves no breakdown and never
fails a test.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..data.loader import LoaderConfig
from ..run.breakdown import ItemTimings, record, what_would_help
from ..run.breakdown_probe import measure
from ..run.child import DatasetSpec
from ..run.schema import BreakdownRecord, HotSpot
from .probe import PROBE_BATCH_SIZE

if TYPE_CHECKING:
    from .session import StressSession

ITEM_BUDGET_S = 2.0  # timed items: at least one batch, then until this many seconds (or 24 items)
TRANSFER_S = 1.5  # the transfer ceiling's measured window, after the first worker round
PROFILE_ITEMS = 3


def transfer_config(session: StressSession) -> LoaderConfig:
    """The config whose transfer ceiling is measured: the session's largest worker count (capped at the
    cores and ``--max-workers``) at its smallest batch size, with the session's sharing strategy."""
    s = session.settings
    cores = int(session.machine.get("cores") or os.cpu_count() or 1)
    workers = max(1, min([max(s.workers or [2]), cores, *([s.max_workers] if s.max_workers else [])]))
    return LoaderConfig(
        batch_size=max(1, min(s.batch_sizes or [8])), num_workers=workers, sharing_strategy=s.sharing_strategy
    )


def method_text(m: Mapping[str, Any], tc: LoaderConfig, cores: int) -> str:
    prof = m["profile"]
    loop_item = m["loop_s"] / len(m["getitem_s"])
    over = prof["item_s"] / max(1e-12, sum(m["getitem_s"]) / len(m["getitem_s"])) - 1
    t = m.get("transfer")
    alone = (
        "the decoder timed alone: each timed item's decoder calls replayed right after it with the same "
        f"arguments, outside __getitem__ ({m['decode_calls']} calls)"
        if m.get("decode_alone_s")
        else "the decode seconds inside __getitem__ (no decoder call to replay)"
    )
    if t and (u := m.get("transfer_uint8")):
        extra = f"; the same batch as uint8 ({u['bytes_per_batch']} bytes) the same way"
    else:
        extra = ""
    if d := m.get("decode_at_size"):
        extra += f"; decode at size: the same replay with native-size readers opened at {d['size']} px short side"
    transfer = (
        f"transfer: clones of the probe's items through make_loader({t['label']}, its sharing strategy and "
        f"collate), {t['batches']} batches of {t['bytes_per_batch']} bytes in {t['seconds']:.1f} s after the "
        "first worker round"
        if t
        else "transfer: not measured"
    )
    return (
        f"one isolated W=0 process, {len(m['getitem_s'])} items timed ({loop_item * 1e3:.1f} ms each); decode: "
        f"seconds inside timing wrappers on the decoder entry points ({', '.join(m['wrapped']) or 'none found'}); "
        "transform: the rest of __getitem__; collate: the collate_fn over each batch of probe items, per item; "
        f"hot spots: cProfile (deterministic) over {prof['items']} more items, own time per item, overhead "
        f"{over:+.0%} on this pipeline; ceilings × {cores} cores: decode = 1 / {alone}, item = the "
        f"single-process rate; {transfer}{extra}"
    )


def probe_spec(dataset: DatasetSpec, batch_sizes: Sequence[int], tc: LoaderConfig) -> dict[str, Any]:
    """The breakdown probe's spec for a session's pipeline (benchmarks/breakdown_cost.py builds the same)."""
    ds = dict(dataset)
    ds["train"] = True  # the long runs' mode
    return {
        "dataset": ds,
        "config": LoaderConfig(batch_size=max(1, min([PROBE_BATCH_SIZE, *batch_sizes])), num_workers=0).to_dict(),
        "transfer": tc.to_dict(),
        "transfer_s": TRANSFER_S,
        "item_s_budget": ITEM_BUDGET_S,
        "profile_items": PROFILE_ITEMS,
    }


def ensure_breakdown(session: StressSession, dataset: DatasetSpec) -> BreakdownRecord | None:
    """The session's breakdown, measured now if it has not been tried yet (one try per session)."""
    if session.breakdown is not None or session.breakdown_tried or session.data_error is not None:
        return session.breakdown
    if session.settings.no_breakdown:  # the report says it was not measured (report/breakdown.py)
        return None
    session.breakdown_tried = True
    tc = transfer_config(session)
    m = measure(probe_spec(dataset, session.settings.batch_sizes, tc), session.runs_dir / "breakdown")
    if m is None:
        return None
    t, stalls = ItemTimings(m["getitem_s"], m["decode_s"], m["collate_s"], m["loop_s"]).steady()
    cores = max(1, min(tc.num_workers, int(session.machine.get("cores") or 1)))
    hot: list[HotSpot] = list(m["profile"]["hot"])
    transfer = (m.get("transfer") or {}).get("videos_per_s")
    rec = record(
        t,
        item_rate=1 / t.item_s,
        transfer=transfer,
        cores=cores,
        achieved=None,
        hot=hot,
        method=method_text(m, tc, cores),
        decode_alone_s=m.get("decode_alone_s"),
    )
    if stalls is not None:
        rec["stalls"] = stalls
    rec["what_would_help"] = what_would_help(
        cores=cores,
        decode_now=rec["ceilings"]["decode"],
        decode_at_size=m.get("decode_at_size"),
        transfer=m.get("transfer"),
        transfer_uint8=m.get("transfer_uint8"),
    )
    session.breakdown = rec
    session.flush()
    return session.breakdown
