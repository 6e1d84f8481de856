"""``LoaderConfig`` and ``make_loader``: the DataLoader settings under test, and how they are applied.

The same two names are what a user puts in ``train.py``, so the settings the suite validates are the
settings their training code runs with.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

SHARING_STRATEGIES = ("file_descriptor", "file_system")
MP_CONTEXTS = (None, "fork", "spawn", "forkserver")


def effective_prefetch(num_workers: int, prefetch_factor: int | None) -> int:
    """torch's rule: ``prefetch_factor`` batches per worker, 2 when unset; 0 without workers (for a
    config known only as a dict, e.g. a record or a watched loader)."""
    if not num_workers:
        return 0
    return 2 if prefetch_factor is None else int(prefetch_factor)


@dataclass(frozen=True)
class LoaderConfig:
    """One DataLoader setting. ``prefetch_factor=None`` means torch's default (2) when workers > 0."""

    batch_size: int = 8
    num_workers: int = 2
    prefetch_factor: int | None = None
    persistent_workers: bool = False
    pin_memory: bool = False
    shuffle: bool = False
    drop_last: bool = False
    sharing_strategy: str = "file_descriptor"
    timeout: float = 0.0
    mp_context: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        def bad(field: str, why: str) -> ValueError:
            return ValueError(f"LoaderConfig.{field}: {why}")

        for name in ("batch_size", "num_workers", "seed"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool):
                raise bad(name, f"must be an integer, got {v!r}")
        if self.batch_size < 1:
            raise bad("batch_size", f"must be >= 1, got {self.batch_size}")
        if self.num_workers < 0:
            raise bad("num_workers", f"must be >= 0, got {self.num_workers}")
        if self.prefetch_factor is not None:
            if self.num_workers == 0:
                raise bad(
                    "prefetch_factor",
                    "only applies with num_workers > 0 (torch refuses it with 0 workers); leave it None",
                )
            if (
                not isinstance(self.prefetch_factor, int)
                or isinstance(self.prefetch_factor, bool)
                or self.prefetch_factor < 1
            ):
                raise bad("prefetch_factor", f"must be an integer >= 1, got {self.prefetch_factor!r}")
        for name in ("persistent_workers", "pin_memory", "shuffle", "drop_last"):
            v = getattr(self, name)
            if not isinstance(v, bool):  # "false" from a CLI/JSON string would be truthy
                raise bad(name, f"must be True or False, got {v!r}")
        if self.persistent_workers and self.num_workers == 0:
            raise bad("persistent_workers", "needs num_workers > 0 (torch refuses it with 0 workers)")
        if self.sharing_strategy not in SHARING_STRATEGIES:
            raise bad("sharing_strategy", f"must be one of {SHARING_STRATEGIES}, got {self.sharing_strategy!r}")
        if (
            not isinstance(self.timeout, (int, float)) or isinstance(self.timeout, bool) or not self.timeout >= 0
        ):  # `not >=` also refuses NaN
            raise bad("timeout", f"must be a number of seconds >= 0, got {self.timeout!r}")
        if self.timeout > 0 and self.num_workers == 0:
            raise bad("timeout", "only applies with num_workers > 0 (torch refuses it with 0 workers)")
        if self.mp_context not in MP_CONTEXTS:
            raise bad("mp_context", f"must be one of {MP_CONTEXTS}, got {self.mp_context!r}")

    @property
    def effective_prefetch(self) -> int:
        """Batches each worker keeps in flight (torch's default is 2); 0 without workers."""
        return effective_prefetch(self.num_workers, self.prefetch_factor)

    @property
    def label(self) -> str:
        """Short readable id, e.g. ``bs4-w2-pf2`` (``-fs`` for file_system)."""
        s = f"bs{self.batch_size}-w{self.num_workers}"
        if self.num_workers:
            s += f"-pf{self.effective_prefetch}"
        if self.sharing_strategy == "file_system":
            s += "-fs"
        return s

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "config") -> LoaderConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{where}: unknown LoaderConfig field(s) {unknown}; known: {sorted(known)}")
        try:
            return cls(**dict(data))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: {exc}") from None


class SplitTooSmallError(ValueError):
    """A split and config that can never form one batch: refused before anything is loaded."""


