"""The one shared-memory formula: bytes a loader config keeps in /dev/shm at once.

Every batch a DataLoader worker has produced and the main process has not yet consumed lives in
/dev/shm: ``prefetch_factor`` batches per worker (``num_workers × prefetch_factor`` in all), plus one
slot of slack for the batch the main process (or its pin-memory thread, copying it into pinned
memory) still holds while the workers refill theirs. With ``num_workers=0`` the main process loads
each batch itself and nothing crosses shared memory: the need is 0.

A batch's bytes are what its tensors hold (clips and labels: ``data.batch.describe``'s ``bytes``);
:func:`batch_bytes` predicts them for the built-in dataset before anything ran. The runner's evidence
(``shm_need_bytes``) and ``stress.budget.predict`` both use :func:`shm_in_flight`.
"""

from __future__ import annotations

from ..data.loader import LoaderConfig, effective_prefetch
from .units import MiB, fmt_bytes

LABEL_BYTES = 8
"""One int64 label per video (the built-in dataset's collated label tensor)."""


def batch_bytes(batch_size: int, frames: int, size: int) -> int:
    """Predicted bytes of one built-in batch: uint8 clips ``B × T × S × S × 3`` and int64 labels."""
    return batch_size * frames * size * size * 3 + batch_size * LABEL_BYTES


def shm_slots(config: LoaderConfig) -> int:
    """Batches in /dev/shm at once: ``W × prefetch + 1`` with workers, 0 without."""
    return shm_slots_for(config.num_workers, config.prefetch_factor)


def shm_slots_for(num_workers: int, prefetch_factor: int | None) -> int:
    """:func:`shm_slots` for a config known only by its two numbers (a record, a watched loader)."""
    if not num_workers:
        return 0
    return int(num_workers) * effective_prefetch(num_workers, prefetch_factor) + 1


def shm_in_flight(config: LoaderConfig, bytes_per_batch: int) -> int:
    """Bytes of /dev/shm one loader (one rank) holds at once: :func:`shm_slots` × ``bytes_per_batch``."""
    return shm_slots(config) * int(bytes_per_batch)


def largest_fitting_batch_for(
    num_workers: int, prefetch_factor: int | None, bytes_per_item: float, available: int, ranks: int = 1
) -> int | None:
    """The largest batch size whose :func:`shm_in_flight` (× ``ranks`` sharing one /dev/shm) fits
    ``available`` bytes with these workers and prefetch; 0: not even one item per batch fits; None: no
    workers, nothing goes through /dev/shm."""
    slots = shm_slots_for(num_workers, prefetch_factor) * max(1, ranks)
    if not slots:
        return None
    if bytes_per_item <= 0:
        return None
    return max(0, int(available // (slots * bytes_per_item)))


def fit_advice(
    batch_size: int,
    num_workers: int,
    prefetch_factor: int | None,
    bytes_per_item: float,
    available: int,
    where: str = "/dev/shm",
    ranks: int = 1,
) -> tuple[str, str]:
    """What fits ``available`` bytes of /dev/shm by this module's formula, as (``alone``, ``change``):
    ``alone`` says so when one batch by itself exceeds it (no worker or prefetch setting can help; else
    empty); ``change`` reads after "or " and names the largest batch size whose batches in flight fit at
    these workers and prefetch (from the measured bytes per item), and the workers × prefetch that fit at
    this batch size. Both empty without workers (nothing goes through /dev/shm). ``where`` names the
    /dev/shm (``the emulated /dev/shm``)."""
    best = largest_fitting_batch_for(num_workers, prefetch_factor, bytes_per_item, available, ranks)
    if best is None:
        return "", ""
    pf = effective_prefetch(num_workers, prefetch_factor)
    slots = shm_slots_for(num_workers, prefetch_factor) * max(1, ranks)
    one = bytes_per_item * batch_size * max(1, ranks)
    per = f"{bytes_per_item / MiB:.1f} MiB per video"
    change = (
        f"use batch_size ≤ {best}, the largest whose {slots} batches in flight fit ({per})"
        if best
        else f"lower num_workers × prefetch_factor: not even batch_size=1 fits {slots} batches in flight ({per})"
    )
    if one > available:
        alone = (
            f"One batch of {batch_size} videos alone ({fmt_bytes(one)}) exceeds {where} ({fmt_bytes(available)}): "
            "no num_workers or prefetch_factor setting can help."
        )
        return alone, change
    k = int(available // one) - 1  # batches a loader may keep in flight at this batch size: W × prefetch + 1
    if k >= 1 and best < batch_size:
        change += (
            f", or keep batch_size={batch_size} with num_workers × prefetch_factor ≤ {k} (now {num_workers} × {pf})"
        )
    return "", change


__all__ = [
    "LABEL_BYTES",
    "batch_bytes",
    "fit_advice",
    "largest_fitting_batch_for",
    "shm_slots",
    "shm_slots_for",
    "shm_in_flight",
]
