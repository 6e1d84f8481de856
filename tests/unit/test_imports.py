"""Import discipline: the child-process entry stays light, the plugin does not import torch."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "; import sys; print(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(out.split())


ROOT = Path(__file__).resolve().parents[2]


def lazy_imports(module: str) -> set[str]:
    """Every package module ``module`` imports relatively, at module level or inside a function (the
    child imports most of what it needs at run time, after its resource limits are applied)."""
    path = ROOT / (module.replace(".", "/") + ".py")
    package = module.rsplit(".", 1)[0]
    return {
        importlib.util.resolve_name("." * n.level + (n.module or ""), package)
        for n in ast.walk(ast.parse(path.read_text()))
        if isinstance(n, ast.ImportFrom) and n.level
    }


# What a child may pull in to load one config: its own lazy imports and what those import in turn.
CHILD_ALLOWED = {
    "ssv2_fixtures.run.child",
    "ssv2_fixtures.run.rank_child",
    "ssv2_fixtures.run.loop",  # the batch loop and its measured window (stdlib only at module level)
    "ssv2_fixtures.run.faults",
    "ssv2_fixtures.run.stats",
    "ssv2_fixtures.run.record",
    "ssv2_fixtures.run.schema",  # the record types (typing only)
    "ssv2_fixtures.run.units",
    "ssv2_fixtures.run.outcome",
    "ssv2_fixtures.run.watchdog",
    "ssv2_fixtures.run.hold",  # the full-queue hold (stdlib only)
    "ssv2_fixtures.run.shm",  # the shm formula, for the shm remedy (run.outcome)
    "ssv2_fixtures.data.clips",
    "ssv2_fixtures.data.decoders",
    "ssv2_fixtures.data.loader",
    "ssv2_fixtures.data.factory",
    "ssv2_fixtures.data.locate",  # finding a user's MODULE:CALLABLE (stdlib only)
    "ssv2_fixtures.data.batch",
    "ssv2_fixtures.data.sampling",
    "ssv2_fixtures.data.annotations",
    "ssv2_fixtures.data.webm",
    "ssv2_fixtures.data.layout",
    "ssv2_fixtures.data.annotation_files",
    "ssv2_fixtures.data.errors",
    "ssv2_fixtures.run",
    "ssv2_fixtures.data",  # the rooms' own __init__ (docstrings only)
}


def test_child_entry_imports_no_pytest_and_little_of_the_package():
    # The modules its run() pulls in at run time, found in its source (so a new lazy import is covered too).
    lazy = (
        lazy_imports("ssv2_fixtures.run.child")
        | lazy_imports("ssv2_fixtures.run.loop")
        | lazy_imports("ssv2_fixtures.run.rank_child")
    )
    assert {
        "ssv2_fixtures.data.factory",
        "ssv2_fixtures.run.stats",
        "ssv2_fixtures.data.batch",
        "ssv2_fixtures.data.sampling",
        "ssv2_fixtures.data.clips",
    } <= lazy  # the finder finds them
    mods = _modules_after("import " + ", ".join(sorted(lazy | {"ssv2_fixtures.run.rank_child"})))
    assert "pytest" not in mods and "_pytest" not in mods
    ours = {m for m in mods if m.startswith("ssv2_fixtures.")}
    assert ours <= CHILD_ALLOWED, sorted(ours - CHILD_ALLOWED)


def test_child_module_alone_imports_only_the_standard_library():
    mods = _modules_after("import ssv2_fixtures.run.child")
    assert not {"torch", "decord", "numpy", "pytest"} & mods


def test_plugin_import_does_not_load_torch_or_decord():
    mods = _modules_after("import ssv2_fixtures.plugin")
    assert "torch" not in mods and "decord" not in mods


def test_rank_entry_imports_only_the_standard_library_and_the_child():
    # torchrun starts one of these per rank: torch comes after the rank's resource limits, never pytest
    mods = _modules_after("import ssv2_fixtures.run.rank_child")
    assert not {"torch", "decord", "numpy", "pytest"} & mods
    assert {m for m in mods if m.startswith("ssv2_fixtures.")} == {
        "ssv2_fixtures.run",
        "ssv2_fixtures.run.child",
        "ssv2_fixtures.run.loop",
        "ssv2_fixtures.run.rank_child",
    }