def distributed_samples(split_size: int, world_size: int, *, drop_last: bool) -> int:
    """Items each rank's ``DistributedSampler`` yields per epoch (torch's rule: pad to a multiple of
    ``world_size`` by repeating, or with ``drop_last`` drop the tail that does not divide)."""
    if drop_last and split_size % world_size:
        return -(-(split_size - world_size) // world_size) if split_size >= world_size else 0
    return -(-split_size // world_size)


def refuse_unbatchable(
    split_size: int,
    config: LoaderConfig,
    *,
    world_size: int | None = None,
    endless: bool = False,
    where: str = "this run",
) -> None:
    """Raise :class:`SplitTooSmallError` with the reason when ``config`` can never form a batch of a
    split of ``split_size`` items: an endless sampler only needs one item; an epoch-based loader needs
    one batch per epoch (per rank, under ``DistributedSampler`` with ``world_size`` ranks). Without this
    an empty epoch restarts its workers forever and the run ends as a false ``hang``."""
    if split_size < 1:
        raise SplitTooSmallError(
            f"{where}: the split has no videos: nothing can be loaded; check the split "
            "name, the list file and the annotations"
        )
    if endless:
        return
    bs = config.batch_size
    if world_size is None:
        if config.drop_last and split_size < bs:
            raise SplitTooSmallError(
                f"{where}: the split has {split_size} videos, fewer than batch_size={bs}, and drop_last=True "
                f"drops that one short batch: no batch can form; use batch_size <= {split_size}, "
                "drop_last=False, or a larger split"
            )
        return
    per_rank = distributed_samples(split_size, world_size, drop_last=config.drop_last)
    if per_rank == 0:
        raise SplitTooSmallError(
            f"{where}: the split has {split_size} videos for {world_size} ranks, and DistributedSampler "
            f"(drop_last=True) gives every rank 0 of them: no batch can form; use a split of at least "
            f"{world_size} videos or drop_last=False"
        )
    if config.drop_last and per_rank < bs:
        raise SplitTooSmallError(
            f"{where}: the split has {split_size} videos: DistributedSampler gives each of the {world_size} "
            f"ranks {per_rank} per epoch, fewer than batch_size={bs}, and drop_last=True drops that short "
            f"batch: no batch can form; use batch_size <= {per_rank}, drop_last=False, or a split of at "
            f"least {world_size * bs} videos"
        )


def make_loader(
    dataset: Any,
    config: LoaderConfig,
    *,
    endless: bool = False,
    collate_fn: Callable[[Any], Any] | None = None,
    worker_init_fn: Callable[[int], None] | None = None,
    **overrides: Any,
) -> Any:
    """A ``torch.utils.data.DataLoader`` over ``dataset`` with ``config`` applied.

    Applies the sharing strategy (process-global in torch: the last loader made wins), seeds the
    shuffle and every worker, and gives each worker one torch thread (one process per core is the
    parallelism; intra-op threads inside workers only contend).

    ``endless``: indices come from an :class:`~ssv2_fixtures.data.sampling.EndlessSampler` (the config's
    shuffle and seed; every batch full, so ``drop_last`` is on; no epochs, ``len(loader)`` raises).
    ``collate_fn``/``worker_init_fn``: a user's pipeline; the suite's own worker set-up runs first, then
    ``worker_init_fn``.
    """
    import torch
    import torch.multiprocessing as torch_mp

    torch_mp.set_sharing_strategy(config.sharing_strategy)
    gen = torch.Generator()
    gen.manual_seed(config.seed)
    kwargs: dict[str, Any] = dict(
        batch_size=config.batch_size,
        shuffle=config.shuffle,
        num_workers=config.num_workers,
        pin_memory=config.pin_memory,
        drop_last=config.drop_last,
        generator=gen,  # with endless, only the workers' base seed comes from it
    )
    if endless:
        from .sampling import EndlessSampler

        kwargs.update(
            sampler=EndlessSampler(len(dataset), shuffle=config.shuffle, seed=config.seed),
            shuffle=False,
            drop_last=True,
        )
    if collate_fn is not None:
        kwargs["collate_fn"] = collate_fn
    if config.num_workers > 0:
        kwargs.update(
            prefetch_factor=config.effective_prefetch,
            persistent_workers=config.persistent_workers,
            timeout=config.timeout,
            worker_init_fn=_worker_init if worker_init_fn is None else _ChainedInit(worker_init_fn),
        )
        if config.mp_context:
            kwargs["multiprocessing_context"] = config.mp_context
    kwargs.update(overrides)
    return torch.utils.data.DataLoader(dataset, **kwargs)


def _worker_init(worker_id: int) -> None:
    import numpy as np
    import torch

    torch.set_num_threads(1)
    seed = torch.initial_seed() % 2**32  # torch already gives each worker base_seed + worker_id
    np.random.seed(seed)
    random.seed(seed)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


class _ChainedInit:
    """The suite's worker set-up, then the user's ``worker_init_fn``. A class, not a closure: spawn and
    forkserver workers receive it pickled."""

    def __init__(self, user: Callable[[int], None]) -> None:
        self.user = user

    def __call__(self, worker_id: int) -> None:
        _worker_init(worker_id)
        self.user(worker_id)
