"""Small fakes shared by unit tests (importable as ``unit_helpers``: tests/unit/conftest.py puts this
folder on sys.path, as pytest's default import mode does for every rootless test folder)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
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


USERPIPE = Path(__file__).resolve().parents[1] / "userpipe"  # a user-like project outside the package


def factory_spec(factory: str, root: Any = "/nowhere", **kwargs: Any) -> dict[str, Any]:
    """A dataset spec that loads ``factory`` from tests/userpipe, as ``--dataset-path`` does."""
    return {
        "factory": factory,
        "factory_kwargs": kwargs,
        "factory_path": [str(USERPIPE)],
        "root": str(root),
        "split": "train",
    }


def factory_error(factory: str, *, train: bool = True, **kw: Any) -> Any:
    """The FactoryError ``load_pipeline`` raises for ``factory``, the way the child meets it."""
    from ssv2_fixtures.data.factory import load_pipeline
    from ssv2_fixtures.data.locate import FactoryError

    with pytest.raises(FactoryError) as info:
        load_pipeline(factory_spec(factory, **kw), train=train)
    return info.value
