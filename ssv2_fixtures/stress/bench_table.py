"""pytest-benchmark's terminal table for stress tests: hidden unless asked for, labelled when shown.

pytest-benchmark ranks the rows of its table by the fastest single round ("Min"). For a stress test a
round is one per-batch wait in the child (:mod:`.bench`), so the table's first row is the config that once
waited least for one batch, in microseconds: not videos/s and not the recommendation. The plugin therefore
leaves stress tests out of the table unless a ``--benchmark-*`` display option asks for it, and then shows
them in a group whose name says what the numbers are. Only the display changes: pytest-benchmark has
already written ``--benchmark-json``/``--benchmark-save`` when it groups (``BenchmarkSession.finish``
saves first), so the JSON holds every stress test either way.

Everything here is public pytest-benchmark API: the ``pytest_benchmark_group_stats`` hook (the plugin
wraps it) and option names.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

DISPLAY_OPTIONS = (
    "--benchmark-columns",
    "--benchmark-sort",
    "--benchmark-group-by",
    "--benchmark-name",
    "--benchmark-time-unit",
    "--benchmark-histogram",
    "--benchmark-verbose",
    "--benchmark-compare",
    "--benchmark-cprofile",
)
"""Options that ask for pytest-benchmark's table: given any of them, stress tests are shown (labelled)."""

GROUP = (
    "ssv2-stress per-batch waits in the loading process (not videos/s, not the ranking: see the ssv2-stress section)"
)

Groups = list[tuple[Any, list[Any]]]


def table_asked(args: Iterable[str]) -> bool:
    """Whether ``args`` (the command line, ``PYTEST_ADDOPTS`` and the ini ``addopts``) hold a display option."""
    return any(str(a).split("=", 1)[0] in DISPLAY_OPTIONS for a in args)


def pytest_args(config: Any) -> list[str]:
    """Every argument pytest parsed: its invocation, ``PYTEST_ADDOPTS`` and the ini file's ``addopts``."""
    out = [str(a) for a in config.invocation_params.args]
    out += shlex.split(os.environ.get("PYTEST_ADDOPTS", ""))
    try:
        out += [str(a) for a in config.getini("addopts")]
    except (ValueError, KeyError):  # no addopts ini key registered
        pass
    return out


def is_stress(bench: Mapping[str, Any], stress_tests: Collection[str]) -> bool:
    """A benchmark recorded by :func:`.bench.bridge`: a test that ran stress runs in this session."""
    return str(bench.get("fullname")) in stress_tests


def regroup(
    groups: Sequence[tuple[Any, Sequence[Any]]], stress_tests: Collection[str], shown: bool
) -> tuple[Groups, int]:
    """pytest-benchmark's groups with the stress tests left out (``shown`` False) or moved into a group
    named :data:`GROUP` (``shown`` True). Returns (groups, how many stress benchmarks were left out)."""
    out: Groups = []
    stress: dict[Any, list[Any]] = {}
    hidden = 0
    for name, benches in groups:
        own = [b for b in benches if not is_stress(b, stress_tests)]
        theirs = [b for b in benches if is_stress(b, stress_tests)]
        if own:
            out.append((name, own))
        if theirs and shown:
            stress.setdefault(f"{GROUP}: {name}" if name else GROUP, []).extend(theirs)
        hidden += 0 if shown else len(theirs)
    out += list(stress.items())
    return out, hidden


NOTE = (
    "pytest-benchmark's table of per-batch waits is hidden for {n} stress test(s): it ranks by the fastest "
    "single batch, not by videos/s; --benchmark-json/--benchmark-save still record them; any --benchmark-columns "
    "(or -sort, -group-by, ...) option shows it"
)
