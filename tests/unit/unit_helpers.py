"""Small fakes shared by unit tests (importable as ``unit_helpers``: tests/unit/conftest.py puts this
folder on sys.path, as pytest's default import mode does for every rootless test folder)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


class EventLog:
    """Stands in for the child's event writer: keeps every ``emit`` as ``{"ev": name, **fields}``."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def emit(self, ev: str, /, **fields: Any) -> None:
        self.seen.append({"ev": ev, **fields})

    def of(self, ev: str) -> list[dict[str, Any]]:
        return [e for e in self.seen if e["ev"] == ev]


class RangeItems(torch.utils.data.Dataset):
    """``n`` items: item ``i`` is ``i``, or ``(torch.full((width,), i), i)`` when ``width`` is given."""

    def __init__(self, n: int, width: int | None = None) -> None:
        self.n = n
        self.width = width

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        if self.width is None:
            return i
        return torch.full((self.width,), float(i)), i


@dataclass
class FakeClock:
    """A clock a test moves by hand (``clock.t += seconds``)."""

    t: float = 0.0

    def __call__(self) -> float:
        return self.t
