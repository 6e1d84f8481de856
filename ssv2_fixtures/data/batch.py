"""What a batch holds, measured from its tensors, whatever its structure.

A user's collate may return a tuple, a list, a dict, nested lists of tensors (repeated augmentation:
several clips per video), numbers and strings. The suite counts *videos* as the dataset items in the
batch (the DataLoader's batch size, given by the caller), *clips* as the leading size of the largest
tensor, and *bytes* as the sum of every tensor's ``nbytes`` — what crosses shared memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypedDict


class BatchFacts(TypedDict):
    videos: int  # dataset items in the batch
    clips: int  # leading size of the largest tensor
    bytes: int  # sum of nbytes over every tensor in the batch
    shape: list[int]  # the largest tensor's shape
    dtype: str  # and its dtype ("torch.uint8", "torch.float32", …)
    tensors: int


def tensors(obj: Any) -> Iterator[Any]:
    """Every tensor (or numpy array) inside a nested batch, depth first."""
    if hasattr(obj, "shape") and hasattr(obj, "dtype") and (hasattr(obj, "element_size") or hasattr(obj, "nbytes")):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from tensors(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from tensors(v)


def nbytes(t: Any) -> int:
    if hasattr(t, "element_size"):  # torch
        return int(t.numel()) * int(t.element_size())
    return int(t.nbytes)


def describe(batch: Any, videos: int) -> BatchFacts:
    """Facts of one received batch; ``videos`` is how many dataset items the sampler put in it."""
    total, count, largest, largest_n = 0, 0, None, -1
    for t in tensors(batch):
        n = nbytes(t)
        total += n
        count += 1
        if n > largest_n:
            largest, largest_n = t, n
    shape = [int(s) for s in largest.shape] if largest is not None else []
    return BatchFacts(
        videos=int(videos),
        clips=shape[0] if shape else int(videos),
        bytes=total,
        shape=shape,
        dtype=str(largest.dtype) if largest is not None else "",
        tensors=count,
    )
