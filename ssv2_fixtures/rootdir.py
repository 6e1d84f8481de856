"""Keep ``--ssv2-root DIR`` (and every other option of ours that takes a value) from choosing pytest's
rootdir.

pytest determines the rootdir and the config file *before* it loads entry-point plugins, so at that
moment ``--ssv2-root`` is an unknown option and the ``DIR`` after it reads as a test path
(pytest-dev/pytest#8846): the rootdir becomes the dataset folder, the project's ``pyproject.toml`` is
not read (no ``addopts``, no ini keys) and ``.pytest_cache/`` is written into the dataset. The
``--ssv2-root=DIR`` form is not affected.

:func:`repair_setup` runs from ``pytest_load_initial_conftests`` (the first hook after our options are
registered, before any conftest, cache or collection uses the rootdir): it redoes pytest's own
determination on the command line as parsed *with* our options, and when that gives another rootdir
or config file, installs that result and redoes what ``Config.parse`` derived from the wrong one
(ini ``addopts`` and their ``-p`` plugin arguments, ``pythonpath``, ``minversion``, ``required_plugins``,
``confcutdir``). That needs a few private ``Config`` members; they are all named in :data:`PRIVATE`
and checked by :func:`missing_internals` (a unit test fails when a pytest release drops one; the
plugin then refuses with a usage error naming the ``=`` form instead of running with a wrong rootdir).
"""

from __future__ import annotations

import copy
import os
import shlex
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest

# Private members of pytest's Config this module reads or sets (pytest 8.x/9.x).
PRIVATE = (
    "_rootpath",
    "_inipath",
    "_inicfg",
    "_ignored_config_files",
    "_inicache",
    "_checkversion",
    "_configure_python_path",
    "_validate_plugins",
)


def value_option_names() -> tuple[str, ...]:
    """``--name`` of every ssv2-stress option that takes a value (any of them may be followed by a path)."""
    from .options import OPTIONS

    return tuple(f"--{o.name}" for o in OPTIONS if not o.flag)


def join_values(args: Sequence[str], names: Iterable[str]) -> list[str]:
    """``--opt VALUE`` → ``--opt=VALUE`` for the options in ``names`` (nothing after a bare ``--``)."""
    wanted = set(names)
    out: list[str] = []
    i = 0
    while i < len(args):
        a = str(args[i])
        if a == "--":
            out += [str(x) for x in args[i:]]
            break
        if a in wanted and i + 1 < len(args):
            out.append(f"{a}={args[i + 1]}")
            i += 2
            continue
        out.append(a)
        i += 1
    return out


def missing_internals(config: Any) -> list[str]:
    """The members of :data:`PRIVATE` (and pytest's ``determine_setup``) this pytest lacks."""
    missing = [n for n in PRIVATE if not hasattr(config, n)]
    try:
        from _pytest.config.findpaths import determine_setup  # noqa: F401
    except ImportError:
        missing.append("_pytest.config.findpaths.determine_setup")
    return missing


def _determine(config: pytest.Config, parser: pytest.Parser, args: list[str]) -> tuple[Path, Path | None, Any, Any]:
    from _pytest.config.findpaths import determine_setup

    ns = parser.parse_known_args(args, namespace=copy.copy(config.option))
    return determine_setup(
        inifile=ns.inifilename,
        override_ini=ns.override_ini,
        args=ns.file_or_dir,
        rootdir_cmd_arg=ns.rootdir or None,
        invocation_dir=config.invocation_params.dir,
    )


def repair_setup(config: pytest.Config, args: list[str], parser: pytest.Parser) -> bool:
    """Undo a rootdir/config file chosen from one of our option values; True when something changed.

    ``args`` is the list ``Config.parse`` goes on to parse (it is updated in place).
    """
    given = [str(a) for a in config.invocation_params.args]
    env = shlex.split(os.environ.get("PYTEST_ADDOPTS", ""))
    seen = [str(a) for a in args]
    if env and seen[len(seen) - len(env) - len(given) :] != env + given:
        env = []  # Config.parse ran without PYTEST_ADDOPTS (addopts=False)
    names = value_option_names()
    command = join_values(env + given, names)
    if command == env + given:
        return False  # no `--opt VALUE` of ours: pytest saw the command line right
    missing = missing_internals(config)
    if missing:
        raise pytest.UsageError(
            f"ssv2-stress cannot keep an option value from choosing the rootdir on pytest {pytest.__version__} "
            f"(missing {', '.join(missing)}): write the options with '=', e.g. --ssv2-root=DIR"
        )
    rootpath, inipath, inicfg, ignored = _determine(config, parser, command)
    if (rootpath, inipath) == (config.rootpath, config.inipath):
        return False
    c: Any = config  # the private members listed in PRIVATE
    c._rootpath, c._inipath, c._inicfg, c._ignored_config_files = rootpath, inipath, inicfg, ignored
    c._inicache.clear()  # ini values read so far came from the wrong file
    parser.extra_info["rootdir"] = str(rootpath)
    parser.extra_info["inifile"] = str(inipath)
    args[:] = [str(a) for a in config.getini("addopts")] + command
    config.known_args_namespace = parser.parse_known_args(args, namespace=copy.copy(config.option))
    c._checkversion()
    c._configure_python_path()
    config.pluginmanager.consider_preparse(args, exclude_only=False)  # -p / -p no:… from the right addopts
    c._validate_plugins()
    if config.known_args_namespace.confcutdir is None:
        config.known_args_namespace.confcutdir = str(inipath.parent if inipath is not None else rootpath)
    return True


__all__ = ["repair_setup", "join_values", "value_option_names", "missing_internals", "PRIVATE"]
