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

Every way this can go wrong is one :class:`FactoryError` with ``what`` (see :data:`WHATS`), the file
and line to look at, and a fix — never a bare traceback.

This module imports torch lazily (the plugin imports it to parse options).
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import linecache
import os
import pkgutil
import sys
import sysconfig
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import describe_exc, reduce_exception

__all__ = ["Pipeline", "FactoryError", "WHATS", "parse_factory", "load_pipeline", "check_collatable", "SUITE_ARGS"]

SUITE_ARGS = ("root", "split", "train")
"""What the suite passes to a factory whose signature asks for it (or takes ``**kwargs``)."""

WHATS = (
    "bad_factory",  # --dataset-factory is not MODULE:CALLABLE
    "module_not_found",  # MODULE's top-level package is on no sys.path entry
    "submodule_not_found",  # the top-level package imports, but it has no such submodule (mypkg.dta)
    "module_import_failed",  # MODULE was found but raised while importing (syntax error, missing dependency)
    "attribute_missing",  # MODULE has no CALLABLE
    "not_callable",
    "bad_call",  # the keyword arguments do not fit the signature
    "factory_raised",  # the factory itself raised
    "not_a_dataset",
    "iterable_dataset",
    "not_map_style",  # a Dataset without __len__
    "empty_dataset",
    "bad_pipeline",  # Pipeline(collate_fn=/worker_init_fn=) that is not callable
    "item_raised",  # dataset[i] raised while checking the items
    "uncollatable",  # the default collate cannot stack the items
    "collate_raised",  # the user's collate_fn raised
)


@dataclass
class Pipeline:
    """What a factory may return instead of a bare dataset.

    The suite's own seeding and sharing strategy still apply; ``worker_init_fn`` runs after the
    suite's in each worker. ``collate_fn=None`` means torch's default collate.
    """

    dataset: Any
    collate_fn: Callable[[list[Any]], Any] | None = None
    worker_init_fn: Callable[[int], None] | None = None


class FactoryError(ValueError):
    """The user's pipeline could not be built or batched: ``what`` says how (one of :data:`WHATS`).

    ``file``/``line`` point at the code to look at (the user's frame when their code raised, the
    factory's definition otherwise); ``fix`` says what to change. ``sys_path`` is the import path a
    ``module_not_found`` searched (kept for the record; the message names the folders the user controls).
    """

    what: str
    problem: str
    factory: str
    file: str | None
    line: int | None
    fix: str
    sys_path: list[str] | None

    def __init__(
        self,
        what: str,
        problem: str,
        *,
        factory: str = "",
        file: str | None = None,
        line: int | None = None,
        fix: str = "",
        sys_path: Sequence[str] | None = None,
    ) -> None:
        if what not in WHATS:
            raise ValueError(f"FactoryError: unknown kind {what!r}; one of {WHATS}")
        self.what, self.problem, self.factory = what, problem, factory
        self.file, self.line, self.fix = file, line, fix
        self.sys_path = list(sys_path) if sys_path is not None else None
        super().__init__(str(self))

    def __str__(self) -> str:
        msg = f"dataset factory {self.factory}: {self.problem}" if self.factory else self.problem
        if self.file:
            msg += f" ({self.file}{':' + str(self.line) if self.line else ''})"
        if self.fix:
            msg += f". Fix: {self.fix}"
        return msg

    def event_fields(self) -> dict[str, Any]:
        """The fields the child adds to its ``error`` event, so the outcome can show file, line and fix."""
        return {"what": self.what, "file": self.file, "line": self.line, "fix": self.fix}

    def __reduce__(self) -> tuple[Any, ...]:
        return reduce_exception(self)


# --------------------------------------------------------------------------- option values


def parse_factory(text: str) -> tuple[str, str]:
    """``"mypkg.data:build"`` → ``("mypkg.data", "build")``; CALLABLE may be dotted (``Cls.create``).
    The one MODULE:CALLABLE rule: ``options.factory_name`` (the option and the TOML key) uses it too."""
    mod, sep, attr = str(text).strip().partition(":")
    parts = mod.split(".") + attr.split(".")
    if not sep or ":" in attr or not all(p.isidentifier() for p in parts):
        raise FactoryError(
            "bad_factory",
            f"expected MODULE:CALLABLE, got {text!r}",
            fix="write it as a dotted module, a colon and the callable's name, e.g. --dataset-factory mypkg.data:build",
        )
    return mod, attr


# --------------------------------------------------------------------------- loading


def _where(obj: Any) -> tuple[str | None, int | None]:
    """Source file and first line of a function/class (the factory), when Python knows them."""
    target = inspect.unwrap(obj) if callable(obj) else obj
    try:
        file = inspect.getsourcefile(target) or inspect.getfile(target)
    except (TypeError, OSError):
        file = None
    try:
        line = inspect.getsourcelines(target)[1] or None
    except (TypeError, OSError):
        line = None
    return file, line


