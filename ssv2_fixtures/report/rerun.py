"""The commands the report suggests, written with the user's own options.

A session records how pytest was started (results.json ``invocation``: the arguments and the folder). A
suggested command keeps every option the user gave — ``--dataset-factory``, ``--dataset-path``,
``--ssv2-root``, ``--pyargs ssv2_fixtures.suite``, ini overrides — and changes only the test selection: the
marker it suggests replaces theirs, ``-k``/``--deselect`` and node ids (``file.py::test``) are dropped,
since they would select nothing under another marker. Without a record (an older results.json, the Python
API) the commands are the plain ``pytest -m MARKER``.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

__all__ = ["rerun", "invocation_note"]

# options whose value is a test selection: replaced or dropped, never repeated under another marker
_SELECTION = ("-m", "-k", "--deselect")
_SUITE = "ssv2_fixtures.suite"


def _args(invocation: Mapping[str, Any] | None) -> list[str] | None:
    args = (invocation or {}).get("args")
    return [str(a) for a in args] if isinstance(args, list) else None


def _is_selection(arg: str) -> tuple[bool, bool]:
    """(is a selection option, its value is the next argument)."""
    for opt in _SELECTION:
        if arg == opt:
            return True, True
        if arg.startswith(opt + "=") or (len(opt) == 2 and arg.startswith(opt) and len(arg) > 2):
            return True, False
    return False, False


def _target(arg: str, pyargs: bool) -> str | None:
    """A test target widened to what every marker can select from (a node id or test module to its folder,
    a suite module under ``--pyargs`` to the suite package); ``None`` for anything else. Only arguments that
    look like targets are touched: without pytest's parser, ``2`` after ``--workers`` is not one."""
    path = arg.split("::", 1)[0]
    if pyargs and path.startswith(_SUITE + "."):
        return _SUITE
    head, _, name = path.replace("\\", "/").rpartition("/")
    if name.startswith("test_") and name.endswith(".py"):
        return head or "."
    return path if "::" in arg else None


def rerun(invocation: Mapping[str, Any] | None, marker: str | None, *extra: str) -> str:
    """``pytest …`` repeating the user's own options, with ``-m marker`` (``None``: their own selection,
    unchanged) and ``extra`` options (an option in ``extra`` the user already gave keeps their value)."""
    args = _args(invocation)
    if args is None:
        return shlex.join(["pytest", *(["-m", marker] if marker else []), *extra])
    if marker is None:
        out = list(args)
    else:
        out, skip, pyargs = [], False, "--pyargs" in args
        for a in args:
            if skip:
                skip = False
                continue
            sel, takes_value = _is_selection(a)
            if sel:
                skip = takes_value
                continue
            t = _target(a, pyargs)
            if t is None:
                out.append(a)
            elif t not in out:  # two node ids of one file are one folder
                out.append(t)
        out += ["-m", marker]
    given = {a.split("=", 1)[0] for a in out if a.startswith("--")}
    k = 0
    while k < len(extra):  # extra is OPTION [VALUE] pairs: `--train-config train.toml`
        opt = extra[k]
        value = [extra[k + 1]] if k + 1 < len(extra) and not extra[k + 1].startswith("-") else []
        if opt.split("=", 1)[0] not in given:
            out += [opt, *value]
        k += 1 + len(value)
    return shlex.join(["pytest", *out])


def invocation_note(invocation: Mapping[str, Any] | None) -> str | None:
    """One line saying where the suggested commands run (their relative paths are relative to it)."""
    if _args(invocation) is None:
        return None
    where = (invocation or {}).get("dir")
    return f"The commands repeat this session's options; run them from `{where}`." if where else None
