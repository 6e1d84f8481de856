"""Predict what a loader config needs before it runs: shared memory in flight, RSS, open files.

Shared memory: every batch a worker has produced and the main process has not yet consumed lives in
/dev/shm. DataLoader keeps ``prefetch_factor`` batches in flight per worker (``num_workers ×
prefetch_factor`` in all), and the main process holds the batch it is using; each batch is
``batch_size × frames × size² × 3`` bytes of uint8 (+ the tiny label tensor). ``pin_memory`` adds a
pinned copy (regular memory, not shm) of the batches the pin thread holds. With ``num_workers=0``
nothing goes through shared memory.

Open files (``file_descriptor`` strategy): each shared tensor in flight is passed as one fd; a batch is
two tensors (clips, labels). ``file_system`` passes names, not fds.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..data.loader import LoaderConfig

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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def batch_bytes(batch_size: int, frames: int, size: int) -> int:
    return batch_size * frames * size * size * 3 + batch_size * 8


def predict(config: LoaderConfig, *, frames: int = 16, size: int = 224, base_rss: int | None = None) -> Budget:
    """``base_rss``: RSS of one loading process (interpreter + torch + decord + index), measured once per
    session by an isolated W=0 run; without it, the constants measured on the reference machine."""
    b = batch_bytes(config.batch_size, frames, size)
    w = config.num_workers
    in_flight = w * config.effective_prefetch
    shm = b * (in_flight + 1) if w else 0
    decode_buf = frames * 427 * 240 * 3 * 2  # decoder frames at native size before the resize, ×2 slack
    main_base, worker_base = (base_rss, base_rss) if base_rss else (MAIN_BASE_RSS, WORKER_BASE_RSS)
    rss = main_base + b * (in_flight + 1) + w * (worker_base + decode_buf + b)
    fds = PROCESS_BASE_FDS + (2 * (in_flight + 1) + 4 * w if config.sharing_strategy == "file_descriptor" else 4 * w)
    return Budget(batch_bytes=b, shm_bytes=shm, rss_bytes=rss, fds=fds)