_LIB_DIRS = tuple(os.path.realpath(p) for p in {sysconfig.get_paths()[k] for k in ("stdlib", "purelib", "platlib")})


def _user_frame(exc: BaseException, prefer: str | None) -> tuple[str | None, int | None, str]:
    """The frame to blame in a traceback: the innermost under ``prefer`` (the user's project), else the
    innermost outside the Python installation and this module, else the innermost."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != __file__]
    if not frames:
        return None, None, ""
    pick = None
    if prefer:
        pick = next((f for f in reversed(frames) if os.path.realpath(f.filename).startswith(prefer)), None)
    if pick is None:
        pick = next((f for f in reversed(frames) if not os.path.realpath(f.filename).startswith(_LIB_DIRS)), frames[-1])
    return pick.filename, pick.lineno, pick.name


def _project_dir(module: Any) -> str | None:
    """The directory of the top-level package ``module`` belongs to: where the user's code lives."""
    top = sys.modules.get(module.__name__.split(".")[0], module)
    f = getattr(top, "__file__", None)
    if not f:
        return None
    d = os.path.dirname(os.path.realpath(f))
    if os.path.realpath(d).startswith(_LIB_DIRS):
        return d if hasattr(top, "__path__") else None  # an installed package: only its own folder
    return d


def _put_on_path(paths: Sequence[str]) -> list[str]:
    dirs = [os.path.abspath(os.path.expanduser(str(p))) for p in paths]
    for d in reversed(dirs):  # the first given ends up first
        while d in sys.path:
            sys.path.remove(d)
        sys.path.insert(0, d)
    importlib.invalidate_caches()  # directories added after start-up are not in the finders' caches
    return dirs


def _code_at(file: str | None, line: int | None) -> str:
    """The source line ``file:line`` (stripped), for a message that shows where an import failed."""
    return linecache.getline(file, line).strip() if file and line else ""


def _at(file: str | None, line: int | None) -> str:
    code = _code_at(file, line)
    return f", at line {line}: {code}" if code else ""


def _folders(paths: Sequence[str]) -> str:
    return ", ".join(paths) if paths else "no folder"


def _import(mod_name: str, factory: str, dirs: list[str]) -> Any:
    """Import ``mod_name`` one dotted step at a time, so that a failure names what is missing: the
    top-level package (on no sys.path entry), a submodule (the package imports; it has no such file), or
    something the user's module itself imports (an error raised inside their code, with its line)."""
    parts = mod_name.split(".")
    module: Any = None
    for k in range(1, len(parts) + 1):
        name = ".".join(parts[:k])
        if k > 1 and not hasattr(module, "__path__"):
            raise _no_submodule(module, name, factory, dirs, package=False)
        if name in sys.modules:  # imported already (possibly made in code, without a __spec__ to find)
            module = sys.modules[name]
            continue
        try:
            found = importlib.util.find_spec(name)
        except (ImportError, ValueError):  # a parent without __path__, or a broken __spec__ in sys.modules
            found = None
        if found is None:
            raise (_no_top_level(name, factory, dirs) if k == 1 else _no_submodule(module, name, factory, dirs))
        module = _import_found(name, factory)
    return module


def _no_top_level(name: str, factory: str, dirs: list[str]) -> FactoryError:
    absent = [d for d in dirs if not os.path.isdir(d)]
    note = f"; --dataset-path {', '.join(absent)} does not exist" if absent else ""
    return FactoryError(
        "module_not_found",
        f"no top-level module or package {name!r}: looked in {_folders(dirs)} (--dataset-path and the folder "
        f"pytest ran in) and this Python's installed packages{note}",
        factory=factory,
        sys_path=sys.path,
        fix=(
            f"add the folder that contains {name!r} (the folder above {name}/ or {name}.py) with --dataset-path DIR "
            '(TOML: [dataset] path = ["DIR"]), run pytest from that folder, or pip install your project'
        ),
    )


