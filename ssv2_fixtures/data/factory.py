"""The user's own pipeline: import ``MODULE:CALLABLE``, call it, and check what it returns.

``--dataset-factory mypkg.data:build`` names a callable in the user's project that builds *their*
dataset (their decoding, transforms, label structure) and optionally their collate and
``worker_init_fn``; the suite then stress-tests that instead of :class:`~ssv2_fixtures.SSv2Clips`.
:func:`load_pipeline` runs inside the loading process (the child main, each rank), after resource
limits are applied and before the DataLoader is made.

What a factory receives: the user's ``--dataset-arg KEY=VALUE`` keyword arguments, plus ``root``,
``split`` and ``train`` — each of those three only when its signature names it or takes ``**kwargs``,
so ``def build(root, **kw)`` and ``def build(split, train, size=224)`` both work.

What it may return: a map-style :class:`torch.utils.data.Dataset` or a :class:`Pipeline`. An
``IterableDataset`` is refused, because the suite's endless sampler (epochs restarted to reach N
batches), its batch sizing (``-m limits`` grows the batch size of one dataset) and its fault drills
(which fire at a chosen item index) all need map-style indexing and a length.

Finding ``MODULE:CALLABLE`` (and the file and line to blame) is :mod:`ssv2_fixtures.data.locate`'s.
Every way this can go wrong is one :class:`~ssv2_fixtures.data.locate.FactoryError` with ``what``, the
file and line to look at, and a fix — never a bare traceback.

This module imports torch lazily (the plugin imports it to parse options).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import describe_exc
from .locate import FactoryError, locate, project_dir, source_of, user_frame

__all__ = ["Pipeline", "load_pipeline", "check_collatable", "SUITE_ARGS"]

SUITE_ARGS = ("root", "split", "train")
"""What the suite passes to a factory whose signature asks for it (or takes ``**kwargs``)."""

_OURS = (__file__,)
"""This file's frames (the one that called the user's code) are never the frame to blame."""


@dataclass
class Pipeline:
    """What a factory may return instead of a bare dataset.

    The suite's own seeding and sharing strategy still apply; ``worker_init_fn`` runs after the
    suite's in each worker. ``collate_fn=None`` means torch's default collate.
    """

    dataset: Any
    collate_fn: Callable[[list[Any]], Any] | None = None
    worker_init_fn: Callable[[int], None] | None = None


# --------------------------------------------------------------------------- calling


def _call_kwargs(fn: Any, user: Mapping[str, Any], suite: Mapping[str, Any], factory: str) -> dict[str, Any]:
    """The user's kwargs (which win) plus the suite's, each suite argument only where the signature takes it."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin or C callable without a signature: pass what the user gave
        return dict(user)
    params = sig.parameters
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    named = [
        n
        for n, p in params.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]
    kwargs = {k: v for k, v in suite.items() if var_kw or k in named}
    kwargs.update(user)
    file, line = source_of(fn)
    try:
        sig.bind(**kwargs)
    except TypeError as exc:
        unknown = [k for k in user if k not in named and not var_kw]
        if unknown:
            fix = (
                f"drop --dataset-arg {', '.join(unknown)} or add the parameter; "
                f"{factory} takes: {', '.join(named) or 'no keyword arguments'}"
            )
        else:
            fix = "give the missing argument with --dataset-arg NAME=VALUE (TOML: [dataset.kwargs]) or a default"
        raise FactoryError(
            "bad_call", f"the arguments do not fit {sig}: {exc}", factory=factory, file=file, line=line, fix=fix
        ) from exc
    return kwargs


