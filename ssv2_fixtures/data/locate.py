"""Find a user's ``MODULE:CALLABLE``, and the file and line to blame when their code fails.

:func:`locate` parses ``--dataset-factory``, puts ``--dataset-path`` first on ``sys.path``, imports the
module one dotted step at a time and resolves the callable, so that each failure names what is missing:
the top-level package (on no sys.path entry), a submodule (with close names), something the user's own
module imports (with its line), or the attribute. :func:`user_frame` and :func:`source_of` give the file and
line a :class:`FactoryError` points at; :mod:`ssv2_fixtures.data.factory` calls the factory and checks
what it returns with them.

Every way this can go wrong is one :class:`FactoryError` with ``what`` (see :data:`WHATS`), the file
and line to look at, and a fix — never a bare traceback. Only the standard library is imported here.
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
from collections.abc import Collection, Sequence
from typing import Any

from .errors import describe_exc, reduce_exception

__all__ = ["FactoryError", "WHATS", "parse_factory", "locate", "source_of", "user_frame", "project_dir"]

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


def locate(factory: str, path: Sequence[str]) -> tuple[Any, Any]:
    """The module and the callable ``factory`` (``MODULE:CALLABLE``) names, with ``path`` put first on
    ``sys.path`` (in order; relative entries are taken from the current directory). Raises
    :class:`FactoryError`."""
    mod_name, attr = parse_factory(factory)
    dirs = _put_on_path(path)
    module = _import(mod_name, factory, dirs)
    return module, _resolve(module, mod_name, attr, factory)


# --------------------------------------------------------------------------- finding the code


def source_of(obj: Any) -> tuple[str | None, int | None]:
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


def user_frame(
    exc: BaseException, prefer: str | None, ours: Collection[str] = ()
) -> tuple[str | None, int | None, str]:
    """The frame to blame in a traceback: the innermost under ``prefer`` (the user's project), else the
    innermost outside the Python installation and the suite's files (this one and ``ours``, the caller's
    own), else the innermost."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != __file__ and f.filename not in ours]
    if not frames:
        return None, None, ""
    pick = None
    if prefer:
        pick = next((f for f in reversed(frames) if os.path.realpath(f.filename).startswith(prefer)), None)
    if pick is None:
        pick = next((f for f in reversed(frames) if not os.path.realpath(f.filename).startswith(_LIB_DIRS)), frames[-1])
    return pick.filename, pick.lineno, pick.name


def project_dir(module: Any) -> str | None:
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
        file, line, _ = user_frame(exc, None)
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
        file, line, func = user_frame(exc, None)
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