def _no_submodule(parent: Any, name: str, factory: str, dirs: list[str], *, package: bool = True) -> FactoryError:
    owner, _, part = name.rpartition(".")
    if not package:  # a plain module (mypkg.py) cannot hold submodules
        file = getattr(parent, "__file__", None)
        return FactoryError(
            "submodule_not_found",
            f"{owner} is a module, not a package: it has no submodule {part!r}",
            factory=factory,
            file=file,
            fix=f"name the callable in {owner} itself ({owner}:NAME), or make {owner} a package (a folder)",
        )
    where = [str(p) for p in getattr(parent, "__path__", [])]
    subs = sorted(m.name for m in pkgutil.iter_modules(where))
    close = difflib.get_close_matches(part, subs, n=3)
    hint = f"did you mean {' or '.join(repr(f'{owner}.{c}') for c in close)}? " if close else ""
    real = [os.path.realpath(d) for d in dirs]
    elsewhere = not any(os.path.realpath(w).startswith(d + os.sep) for w in where for d in real)
    shadow = (
        f"; {owner} was imported from {_folders(where)}, not from the --dataset-path folders: if your code is "
        "elsewhere, another package of that name comes first on sys.path"
        if elsewhere and dirs
        else ""
    )
    return FactoryError(
        "submodule_not_found",
        f"{owner} has no submodule {part!r} (looked in {_folders(where)})",
        factory=factory,
        fix=f"{hint}name a module of {owner} (it has: {', '.join(subs[:12]) or 'none'}){shadow}",
    )


def _import_found(name: str, factory: str) -> Any:
    """Import ``name``, which exists: what goes wrong now happens inside the user's own code."""
    try:
        return importlib.import_module(name)
    except SyntaxError as exc:
        raise FactoryError(
            "module_import_failed",
            f"importing module {name!r} failed: {describe_exc(exc)}",
            factory=factory,
            file=exc.filename,
            line=exc.lineno,
            fix=f"fix the syntax error at {exc.filename}:{exc.lineno}",
        ) from exc
    except ModuleNotFoundError as exc:
        missing = exc.name or "?"
        file, line, _ = _user_frame(exc, None)
        ours = missing.split(".")[0] == name.split(".")[0]  # mypkg/__init__.py importing mypkg.gone
        raise FactoryError(
            "module_import_failed",
            f"importing module {name!r} failed: it imports {missing!r}, which "
            + ("does not exist" if ours else "is not installed here")
            + _at(file, line),
            factory=factory,
            file=file,
            line=line,
            fix=(
                f"fix the import at {file}:{line}"
                if ours
                else f"install {missing.split('.')[0]!r} in this environment (pip install ...), or add its "
                "folder with --dataset-path"
            ),
        ) from exc
    except Exception as exc:  # an ImportError from a `from x import y`, or anything the module runs
        file, line, func = _user_frame(exc, None)
        raise FactoryError(
            "module_import_failed",
            f"importing module {name!r} raised {describe_exc(exc)}"
            + (f" in {func}" if func and func != "<module>" else "")
            + _at(file, line),
            factory=factory,
            file=file,
            line=line,
            fix=f"fix the error raised at import time at {file}:{line} (it is in your code, not the suite)",
        ) from exc


def _resolve(module: Any, mod_name: str, attr: str, factory: str) -> Any:
    obj = module
    for k, part in enumerate(attr.split(".")):
        if not hasattr(obj, part):
            owner = mod_name if k == 0 else f"{mod_name}:{'.'.join(attr.split('.')[:k])}"
            names = [n for n in dir(obj) if not n.startswith("_") and callable(getattr(obj, n, None))]
            close = difflib.get_close_matches(part, names, n=3)
            hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
            file = getattr(module, "__file__", None)
            raise FactoryError(
                "attribute_missing",
                f"{owner} has no attribute {part!r}",
                factory=factory,
                file=file,
                fix=f"{hint}name a callable defined in {file or mod_name} "
                f"(callables there: {', '.join(names[:12]) or 'none'})",
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise FactoryError(
            "not_callable",
            f"{mod_name}:{attr} is a {type(obj).__name__}, not a callable",
            factory=factory,
            file=getattr(module, "__file__", None),
            fix="name a function or class that returns the dataset (or a Pipeline), e.g. def build(root, split, train)",
        )
    return obj


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
    file, line = _where(fn)
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
    mod_name, attr = parse_factory(factory)
    dirs = _put_on_path(list(spec.get("factory_path") or []))
    module = _import(mod_name, factory, dirs)
    fn = _resolve(module, mod_name, attr, factory)
    suite = {"root": spec.get("root"), "split": spec.get("split", "train"), "train": bool(train)}
    kwargs = _call_kwargs(fn, dict(spec.get("factory_kwargs") or {}), suite, factory)
    if on_call is not None:
        on_call(kwargs)
    file, line = _where(fn)
    try:
        result = fn(**kwargs)
    except Exception as exc:
        ufile, uline, func = _user_frame(exc, _project_dir(module))
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
            file, line, func = _user_frame(exc, None)
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
            file, line, func = _user_frame(exc, None)
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
        ds_file, ds_line = _where(type(dataset).__getitem__) if hasattr(type(dataset), "__getitem__") else (None, None)
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
