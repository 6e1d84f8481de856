"""Where one item's time goes (issue #23): the pure arithmetic of results.json's ``"breakdown"``.

The measurement (:mod:`.breakdown_probe`) records, per probe item, the seconds in ``__getitem__`` and the
seconds inside the video decoder's calls, the collate seconds per item, and the loop's wall time per item
(``item_s``: the probe's own item time, W = 0). This module turns them into four stages whose seconds add
up to ``item_s`` and whose shares add up to 1:

- ``decode``: inside the decoder's calls;
- ``transform``: the rest of ``__getitem__`` (augmentation, conversion, file opening);
- ``collate``: the collate function, per item;
- ``other``: what is left of ``item_s`` (the loop itself: sampling, timers, list building).

Ceilings are in videos/s; the binding stage is ``transfer`` when the transfer ceiling is the one closest
above the achieved rate, else the stage with the largest share (:func:`binding`). Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import fmean, median
from typing import Any

from .schema import BreakdownCeilings, BreakdownRecord, HelpRecord, HotSpot, RunRecord, StageRecord, StallRecord

STAGES = ("decode", "transform", "collate", "other")
STALL_FACTOR = 5.0  # an item this many times the median, mostly outside the decoder, stalled (ItemTimings.steady)
CEILINGS = ("decode", "item", "transfer")


@dataclass(frozen=True)
class ItemTimings:
    """What the probe recorded: one entry per item in ``getitem_s``/``decode_s``; ``collate_s`` per item
    (a batch's collate seconds over its items); ``loop_s`` the wall time of the whole timed loop over
    ``len(getitem_s)`` items (getitem, decode and collate are timed inside it)."""

    getitem_s: Sequence[float]
    decode_s: Sequence[float]
    collate_s: Sequence[float]
    loop_s: float

    def __post_init__(self) -> None:
        if not self.getitem_s or len(self.getitem_s) != len(self.decode_s):
            raise ValueError("ItemTimings: getitem_s and decode_s need one entry per item, at least one")
        if self.loop_s <= 0 or any(x < 0 for x in (*self.getitem_s, *self.decode_s, *self.collate_s)):
            raise ValueError("ItemTimings: seconds must be >= 0 and loop_s > 0")

    @property
    def item_s(self) -> float:
        """Seconds per item in one process: the loop's wall time over its items."""
        return self.loop_s / len(self.getitem_s)

    def steady(self) -> tuple[ItemTimings, StallRecord | None]:
        """These timings without the items that stalled: ``__getitem__`` over :data:`STALL_FACTOR` × the median
        item with most of it outside the decoder. One such item (0.71 s among ~22 ms items, 35 ms of it
        decoding) made the built-in set look transform-bound; a stall is the machine's, not a stage."""
        med = median(self.getitem_s)
        stalled = [
            i
            for i, (g, d) in enumerate(zip(self.getitem_s, self.decode_s))
            if g > STALL_FACTOR * med and g - min(d, g) > 0.5 * g
        ]
        if not stalled or len(stalled) == len(self.getitem_s):
            return self, None
        gone = set(stalled)
        stalled_s = sum(self.getitem_s[i] for i in stalled)
        keep = [i for i in range(len(self.getitem_s)) if i not in gone]
        steady = ItemTimings(
            [self.getitem_s[i] for i in keep],
            [self.decode_s[i] for i in keep],
            self.collate_s,
            max(self.loop_s - stalled_s, 1e-9),
        )
        return steady, {"items": len(stalled), "s": stalled_s}


def stages(t: ItemTimings) -> dict[str, StageRecord]:
    """The four stages of ``t.item_s``; their ``s_per_item`` add up to ``t.item_s`` and shares to 1.

    Decode happens inside ``__getitem__``, so decode is capped at getitem per item; the timers are nested
    inside the loop's, so getitem + collate exceed ``item_s`` only by clock rounding: then the three
    measured stages are scaled to fit and ``other`` is 0."""
    item_s = t.item_s
    decode = fmean(min(d, g) for d, g in zip(t.decode_s, t.getitem_s))
    getitem = fmean(t.getitem_s)
    collate = fmean(t.collate_s) if t.collate_s else 0.0
    parts = {"decode": decode, "transform": getitem - decode, "collate": collate}
    used = sum(parts.values())
    if used > item_s:
        parts = {k: v * item_s / used for k, v in parts.items()}
        used = item_s
    parts["other"] = item_s - used
    return {k: {"s_per_item": v, "share": v / item_s} for k, v in parts.items()}


def ceilings(
    decode_s: float, item_rate: float | None, transfer: float | None, cores: int, achieved: float | None
) -> BreakdownCeilings:
    """Videos/s: ``decode`` the decoder alone (1 / decode seconds per item) × ``cores``; ``item`` the
    single-process rate × ``cores``; ``transfer`` as measured; ``achieved`` the rate the session reached."""
    n = max(1, int(cores))
    return {
        "decode": n / decode_s if decode_s > 0 else None,
        "item": n * item_rate if item_rate else None,
        "transfer": transfer,
        "achieved": achieved,
    }


def binding(st: Mapping[str, StageRecord], ceil: BreakdownCeilings) -> str:
    """``transfer`` when the transfer ceiling is the one closest above the achieved rate; otherwise the
    stage with the largest share of the item time. A decode or item ceiling measured *below* the achieved rate
    contradicts it (the probe ran slower than the configs did: a busier machine at that moment), so then
    nothing is known to stand closest above it and the shares decide."""
    achieved, transfer = ceil.get("achieved"), ceil.get("transfer")
    compute = [v for v in (ceil["decode"], ceil["item"]) if v is not None]
    if achieved is not None and transfer is not None and transfer >= achieved:
        if all(v >= achieved for v in compute) and transfer <= min(compute, default=transfer):
            return "transfer"
    return max(STAGES, key=lambda k: st[k]["share"])


def headroom(ceil: BreakdownCeilings) -> dict[str, float]:
    """How many times each ceiling exceeds the achieved rate (ceilings without a value left out)."""
    a = ceil.get("achieved")
    if not a:
        return {}
    got = {"decode": ceil["decode"], "item": ceil["item"], "transfer": ceil["transfer"]}
    return {k: v / a for k, v in got.items() if v is not None}


def record(
    t: ItemTimings,
    *,
    item_rate: float | None,
    transfer: float | None,
    cores: int,
    achieved: float | None,
    hot: Sequence[HotSpot] = (),
    method: str = "",
    decode_alone_s: float | None = None,
) -> BreakdownRecord:
    """results.json's ``"breakdown"`` from the probe's timings and the session's rates. ``decode_alone_s``:
    seconds per item of the decoder timed alone on the same files and frames (the probe's replay); the
    decode ceiling comes from it when measured, else from the decode seconds inside ``__getitem__``."""
    st = stages(t)
    alone = decode_alone_s if decode_alone_s is not None and decode_alone_s > 0 else None
    c = ceilings(alone or st["decode"]["s_per_item"], item_rate, transfer, cores, achieved)
    out: BreakdownRecord = {
        "item_s": t.item_s,
        "stages": st,
        "ceilings": c,
        "binding": binding(st, c),
        "hot": list(hot),
        "method": method,
    }
    if alone is not None:
        out["decode_alone_s"] = alone
    return out


# Advice the suite cannot measure without changing the user's code: worded as such where it is shown.
NOT_MEASURED: dict[str, tuple[str, ...]] = {
    "decode": ("fewer frames per clip, or more cores for the workers",),
    "transform": (
        "the hot spots below: cheaper or fewer augmentation passes per frame",
        "convert to float and normalise on the GPU instead of in the workers",
    ),
    "collate": ("stack once in the collate function; no Python loop over items",),
    "other": ("the loop around the items (sampler, batching) is rarely the limit: measure again",),
    "transfer": ("fewer bytes per batch: one sample per video, smaller batches, a smaller crop",),
}


def what_would_help(
    *,
    cores: int,
    decode_now: float | None,
    decode_at_size: Mapping[str, Any] | None = None,
    transfer: Mapping[str, Any] | None = None,
    transfer_uint8: Mapping[str, Any] | None = None,
) -> list[HelpRecord]:
    """Per stage, what would help: measured changes first (the probe measured them without the user's
    code changing), then advice the suite cannot measure (``measured`` false).

    ``decode_at_size``: ``{"size", "s"}``, the decoder alone with native-size readers re-opened at the
    item's size (seconds per item); ``transfer``/``transfer_uint8``: the transfer ceiling's measurement
    as the batch is and with its floating-point arrays as uint8 (``videos_per_s``, ``bytes_per_batch``)."""
    n = max(1, int(cores))
    out: list[HelpRecord] = []
    if decode_at_size and float(decode_at_size.get("s") or 0) > 0:
        e: HelpRecord = {
            "stage": "decode",
            "change": f"decode at the item's size ({int(decode_at_size['size'])} px short side) instead of native",
            "measured": True,
            "ceiling_name": "decode",
            "ceiling": n / float(decode_at_size["s"]),
        }
        if decode_now is not None:
            e["now"] = decode_now
        out.append(e)
    if transfer and transfer_uint8:
        for stage in ("transfer", "transform"):  # fewer bytes to move; the float conversion leaves the workers
            out.append(
                {
                    "stage": stage,
                    "change": "send the batch as uint8 (same shapes), convert and normalise on the GPU",
                    "measured": True,
                    "ceiling_name": "transfer",
                    "ceiling": float(transfer_uint8["videos_per_s"]),
                    "now": float(transfer["videos_per_s"]),
                    "bytes_per_batch": int(transfer_uint8["bytes_per_batch"]),
                    "bytes_now": int(transfer["bytes_per_batch"]),
                }
            )
    for stage, texts in NOT_MEASURED.items():
        out += [{"stage": stage, "change": t, "measured": False} for t in texts]
    return out


def help_for(rec: BreakdownRecord, stage: str | None = None) -> list[HelpRecord]:
    """``rec``'s ``what_would_help`` entries for ``stage`` (the binding stage by default), measured first."""
    want = stage or rec["binding"]
    got = [h for h in rec.get("what_would_help") or [] if h.get("stage") == want]
    return sorted(got, key=lambda h: not h.get("measured"))


BAR_PARTS = ("decode", "transform", "collate", "transfer", "waiting")


def config_bar(b: BreakdownRecord, rate: float, workers: int, cores: int) -> dict[str, float]:
    """One measured config's seconds per video in the main loop (``1 / rate``), split like the plot's bar:
    the probe's decode, transform and collate seconds per item spread over the processes that make items
    (``min(workers, cores)``, 1 with no workers), ``transfer`` = 1 / the transfer ceiling (workers only),
    and ``waiting``: what is left of ``1 / rate`` (the main loop waiting, and the loop's own ``other``).
    When the parts exceed ``1 / rate`` (the config beat the probe's per-item seconds) they are scaled to
    fit and ``waiting`` is 0. The values add up to ``1 / rate``."""
    if rate <= 0:
        raise ValueError("config_bar: rate must be > 0")
    wall = 1.0 / rate
    par = max(1, min(int(workers), max(1, int(cores)))) if workers > 0 else 1
    st = b["stages"]
    parts: dict[str, float] = {
        k: float(st[k]["s_per_item"]) / par for k in ("decode", "transform", "collate") if k in st
    }
    t = b["ceilings"].get("transfer")
    parts["transfer"] = 1.0 / t if workers > 0 and t else 0.0
    used = sum(parts.values())
    if used > wall:
        parts = {k: v * wall / used for k, v in parts.items()}
        used = wall
    parts["waiting"] = wall - used
    return {k: parts.get(k, 0.0) for k in BAR_PARTS}


def decode_agreement(rec: BreakdownRecord) -> float | None:
    """The decoder timed alone over the decode seconds inside ``__getitem__`` (1.0: they agree); ``None``
    when either is missing or zero."""
    alone, inside = rec.get("decode_alone_s"), rec["stages"]["decode"]["s_per_item"]
    return alone / inside if alone and inside > 0 else None


def with_achieved(rec: BreakdownRecord, achieved: float | None) -> BreakdownRecord:
    """``rec`` with the session's achieved rate filled in and the binding stage decided again (the probe
    runs before any config; the achieved rate is known only as the configs finish)."""
    c: BreakdownCeilings = {**rec["ceilings"], "achieved": achieved}
    return {**rec, "ceilings": c, "binding": binding(rec["stages"], c)}


def achieved(results: Sequence[RunRecord]) -> float | None:
    """The session's best measured rate: the highest videos/s of a passed run."""
    rates = [
        float(v)
        for r in results
        if r.get("status") == "passed" and (v := (r.get("metrics") or {}).get("videos_per_s")) is not None
    ]
    return max(rates) if rates else None


def finish(
    b: BreakdownRecord | None, decode_rate: float | None, results: Sequence[RunRecord]
) -> BreakdownRecord | None:
    """The breakdown as results.json writes it: the achieved rate so far (over ``results``) and the binding
    stage for it; the item ceiling from the session's single-process rate (``decode_rate``, the decode
    limit's base) when one was measured."""
    if b is None:
        return None
    rate = decode_rate
    if rate:
        cores = round(b["ceilings"]["item"] * b["item_s"]) if b["ceilings"]["item"] else 1  # item was cores / item_s
        b = {**b, "ceilings": {**b["ceilings"], "item": float(rate) * max(1, cores)}}
    return with_achieved(b, achieved(results))