def load_pipeline(
    spec: Mapping[str, Any], *, train: bool, on_call: Callable[[Mapping[str, Any]], None] | None = None
) -> Pipeline:
    """Import and call ``spec["factory"]`` and return its :class:`Pipeline` (a bare dataset is wrapped).

    ``spec`` is the run's dataset spec: ``factory`` (``MODULE:CALLABLE``), ``factory_kwargs``,
    ``factory_path`` (put first on ``sys.path``, in order; relative entries are taken from the current
    directory, so callers pass absolute ones), ``root``, ``split``. Raises :class:`FactoryError`.

    The items are not fetched here: calling ``__getitem__`` in the main process before the workers
    fork could open a user's lazily-opened file there and share it with every worker. Use
    :func:`check_collatable` in a process that makes no DataLoader afterwards (the probe).

    ``on_call`` is given the keyword arguments the factory is about to be called with (the probe records
    their names, so the report's snippet calls the factory exactly as the suite did).
    """
    factory = str(spec.get("factory") or "")
    module, fn = locate(factory, list(spec.get("factory_path") or []))
    suite = {"root": spec.get("root"), "split": spec.get("split", "train"), "train": bool(train)}
    kwargs = _call_kwargs(fn, dict(spec.get("factory_kwargs") or {}), suite, factory)
    if on_call is not None:
        on_call(kwargs)
    file, line = source_of(fn)
    try:
        result = fn(**kwargs)
    except Exception as exc:
        ufile, uline, func = user_frame(exc, project_dir(module), _OURS)
        raise FactoryError(
            "factory_raised",
            f"{factory}(**{_short(kwargs)}) raised {describe_exc(exc)}" + (f" in {func}" if func else ""),
            factory=factory,
            file=ufile or file,
            line=uline or line,
            fix=(
                f"fix the error at {ufile or file}:{uline or line} (your factory raised it, before any DataLoader "
                "existed)"
            ),
        ) from exc
    pipe = result if isinstance(result, Pipeline) else Pipeline(result)
    for name in ("collate_fn", "worker_init_fn"):
        f = getattr(pipe, name)
        if f is not None and not callable(f):
            raise FactoryError(
                "bad_pipeline",
                f"Pipeline({name}=...) is a {type(f).__name__}, not a callable",
                factory=factory,
                file=file,
                line=line,
                fix=f"pass a function as {name}, or None for torch's default",
            )
    _check_dataset(pipe.dataset, factory, file, line, suite)
    return pipe


def _short(kwargs: Mapping[str, Any]) -> str:
    text = repr(dict(kwargs))
    return text if len(text) <= 300 else text[:297] + "..."


def _check_dataset(ds: Any, factory: str, file: str | None, line: int | None, suite: Mapping[str, Any]) -> None:
    from torch.utils.data import Dataset, IterableDataset

    kind = _type_name(ds)
    if isinstance(ds, IterableDataset):
        raise FactoryError(
            "iterable_dataset",
            f"returned an IterableDataset ({kind})",
            factory=factory,
            file=file,
            line=line,
            fix=(
                "return a map-style Dataset (__len__ and __getitem__): the suite's endless sampler, its "
                "batch sizing (-m limits) and its fault drills all index items by number"
            ),
        )
    if not isinstance(ds, Dataset):
        seq = hasattr(ds, "__getitem__") and hasattr(ds, "__len__")
        raise FactoryError(
            "not_a_dataset",
            f"returned a {kind}, not a torch.utils.data.Dataset or ssv2_fixtures.Pipeline",
            factory=factory,
            file=file,
            line=line,
            fix=(
                "wrap it in a subclass of torch.utils.data.Dataset that defines __len__ and __getitem__"
                if seq
                else "return your Dataset, or Pipeline(dataset, collate_fn=..., worker_init_fn=...)"
            ),
        )
    try:
        n = len(ds)  # type: ignore[arg-type]  # Dataset declares no __len__; a map-style one has it
    except TypeError as exc:
        raise FactoryError(
            "not_map_style",
            f"the {kind} it returned has no __len__",
            factory=factory,
            file=file,
            line=line,
            fix="define __len__: the suite's sampler and batch counts need the number of items",
        ) from exc
    if n == 0:
        raise FactoryError(
            "empty_dataset",
            f"returned an empty dataset ({kind}, len 0) for root={suite.get('root')!r} split={suite.get('split')!r}",
            factory=factory,
            file=file,
            line=line,
            fix="check that the root and split it was given hold videos (--ssv2-root, --dataset-arg) "
            "and that its filters keep some",
        )


# --------------------------------------------------------------------------- collate check


def _type_name(x: Any) -> str:
    t = type(x)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def _shape(x: Any) -> list[int]:
    return [int(s) for s in x.shape]


