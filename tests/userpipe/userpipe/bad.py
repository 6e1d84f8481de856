"""One factory per way a user's pipeline can be wrong: the suite must name each."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset, IterableDataset

not_callable = 42


def raises(root, split):
    return _open_annotations(root, split)


def _open_annotations(root, split):
    raise RuntimeError(f"annotations for {split} not found under {root}")  # the user's frame


def returns_list(root):
    return [torch.zeros(3), torch.zeros(3)]


class Stream(IterableDataset):
    def __iter__(self):
        yield torch.zeros(3)


def returns_iterable():
    return Stream()


class Empty(Dataset):
    def __len__(self):
        return 0

    def __getitem__(self, i):
        raise IndexError(i)


def returns_empty(root, split, train):
    return Empty()


class Ragged(Dataset):
    """Two views of different sizes per item: the default collate cannot stack item[0][1]."""

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return [torch.zeros(2, 8, 8), torch.zeros(2, 8 + i, 8)], i


def uncollatable(split):
    return Ragged()


def needs_arg(root, *, mode):
    return Empty()
