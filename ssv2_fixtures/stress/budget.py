"""Predict what a loader config needs before it runs: shared memory in flight, RSS, open files.

Shared memory: :mod:`ssv2_fixtures.run.shm` holds the one formula (``shm_in_flight``: the batches in
flight, ``num_workers × prefetch_factor`` + 1, times the bytes of one batch). A batch's bytes are the
*measured* bytes per item × batch size when the session's probe measured the pipeline (a user's
``--dataset-factory``: float32, nested views, any collate), else the built-in dataset's arithmetic
(``run.shm.batch_bytes``: uint8 ``T × S × S × 3`` + the label). ``pin_memory`` adds a pinned copy
(regular memory, not shm) of the batches the pin thread holds. With ``num_workers=0`` nothing goes
through shared memory.

Open files (``file_descriptor`` strategy): each shared tensor in flight is passed as one fd; a batch is
two tensors (clips, labels). ``file_system`` passes names, not fds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..data.loader import LoaderConfig
from ..run.shm import batch_bytes, largest_fitting_batch_for, shm_in_flight, shm_slots

# Measured here (torch 2.13 CPU, decord 0.6): a worker = interpreter + torch + decord + index.
WORKER_BASE_RSS = 330 * 2**20
MAIN_BASE_RSS = 420 * 2**20
PROCESS_BASE_FDS = 64


@dataclass(frozen=True)
class Budget:
    batch_bytes: int
    shm_bytes: int
    rss_bytes: int
    fds: int
    measured_bytes: bool = False  # batch bytes from the session's probe (real batches), not arithmetic

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def predicted_batch_bytes(
    batch_size: int, *, frames: int = 16, size: int = 224, bytes_per_item: float | None = None
) -> int:
    """One batch's bytes: measured bytes per item × ``batch_size`` when a probe measured them, else the
    built-in dataset's arithmetic."""
    if bytes_per_item:
        return int(round(bytes_per_item * batch_size))
    return batch_bytes(batch_size, frames, size)


def predict(
    config: LoaderConfig,
    *,
    frames: int = 16,
    size: int = 224,
    base_rss: int | None = None,
    bytes_per_item: float | None = None,
) -> Budget:
    """``base_rss``: RSS of one loading process (interpreter + torch + decord + index), measured once per
    session by an isolated W=0 run; without it, the constants measured on the reference machine.
    ``bytes_per_item``: the probe's measured bytes per dataset item (see module docstring)."""
    b = predicted_batch_bytes(config.batch_size, frames=frames, size=size, bytes_per_item=bytes_per_item)
    w = config.num_workers
    slots = shm_slots(config)
    shm = shm_in_flight(config, b)
    # decoder frames at native size before the resize, ×2 slack (a measured base RSS already holds them
    # for a user's pipeline: its probe ran the pipeline's own decode)
    decode_buf = 0 if bytes_per_item and base_rss else frames * 427 * 240 * 3 * 2
    main_base, worker_base = (base_rss, base_rss) if base_rss else (MAIN_BASE_RSS, WORKER_BASE_RSS)
    rss = main_base + b * max(slots, 1) + w * (worker_base + decode_buf + b)
    fds = PROCESS_BASE_FDS + (2 * slots + 4 * w if config.sharing_strategy == "file_descriptor" else 4 * w)
    return Budget(batch_bytes=b, shm_bytes=shm, rss_bytes=rss, fds=fds, measured_bytes=bool(bytes_per_item))


def largest_fitting_batch(
    config: LoaderConfig, shm_available: int, *, frames: int = 16, size: int = 224, bytes_per_item: float | None = None
) -> int | None:
    """The largest batch size whose predicted shm fits ``shm_available`` for ``config``'s workers and
    prefetch (``None``: no shm is used, any batch size fits as far as shm goes)."""
    per_item = bytes_per_item or (batch_bytes(2, frames, size) - batch_bytes(1, frames, size))
    return largest_fitting_batch_for(config.num_workers, config.prefetch_factor, per_item, shm_available)


__all__ = ["Budget", "batch_bytes", "largest_fitting_batch", "predict", "predicted_batch_bytes"]
