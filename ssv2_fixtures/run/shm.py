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


__all__ = ["LABEL_BYTES", "batch_bytes", "shm_slots", "shm_slots_for", "shm_in_flight"]
