"""Pickling for the data layer's exceptions, whose fields are keyword-only.

Exceptions are pickled as ``cls(*args)``; ours take keyword-only fields, so they rebuild from
``__dict__`` instead.  Needed because DataLoader workers and pytest-xdist ship exceptions across
processes.  Only the standard library is imported here.
"""

from __future__ import annotations

from typing import Any, TypeVar

__all__ = ["rebuild_exception", "reduce_exception", "describe_exc"]

E = TypeVar("E", bound=BaseException)


def rebuild_exception(cls: type[E], state: dict[str, Any]) -> E:
    """An instance of ``cls`` with ``state`` as its ``__dict__`` (the inverse of :func:`reduce_exception`)."""
    err = cls.__new__(cls)
    err.__dict__.update(state)
    err.args = (str(err),)
    return err


def describe_exc(exc: BaseException) -> str:
    """``Type: first line of the message`` (only ``Type`` for an empty message): the one short reason
    the data layer gives for a foreign exception (a decoder's, a user's factory's)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def reduce_exception(err: BaseException) -> tuple[Any, ...]:
    """``__reduce__`` for an exception whose ``__init__`` takes keyword-only fields."""
    return (rebuild_exception, (type(err), dict(err.__dict__)))