def _diagnose(values: list[Any], path: str) -> str | None:
    """Where torch's default collate fails on ``values`` (one entry per item), mirroring its rules:
    ``"item[0][1]: list of tensors of different shapes ([…] in item 0, […] in item 1)"``; None if nowhere."""
    import numpy as np
    import torch

    elem = values[0]
    if isinstance(elem, torch.Tensor):
        for k, v in enumerate(values):
            if not isinstance(v, torch.Tensor):
                return f"{path}: a tensor in item 0 but a {_type_name(v)} in item {k}"
            if v.shape != elem.shape:
                return (
                    f"{path}: list of tensors of different shapes ({_shape(elem)} in item 0, {_shape(v)} in item {k})"
                )
        return None
    if isinstance(elem, np.ndarray) or isinstance(elem, np.generic):
        if isinstance(elem, np.ndarray) and elem.dtype.kind in "SaUO":
            return f"{path}: numpy array of dtype {elem.dtype} (strings or objects do not become a tensor)"
        for k, v in enumerate(values):
            if type(v) is not type(elem):
                return f"{path}: a {_type_name(elem)} in item 0 but a {_type_name(v)} in item {k}"
            if isinstance(elem, np.ndarray) and v.shape != elem.shape:
                return (
                    f"{path}: list of numpy arrays of different shapes ({_shape(elem)} in item 0, "
                    f"{_shape(v)} in item {k})"
                )
        return None
    if isinstance(elem, (bool, int, float, str, bytes)):
        for k, v in enumerate(values):
            num = (bool, int, float)
            if not (isinstance(v, num) if isinstance(elem, num) else isinstance(v, type(elem))):
                return f"{path}: a {_type_name(elem)} in item 0 but a {_type_name(v)} in item {k}"
        return None
    if isinstance(elem, Mapping):
        for k, v in enumerate(values):
            if not isinstance(v, Mapping):
                return f"{path}: a dict in item 0 but a {_type_name(v)} in item {k}"
            lost = [key for key in elem if key not in v]
            if lost:
                return f"{path}: dict key {lost[0]!r} is in item 0 but not in item {k}"
        for key in elem:
            found = _diagnose([v[key] for v in values], f"{path}[{key!r}]")
            if found:
                return found
        return None
    if isinstance(elem, Sequence):
        for k, v in enumerate(values):
            if not isinstance(v, Sequence) or isinstance(v, (str, bytes)):
                return f"{path}: a {_type_name(elem)} in item 0 but a {_type_name(v)} in item {k}"
            if len(v) != len(elem):
                return (
                    f"{path}: {_type_name(elem)}s of different lengths ({len(elem)} in item 0, "
                    f"{len(v)} in item {k}; the default collate batches position by position)"
                )
        for i in range(len(elem)):
            found = _diagnose([v[i] for v in values], f"{path}[{i}]")
            if found:
                return found
        return None
    return (
        f"{path}: a {_type_name(elem)}, which the default collate cannot batch "
        "(it takes tensors, numpy arrays, numbers, strings, dicts and lists of those)"
    )


def check_collatable(dataset: Any, collate_fn: Callable[[list[Any]], Any] | None = None, n: int = 2) -> None:
    """Fetch the first ``n`` items and collate them as the DataLoader would; raise :class:`FactoryError`
    naming the element type and its path inside the item when that fails."""
    from torch.utils.data import default_collate

    count = min(int(n), len(dataset))
    items = []
    for i in range(count):
        try:
            items.append(dataset[i])
        except Exception as exc:
            file, line, func = user_frame(exc, None, _OURS)
            raise FactoryError(
                "item_raised",
                f"dataset[{i}] raised {describe_exc(exc)}" + (f" in {func}" if func else ""),
                file=file,
                line=line,
                fix=f"fix the error at {file}:{line} (the dataset's __getitem__ raised it)",
            ) from exc
    if not items:
        return
    if collate_fn is not None:
        try:
            collate_fn(items)
        except Exception as exc:
            file, line, func = user_frame(exc, None, _OURS)
            raise FactoryError(
                "collate_raised",
                f"collate_fn on {count} items raised {describe_exc(exc)}" + (f" in {func}" if func else ""),
                file=file,
                line=line,
                fix=f"fix the collate function at {file}:{line}",
            ) from exc
        return
    try:
        default_collate(items)
    except Exception as exc:
        where = _diagnose(items, "item") or f"item: {describe_exc(exc)}"
        ds_file, ds_line = (
            source_of(type(dataset).__getitem__) if hasattr(type(dataset), "__getitem__") else (None, None)
        )
        raise FactoryError(
            "uncollatable",
            f"the default collate cannot batch {count} items of {_type_name(dataset)}: {where}",
            file=ds_file,
            line=ds_line,
            fix=(
                "make __getitem__ return the same structure and tensor shapes for every item, or return "
                "Pipeline(dataset, collate_fn=your_collate) with a collate that handles them"
            ),
        ) from exc
